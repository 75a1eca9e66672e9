"""LSTM-VAE: an LSTM encoder summarises a window into q(z|x) = N(mu, sigma^2); an LSTM decoder
reconstructs the window from z. The anomaly score of a step is its reconstruction error
(or Gaussian negative log-likelihood) decoded from the posterior mean.

Posterior collapse (KL -> 0, the decoder outputs the mean signal) is the known failure of
this model. Three guards: z is fed to the decoder at every step (not only as its initial
state), the KL weight is annealed from 0 to beta over `kl_warmup_epochs`, and free bits keep
each latent dimension's KL at or above `free_bits` nats during training.

Loss reduction, stated because it sets the effective beta: reconstruction is summed over
steps and channels and KL over latent dimensions, both averaged over the batch, then the
total is divided by window * channels so the logged numbers read as per-value errors.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tsad.models.base import register
from tsad.models.torch_detector import TorchDetector
from tsad.settings.fields import setting


class LSTMVAEModule(nn.Module):
    def __init__(self, config: LSTMVAE, n_channels: int):
        super().__init__()
        hidden, latent, layers = config.hidden_size, config.latent_size, config.num_layers
        inner_dropout = config.dropout if layers > 1 else 0.0
        self.encoder = nn.LSTM(n_channels, hidden, layers, batch_first=True, dropout=inner_dropout)
        self.to_mu = nn.Linear(hidden, latent)
        self.to_logvar = nn.Linear(hidden, latent)
        self.latent_to_state = nn.Linear(latent, hidden * layers)
        self.decoder = nn.LSTM(latent, hidden, layers, batch_first=True, dropout=inner_dropout)
        self.to_mean = nn.Linear(hidden, n_channels)
        self.to_out_logvar = nn.Linear(hidden, n_channels) if config.reconstruction == "gaussian_nll" else None
        self.num_layers, self.hidden_size = layers, hidden
        self.beta, self.kl_warmup_epochs, self.free_bits = config.beta, config.kl_warmup_epochs, config.free_bits
        self.epoch = 0

    def on_epoch_start(self, epoch: int) -> None:
        self.epoch = epoch

    def kl_weight(self) -> float:
        if not self.training or self.kl_warmup_epochs <= 0:
            return self.beta
        return self.beta * min(1.0, (self.epoch + 1) / self.kl_warmup_epochs)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _, (h_n, _) = self.encoder(x)                      # h_n: [layers, B, H]
        return self.to_mu(h_n[-1]), self.to_logvar(h_n[-1]).clamp(-10, 10)

    def decode(self, z: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch = z.shape[0]
        h0 = torch.tanh(self.latent_to_state(z)).view(batch, self.num_layers, self.hidden_size).transpose(0, 1)
        out, _ = self.decoder(z.unsqueeze(1).expand(-1, length, -1), (h0.contiguous(), torch.zeros_like(h0)))
        logvar = None if self.to_out_logvar is None else self.to_out_logvar(out).clamp(-8, 8)
        return self.to_mean(out), logvar                   # [B, T, C]

    def step_errors(self, x: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor | None) -> torch.Tensor:
        """Per-value reconstruction error [B, T, C]: squared error or Gaussian NLL."""
        if logvar is None:
            return (x - mean) ** 2
        return 0.5 * (logvar + (x - mean) ** 2 / logvar.exp())

    def loss(self, batch: dict) -> dict:
        x = batch["x"]
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu
        mean, out_logvar = self.decode(z, x.shape[1])
        values = x.shape[1] * x.shape[2]
        reconstruction = self.step_errors(x, mean, out_logvar).sum(dim=(1, 2)).mean() / values
        kl_per_dim = 0.5 * (mu**2 + logvar.exp() - logvar - 1).mean(dim=0)     # [latent]
        kl = kl_per_dim.sum() / values
        kl_for_loss = kl_per_dim.clamp(min=self.free_bits).sum() / values if self.training else kl
        return {"loss": reconstruction + self.kl_weight() * kl_for_loss, "reconstruction": reconstruction, "kl": kl}

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        mu, _ = self.encode(x)
        return self.decode(mu, x.shape[1])[0]

    def score(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        x = batch["x"]
        mu, _ = self.encode(x)
        mean, logvar = self.decode(mu, x.shape[1])
        step = self.step_errors(x, mean, logvar).sum(dim=2)   # [B, T]
        return step, step.mean(dim=1)


@register("lstm_vae")
@dataclass(eq=False)
class LSTMVAE(TorchDetector):
    window: int = setting(32, at_least=1)
    hidden_size: int = setting(64, at_least=1)
    latent_size: int = setting(16, at_least=1)
    num_layers: int = setting(1, at_least=1)
    dropout: float = setting(0.0, at_least=0, below=1)
    beta: float = setting(1.0, at_least=0)
    kl_warmup_epochs: int = setting(5, at_least=0)
    free_bits: float = setting(0.05, at_least=0)
    reconstruction: str = setting("mse", choices=("mse", "gaussian_nll"))

    def build_module(self, n_channels: int) -> LSTMVAEModule:
        return LSTMVAEModule(self, n_channels)
