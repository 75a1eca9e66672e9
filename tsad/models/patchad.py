"""PatchAD (Zhong et al., arXiv 2401.09793): a lightweight patch-based MLP-Mixer trained with a
multi-scale inter/intra-patch contrastive objective plus reconstruction.

For every patch size P (N = window / P patches) the window [W, C], instance-normalised per
channel and with sinusoidal positions added, is seen two ways:
  inter-patch view  [B, C, N, P] -> Linear(P -> D): one token per patch (steps nP .. nP+P-1)
  intra-patch view  [B, C, P, N] -> Linear(N -> D): one token per position p inside the patches
                                    (steps p, P+p, 2P+p, ...)
A stack of `e_layers` mixer layers mixes channels (shared by both views), tokens (one mixer per
view) and features (shared). After each layer, softmax over D averaged over channels gives a
"patch distribution" per token (inter [B, N, D], intra [B, P, D]), and small projection MLPs
give projected distributions from the channel-mean logits (the dual projection constraint,
against degenerate solutions). Reconstruction heads map each layer's tokens back to the window.

Loss (the authors' v2 trainer as released, with K = scales x layers pairs): step t = nP + p is
where inter token n (t // P) meets intra token p (t mod P); their distributions are compared at
every step by KL over D, averaged over steps, with stop-gradients sg():
  disc(A, B) = (a, b),  a = KL(A||sg B) + KL(sg B||A),  b = KL(sg A||B) + KL(B||sg A)
  (c1, c2) = sum_k disc(inter_k, intra_proj_k);  (c3, c4) = sum_k disc(inter_proj_k, intra_k)
  (n, s)   = sum_k disc(inter_k, intra_k) / K
  loss = -patch_mx (c1 - c2) - patch_mx (c3 - c4) - (1 - patch_mx)(n - s) + reconstruction_weight * MSE
so the raw distributions of the two views are pushed apart while each projection follows the
other view's distribution.

Score per step: (1 - score_beta) * mean over channels of the squared reconstruction error of the
trained heads + score_beta * softmax over the window's steps of -(symmetric inter/intra KL).

Deliberate differences from the official code: the reconstruction term stays in the loss (at
the authors' current HEAD it is commented out, so the default score used untrained heads);
layers are stacked (the official loop feeds every layer the same input); the reconstruction is
de-normalised (RevIN) before it is compared with the input; positions are added once per
scale (not accumulated across scales); the intra view and its step alignment are the
position-in-patch pair above (the official versions pair chunk tokens with t mod P or
position tokens with t // P); one mixing weight alpha per scale; the per-layer softmax
weights are dropped, because the distributions are renormalised right after them;
checkpoints and early stopping use validation (not test) loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tsad.errors import UserError
from tsad.models.base import register
from tsad.models.layers import sinusoidal_positions
from tsad.models.torch_detector import TorchDetector
from tsad.settings.fields import setting

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU}
INTER_HIDDEN = 40   # hidden width of the inter-patch token mixer in the authors' code
EPS = 1e-7


def patch_views(x: torch.Tensor, patch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Windows [B, W, C] -> inter view [B, C, N, P] (patches) and intra view [B, C, P, N] (positions)."""
    batch, length, n_channels = x.shape
    patches = x.reshape(batch, length // patch_size, patch_size, n_channels)         # [B, N, P, C]
    return patches.permute(0, 3, 1, 2), patches.permute(0, 3, 2, 1)


def pair_kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """KL(p_i || q_j) over D for every token pair: p [B, I, D], q [B, J, D] -> [B, I, J]."""
    return (p * (p + EPS).log()).sum(dim=-1)[:, :, None] - p @ (q + EPS).log().transpose(1, 2)


def step_discrepancy(inter: torch.Tensor, intra: torch.Tensor) -> torch.Tensor:
    """Symmetric KL between inter [B, N, D] and intra [B, P, D] at every step [B, N * P]:
    step t = nP + p is where patch n meets position p."""
    return (pair_kl(inter, intra) + pair_kl(intra, inter).transpose(1, 2)).flatten(start_dim=1)


def mean_kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Mean of KL(p_i || q_j) over batch and all token pairs, i.e. over steps; the cross term factorises."""
    p_log_p = (p * (p + EPS).log()).sum(dim=-1).mean(dim=1)
    return (p_log_p - (p.mean(dim=1) * (q + EPS).log().mean(dim=1)).sum(dim=-1)).mean()


def discrepancy(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric mean KL between token distributions a and b, once with gradient to a only, once to b only."""
    a_term = mean_kl(a, b.detach()) + mean_kl(b.detach(), a)
    b_term = mean_kl(a.detach(), b) + mean_kl(b, a.detach())
    return a_term, b_term


class MLPBlock(nn.Module):
    """[LayerNorm -> Linear -> act -> LayerNorm -> Linear -> dropout] plus a skip, along axis `dim`."""

    def __init__(self, dim: int, in_size: int, hidden: int, out_size: int, activation: str, dropout: float,
                 project_skip: bool = True):
        super().__init__()
        self.dim = dim
        self.net = nn.Sequential(nn.LayerNorm(in_size), nn.Linear(in_size, hidden), ACTIVATIONS[activation](),
                                 nn.LayerNorm(hidden), nn.Linear(hidden, out_size), nn.Dropout(dropout))
        self.skip = nn.Linear(in_size, out_size) if project_skip else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.transpose(self.dim, -1)
        return (self.skip(x) + self.net(x)).transpose(self.dim, -1)


class MixerLayer(nn.Module):
    """One PatchMixer layer on both views of one scale: inter [B, C, N, D] and intra [B, C, P, D]."""

    def __init__(self, n_channels: int, n_patches: int, patch_size: int, d_model: int, activation: str,
                 dropout: float):
        super().__init__()
        self.channel_mixer = MLPBlock(1, n_channels, int(n_channels * 1.2), n_channels, activation, dropout)
        self.inter_mixer = MLPBlock(2, n_patches, INTER_HIDDEN, n_patches, activation, dropout)
        self.intra_mixer = MLPBlock(2, patch_size, int(patch_size * 1.2), patch_size, activation, dropout)
        self.feature_mixer = MLPBlock(3, d_model, d_model, d_model, activation, dropout)

    def forward(self, inter: torch.Tensor, intra: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        inter = self.feature_mixer(self.inter_mixer(self.channel_mixer(inter)))
        intra = self.feature_mixer(self.intra_mixer(self.channel_mixer(intra)))
        return inter, intra


def reconstruction_head(n_tokens: int, d_model: int, window: int) -> nn.Sequential:
    """Tokens [B, C, n_tokens, D] -> one window per channel [B, C, W]."""
    return nn.Sequential(nn.Flatten(start_dim=2), nn.LayerNorm(n_tokens * d_model),
                         nn.Linear(n_tokens * d_model, d_model), nn.Sigmoid(), nn.LayerNorm(d_model),
                         nn.Linear(d_model, window))


class Scale(nn.Module):
    """Everything specific to one patch size: embeddings, mixer layers, reconstruction heads."""

    def __init__(self, n_channels: int, window: int, patch_size: int, d_model: int, e_layers: int, activation: str,
                 dropout: float):
        super().__init__()
        self.patch_size, n_patches = patch_size, window // patch_size
        self.embed_inter = nn.Linear(patch_size, d_model)
        self.embed_intra = nn.Linear(n_patches, d_model)
        self.layers = nn.ModuleList(MixerLayer(n_channels, n_patches, patch_size, d_model, activation, dropout)
                                    for _ in range(e_layers))
        self.rebuild_inter = reconstruction_head(n_patches, d_model, window)
        self.rebuild_intra = reconstruction_head(patch_size, d_model, window)
        self.alpha = nn.Parameter(torch.tensor(0.5))   # weight of the inter-view reconstruction


class PatchADModule(nn.Module):
    def __init__(self, config: PatchAD, n_channels: int):
        super().__init__()
        window, d_model, activation, dropout = config.window, config.d_model, config.activation, config.dropout
        self.window, self.patch_mx, self.epochs = window, config.patch_mx, config.epochs
        self.reconstruction_weight, self.score_beta = config.reconstruction_weight, config.score_beta
        self.register_buffer("positions", sinusoidal_positions(window, n_channels), persistent=False)
        self.scales = nn.ModuleList(Scale(n_channels, window, p, d_model, config.e_layers, activation, dropout)
                                    for p in config.patch_sizes)
        self.project_inter = nn.Sequential(MLPBlock(2, d_model, d_model // 2, d_model, activation, dropout, False),
                                           nn.Softmax(dim=-1))
        self.project_intra = nn.Sequential(MLPBlock(2, d_model, d_model // 2, d_model, activation, dropout, False),
                                           nn.Softmax(dim=-1))
        self.stage_epochs: dict[str, int] = {}

    def on_fit_start(self, trainer, batches) -> None:
        self.stage_epochs = {"train": trainer.epochs_for(self.epochs)}

    def forward(self, x: torch.Tensor) -> dict:
        """Windows [B, W, C] -> token distributions (lists over scales x layers) and reconstruction [B, W, C]."""
        mean = x.mean(dim=1, keepdim=True)
        std = (x.var(dim=1, keepdim=True, unbiased=False) + 1e-5).sqrt()
        normalised = (x - mean) / std + self.positions
        out = {"inter": [], "intra": [], "inter_proj": [], "intra_proj": []}
        rebuilt = []
        for scale in self.scales:
            inter_view, intra_view = patch_views(normalised, scale.patch_size)
            inter, intra = scale.embed_inter(inter_view), scale.embed_intra(intra_view)   # [B,C,N,D], [B,C,P,D]
            layer_rebuilds = []
            for layer in scale.layers:
                inter, intra = layer(inter, intra)
                out["inter"].append(inter.float().softmax(dim=-1).mean(dim=1))             # [B, N, D]
                out["intra"].append(intra.float().softmax(dim=-1).mean(dim=1))             # [B, P, D]
                out["inter_proj"].append(self.project_inter(inter.mean(dim=1)).float())
                out["intra_proj"].append(self.project_intra(intra.mean(dim=1)).float())
                layer_rebuilds.append(scale.alpha * scale.rebuild_inter(inter)
                                      + (1 - scale.alpha) * scale.rebuild_intra(intra))
            rebuilt.append(torch.stack(layer_rebuilds).mean(dim=0))                     # [B, C, W]
        out["reconstruction"] = torch.stack(rebuilt).mean(dim=0).transpose(1, 2).float() * std + mean
        return out

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)["reconstruction"]

    def loss(self, batch: dict) -> dict:
        x = batch["x"]
        out = self.forward(x)
        pairs = len(out["inter"])

        def summed(first: str, second: str) -> tuple[torch.Tensor, torch.Tensor]:
            terms = [discrepancy(a, b) for a, b in zip(out[first], out[second])]
            return sum(t[0] for t in terms), sum(t[1] for t in terms)

        c1, c2 = summed("inter", "intra_proj")
        c3, c4 = summed("inter_proj", "intra")
        n, s = summed("inter", "intra")
        n, s = n / pairs, s / pairs
        reconstruction = (out["reconstruction"] - x.float()).pow(2).mean()
        loss = (-self.patch_mx * (c1 - c2) - self.patch_mx * (c3 - c4) - (1 - self.patch_mx) * (n - s)
                + self.reconstruction_weight * reconstruction)
        return {"loss": loss, "reconstruction": reconstruction.detach(), "discrepancy": n.detach()}

    def score(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        x = batch["x"]
        out = self.forward(x)
        step = (out["reconstruction"] - x.float()).pow(2).mean(dim=2)                   # [B, W]
        if self.score_beta > 0:
            symmetric = sum(step_discrepancy(a, b) for a, b in zip(out["inter"], out["intra"])) / len(out["inter"])
            step = (1 - self.score_beta) * step + self.score_beta * torch.softmax(-symmetric, dim=1)
        return step, step.mean(dim=1)


@register("patchad")
@dataclass(eq=False)
class PatchAD(TorchDetector):
    window: int = setting(105, at_least=1)
    patch_sizes: list[int] = setting(factory=lambda: [3, 5, 7], at_least=1)
    d_model: int = setting(60, at_least=2)
    e_layers: int = setting(3, at_least=1)
    dropout: float = setting(0.1, at_least=0, below=1)
    activation: str = setting("relu", choices=tuple(ACTIVATIONS))
    patch_mx: float = setting(0.1, at_least=0, at_most=1)
    reconstruction_weight: float = setting(10.0, at_least=0)
    score_beta: float = setting(0.0, at_least=0, at_most=1)
    epochs: int = setting(3, at_least=1)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.patch_sizes:
            raise UserError("model.patch_sizes=[] gives no scale; use a list like [3,5,7]")
        bad = [p for p in self.patch_sizes if self.window % p]
        if bad:
            raise UserError(f"model.window ({self.window}) must be divisible by every patch size; {bad} do not "
                            f"divide it (e.g. window=105 with patch_sizes=[3,5,7], or window=128 with [4,8,16])")

    def build_module(self, n_channels: int) -> PatchADModule:
        return PatchADModule(self, n_channels)
