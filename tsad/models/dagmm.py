"""Time-series DAGMM: an LSTM autoencoder compresses each whole series, and a Gaussian
mixture over [latent code, reconstruction features] gives its energy (Zong et al., ICLR 2018,
extended to variable-length multichannel series).

  encoder     bidirectional LSTM whose backward direction reads each series reversed within
              its own length (padding never enters either direction), last forward and last
              backward states -> MLP -> latent [B, L]
  decoder     unidirectional LSTM fed the latent at every step, its initial state from the
              latent -> x_hat [B, T, C]; causal, so padding after a series cannot change it
  features    over valid steps: relative Euclidean distance |x - x_hat| / |x|, cosine
              similarity, mean absolute error, trend difference mean |dx - dx_hat|
  z           [latent, features] standardised (by batch statistics in the loss, where the
              GMM comes from the batch too; by train-set statistics for scoring) -> [B, D], D = L + 4
  estimation  MLP + softmax -> memberships gamma [B, K]
  GMM         weights, means, full covariances from gamma on each batch (differentiable)

loss = reconstruction MSE + lambda_energy * mean energy + lambda_cov * sum_k,j 1 / Sigma_kjj
(paper defaults 0.1 and 0.005). The GMM used for scoring is fitted once on the whole
training set after training and stored as buffers; the series score is the energy under it,
the step score the reconstruction error. Energies come from tsad/models/gmm.py (log space,
float64 Cholesky with a growing jitter).

Covariance floor: every covariance, per batch in the loss and in the scoring GMM alike, gets
reg_covar * I added (a ridge, as scikit-learn's GaussianMixture reg_covar). The penalty above
only keeps the diagonal away from 0; it does not stop the latent from collapsing onto a
lower-dimensional subspace, and trained models do collapse (smallest eigenvalue ~1e-7 against a
diagonal ~0.5 in standardised units on dataset=synthetic). Without a floor, a series a hair off
that subspace gets an energy of hundreds, far above a series 3 standard deviations away along it.

A covariance estimated from fewer points than dimensions is singular, so batches must be
much larger than D: fitting stops with an error when the largest batch is smaller than
2 * D, and a smaller remainder batch at the end of an epoch trains the autoencoder only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tsad.errors import UserError
from tsad.models import gmm
from tsad.models.base import register
from tsad.models.torch_detector import SeriesTorchDetector
from tsad.settings.fields import setting

N_FEATURES = 4  # relative distance, cosine similarity, mean absolute error, trend difference


def reversed_within_length(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """x [B, T, F] with each series' valid steps in reverse order and its padding left in place."""
    steps = torch.arange(x.shape[1], device=x.device)[None, :]
    lengths = lengths.to(x.device)[:, None]
    index = torch.where(steps < lengths, lengths - 1 - steps, steps)
    return x.gather(1, index.unsqueeze(-1).expand_as(x))


class BidirectionalEncoder(nn.Module):
    """A bidirectional multi-layer LSTM over zero-padded series, equal to nn.LSTM on packed
    sequences: the backward direction runs over each series reversed within its length, so
    padding stays after the valid steps in both directions. Packed sequences give the same
    result but their CPU kernels go step by step over shrinking batches, 4-5x slower here."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, dropout: float):
        super().__init__()
        sizes = [input_size] + [2 * hidden_size] * (num_layers - 1)
        self.forward_layers = nn.ModuleList(nn.LSTM(size, hidden_size, batch_first=True) for size in sizes)
        self.backward_layers = nn.ModuleList(nn.LSTM(size, hidden_size, batch_first=True) for size in sizes)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """x [B, T, C] -> [last forward state, last backward state] of the top layer [B, 2H]."""
        h = x
        for layer, (forward, backward) in enumerate(zip(self.forward_layers, self.backward_layers)):
            if layer > 0:
                h = self.dropout(h)
            out_forward, _ = forward(h)
            out_backward, _ = backward(reversed_within_length(h, lengths))
            h = torch.cat([out_forward, reversed_within_length(out_backward, lengths)], dim=2)
        rows, last = torch.arange(x.shape[0], device=x.device), lengths.to(x.device) - 1
        return torch.cat([out_forward[rows, last], out_backward[rows, last]], dim=1)


class DAGMMModule(nn.Module):
    def __init__(self, config: DAGMM, n_channels: int):
        super().__init__()
        hidden, layers, latent, n_components = (config.hidden_size, config.num_layers, config.latent_size,
                                                config.n_components)
        inner_dropout = config.dropout if layers > 1 else 0.0
        self.encoder = BidirectionalEncoder(n_channels, hidden, layers, inner_dropout)
        self.to_latent = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.Tanh(), nn.Dropout(config.dropout),
                                       nn.Linear(hidden, latent))
        self.latent_to_state = nn.Linear(latent, hidden * layers)
        self.decoder = nn.LSTM(latent, hidden, layers, batch_first=True, dropout=inner_dropout)
        self.to_output = nn.Linear(hidden, n_channels)
        self.dim_z = latent + N_FEATURES
        self.estimation = nn.Sequential(nn.Linear(self.dim_z, config.estimation_hidden), nn.Tanh(),
                                        nn.Dropout(config.estimation_dropout),
                                        nn.Linear(config.estimation_hidden, n_components))
        self.num_layers, self.hidden_size = layers, hidden
        self.lambda_energy, self.lambda_cov, self.jitter = config.lambda_energy, config.lambda_cov, config.jitter
        self.reg_covar = config.reg_covar
        self.min_gmm_batch = 2 * self.dim_z
        # standardisation of z and the scoring GMM: set from the whole train set in on_fit_end
        self.register_buffer("z_mean", torch.zeros(self.dim_z))
        self.register_buffer("z_var", torch.ones(self.dim_z))
        self.register_buffer("gmm_weights", torch.full((n_components,), 1.0 / n_components, dtype=torch.float64))
        self.register_buffer("gmm_means", torch.zeros(n_components, self.dim_z, dtype=torch.float64))
        self.register_buffer("gmm_covariances", torch.eye(self.dim_z, dtype=torch.float64).repeat(n_components, 1, 1))
        self.register_buffer("gmm_fitted", torch.tensor(False))

    # -- autoencoder ------------------------------------------------------------------
    def encode(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.to_latent(self.encoder(x, lengths))

    def decode(self, latent: torch.Tensor, length: int) -> torch.Tensor:
        batch = latent.shape[0]
        h0 = torch.tanh(self.latent_to_state(latent)).view(batch, self.num_layers, self.hidden_size).transpose(0, 1)
        out, _ = self.decoder(latent.unsqueeze(1).expand(-1, length, -1), (h0.contiguous(), torch.zeros_like(h0)))
        return self.to_output(out)                           # [B, T, C]

    @staticmethod
    def reconstruction_features(x: torch.Tensor, x_hat: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[B, 4] features of how well each series is reconstructed, over its valid steps only."""
        valid = mask.unsqueeze(-1).to(x.dtype)               # [B, T, 1]
        x, x_hat = x * valid, x_hat * valid
        error = x - x_hat
        n_values = valid.sum((1, 2)) * x.shape[2]
        norm_x, norm_hat = x.flatten(1).norm(dim=1), x_hat.flatten(1).norm(dim=1)
        relative = error.flatten(1).norm(dim=1) / norm_x.clamp_min(1e-6)
        cosine = (x * x_hat).flatten(1).sum(1) / (norm_x * norm_hat).clamp_min(1e-6)
        mae = error.abs().sum((1, 2)) / n_values
        pairs = (mask[:, 1:] & mask[:, :-1]).unsqueeze(-1).to(x.dtype)       # both steps of a difference valid
        n_differences = (pairs.sum((1, 2)) * x.shape[2]).clamp_min(1)
        trend = ((error[:, 1:] - error[:, :-1]).abs() * pairs).sum((1, 2)) / n_differences
        return torch.stack([relative, cosine, mae, trend], dim=1)

    def standardise(self, z: torch.Tensor, batch_statistics: bool) -> torch.Tensor:
        """z [B, D] standardised by its own batch statistics (training loss) or the stored train-set ones."""
        if batch_statistics:
            return (z - z.mean(0)) / (z.var(0, unbiased=False) + 1e-5).sqrt()
        return (z - self.z_mean) / (self.z_var + 1e-5).sqrt()

    def forward(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstruction [B, T, C] and z = [latent, reconstruction features] [B, D]."""
        x = batch["x"]
        latent = self.encode(x, batch["lengths"])
        x_hat = self.decode(latent, x.shape[1])
        return x_hat, torch.cat([latent, self.reconstruction_features(x, x_hat, batch["mask"])], dim=1).float()

    def memberships(self, z_standard: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.estimation(z_standard), dim=1)

    # -- training -----------------------------------------------------------------------
    def on_fit_start(self, trainer, batches) -> None:
        n_series = len(batches.data) if hasattr(batches, "data") else trainer.batch_size
        largest = min(trainer.batch_size, n_series)
        if largest < self.min_gmm_batch:
            raise UserError(f"dagmm: batches of {largest} series are too few for a covariance of z's {self.dim_z} "
                            f"dimensions; use trainer.batch_size>={self.min_gmm_batch} (and at least that many "
                            f"train series) or a smaller model.latent_size")

    def loss(self, batch: dict) -> dict:
        x, mask = batch["x"], batch["mask"]
        x_hat, z = self(batch)
        valid = mask.unsqueeze(-1).to(x.dtype)
        reconstruction = (((x - x_hat) ** 2) * valid).sum() / (valid.sum() * x.shape[2])
        if len(x) < self.min_gmm_batch:
            return {"loss": reconstruction, "reconstruction": reconstruction}
        z_standard = self.standardise(z, batch_statistics=True)
        gamma = self.memberships(z_standard)
        weights, means, covariances = gmm.params_from_memberships(z_standard, gamma, "full", self.reg_covar)
        energy = gmm.energy(z_standard, weights.log(), means, covariances, self.jitter).mean()
        penalty = gmm.covariance_penalty(covariances)
        total = reconstruction + self.lambda_energy * energy.float() + self.lambda_cov * penalty.float()
        return {"loss": total, "reconstruction": reconstruction, "energy": energy.detach(),
                "cov_penalty": penalty.detach()}

    @torch.no_grad()
    def on_fit_end(self, trainer, batches) -> None:
        """Fit the scoring GMM once on the whole training set (not on the last batch)."""
        was_training = self.training
        self.eval()
        device = self.z_mean.device
        z = torch.cat([self({k: v.to(device) for k, v in batch.items()})[1] for batch in batches])   # [N, D]
        self.fit_scoring_gmm(z)
        self.train(was_training)

    @torch.no_grad()
    def fit_scoring_gmm(self, z: torch.Tensor) -> None:
        """Store z's train-set statistics and the GMM of the standardised z [N, D], with the same floor as the loss."""
        self.z_mean.copy_(z.mean(0))
        self.z_var.copy_(z.var(0, unbiased=False))
        z_standard = self.standardise(z, batch_statistics=False)
        weights, means, covariances = gmm.params_from_memberships(z_standard, self.memberships(z_standard), "full",
                                                                  self.reg_covar)
        self.gmm_weights.copy_(weights)
        self.gmm_means.copy_(means)
        self.gmm_covariances.copy_(covariances)
        self.gmm_fitted.fill_(True)

    def energy(self, z: torch.Tensor) -> torch.Tensor:
        """Energies [B] (float64) of z [B, D] under the scoring GMM."""
        z_standard = self.standardise(z, batch_statistics=False)
        return gmm.energy(z_standard, self.gmm_weights.log(), self.gmm_means, self.gmm_covariances, self.jitter)

    # -- scoring ------------------------------------------------------------------------
    def score(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        if not bool(self.gmm_fitted):
            raise RuntimeError("dagmm: the scoring GMM is fitted at the end of training; fit the model first")
        x, mask = batch["x"], batch["mask"]
        x_hat, z = self(batch)
        energies = self.energy(z)
        step = ((x - x_hat) ** 2).mean(2) * mask             # [B, T]
        return step, energies


@register("dagmm")
@dataclass(eq=False)
class DAGMM(SeriesTorchDetector):
    learns_from_one_series = False  # its mixture's covariances come from batches of at least 2 * D series
    hidden_size: int = setting(64, at_least=1)
    num_layers: int = setting(2, at_least=1)
    latent_size: int = setting(8, at_least=1)
    dropout: float = setting(0.2, at_least=0, below=1)
    n_components: int = setting(4, at_least=1)
    estimation_hidden: int = setting(10, at_least=1)
    estimation_dropout: float = setting(0.5, at_least=0, below=1)
    lambda_energy: float = setting(0.1, at_least=0)
    lambda_cov: float = setting(0.005, at_least=0)
    jitter: float = setting(1e-6, at_least=0)
    # reg_covar is a variance in units of the standardised z (unit variance per dimension over train):
    # 1e-3 keeps every component at least ~3% of a train standard deviation wide in every direction.
    # That is far above float round-off and the ~1e-7 eigenvalues of a collapsed latent, and far below
    # the spread the mixture models (component variances ~0.5), so it bounds the energy a small step
    # off the latent subspace can cost (at most step^2 / (2 reg_covar)) without blurring the mixture.
    # scikit-learn's default 1e-6 is for raw data; here it would leave the collapse nearly untouched.
    reg_covar: float = setting(1e-3, at_least=0)

    def build_module(self, n_channels: int) -> DAGMMModule:
        return DAGMMModule(self, n_channels)
