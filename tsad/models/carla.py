"""CARLA (Darban et al., Pattern Recognition 2025): self-supervised contrastive representation
learning for time-series anomaly detection, trained in two stages by the shared trainer.

1. pretext: a small 1-D ResNet embeds windows onto the unit sphere. A triplet loss pulls each
   window (anchor) towards a window that starts 1..positive_lag steps earlier (positive) and
   pushes it away from a copy of itself carrying an injected synthetic anomaly (negative):
       loss = mean max(0, margin + |a - p|^2 / T - |a - n|^2 / T)
2. classification (SCAN-style): when the stage starts, the pretext network is frozen as a
   reference and the training windows plus one injected copy of each form a neighbour bank.
   Every anchor (a training window and a freshly injected copy of it) gets its own
   num_neighbors nearest and furthest bank entries in the frozen embedding space; a
   num_classes-way head, trained on top of the (still trainable) backbone, should agree with
   one nearest neighbour, disagree with one furthest neighbour, and keep the classes in use:
       loss = -log <P(a), P(nn)> - w_inc * log(1 - <P(a), P(fn)>) - beta * H(mean_batch P(a))

Score (`score_type`), given to every step of the window (the window wrapper combines overlapping
windows per step with `step_reduce`):
  profile_distance  (default) the total variation distance between the window's class
                    distribution P(.|window) and the normal profile, the mean of P(.|w) over the
                    training windows w: 0.5 * sum_c |P(c|window) - profile_c|.
  majority_class    (published) 1 - P(C_m | window), C_m the class most training windows fall in.
The two agree when training windows sit confidently in C_m (profile = one-hot C_m makes the
distance exactly 1 - P(C_m | window)). They part when the head is not confident on normal data,
as after short training: the head is linear on mean-pooled ReLU features, which are non-negative,
so a magnitude anomaly (a level shift, a spike) scales the features up along their normal
direction and raises most the logit that already wins on normal windows, i.e. C_m's. The
published score then calls the anomaly the most normal window of all (a +8 level shift scored
about 0.0 against 0.9 for normal series after 2 short epochs); the profile distance sees a
window the model treats unlike the training windows, whatever the class. It spares normal windows
that fall in a second normal class only while the profile leans on one class: the distance of a
window sitting in class c is about 1 - profile_c, so when the entropy term spreads the training
windows over many classes every normal window scores high. On a NAB file's few hundred
probationary windows the head spreads them over 4-6 of its 10 classes with a median top
probability of 0.4-0.55, and the training windows' own scores (median 0.31-0.56) are as high as
the anomalies': both class scores then rank nothing.

Injected anomalies (the paper's five kinds; `injections` picks a subset), on a random
subsequence of 10-90% of the window in 1 .. C/2 random channels:
  seasonal    the subsequence plays 2-4x faster (tiled, then subsampled)
  trend       +-N(1, 0.5) is added from the subsequence start to the window end
  global      2 points (3 if univariate) multiplied by 8
  contextual  4 points (5 if univariate) multiplied by 3
  shapelet    the subsequence is flattened to its first value plus U(0, 0.1)
Amplitudes are in units of the normalised data.

Deliberate differences from the official code:
  - neighbours are mined per sample (the official mining ranks all windows by distance to
    one random vector, so a window's "neighbours" are unrelated to it);
  - the triplet margin is fixed (the official adaptive margin decays to its 0.01 floor within
    a few batches) and each anchor's negative is its own injected copy, as in the paper;
  - at least one channel is injected (the official channel count is 0 for C <= 3);
  - the positive comes from the window's own history (training windows carry positive_lag
    extra steps), so it never crosses into another series;
  - checkpoints are chosen on validation loss by the shared trainer, never on test F1; the
    classification stage runs all its epochs (no early stopping) with its published optimiser
    settings (lr 1e-2, weight decay 1e-3, constant schedule); the pretext stage uses the trainer's.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn

from tsad.data.batches import WindowBatches
from tsad.errors import UserError
from tsad.models.base import register
from tsad.models.torch_detector import TorchDetector
from tsad.settings.fields import setting

Injection = Literal["seasonal", "trend", "global", "contextual", "shapelet"]
INJECTIONS = get_args(Injection)
EVAL_SEED = 0


# -- the network --------------------------------------------------------------------------------
def conv_block(in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(in_channels, out_channels, kernel_size, padding="same"),
                         nn.BatchNorm1d(out_channels), nn.ReLU())


class ResidualBlock(nn.Module):
    """Three convolutions (kernels 8, 5, 3); a 1x1 projection shortcut where the width changes."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.layers = nn.Sequential(conv_block(in_channels, out_channels, 8), conv_block(out_channels, out_channels, 5),
                                    conv_block(out_channels, out_channels, 3))
        self.shortcut = None
        if in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv1d(in_channels, out_channels, 1), nn.BatchNorm1d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(x)
        return out if self.shortcut is None else out + self.shortcut(x)


class Backbone(nn.Module):
    """Windows [B, W, C] -> representations [B, 2 * mid_channels] (mean over time)."""

    def __init__(self, n_channels: int, mid_channels: int):
        super().__init__()
        self.blocks = nn.Sequential(ResidualBlock(n_channels, mid_channels),
                                    ResidualBlock(mid_channels, 2 * mid_channels),
                                    ResidualBlock(2 * mid_channels, 2 * mid_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x.transpose(1, 2)).mean(dim=2)


class PretextEmbedder(nn.Module):
    """Backbone plus MLP head: windows [B, W, C] -> unit-norm embeddings [B, features_dim]."""

    def __init__(self, n_channels: int, mid_channels: int, features_dim: int):
        super().__init__()
        width = 2 * mid_channels
        self.backbone = Backbone(n_channels, mid_channels)
        self.head = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, features_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.head(self.backbone(x)).float(), dim=1)


# -- anomaly injection ----------------------------------------------------------------------------
def inject_anomalies(x: torch.Tensor, kinds: list[str], generator: torch.Generator | None = None) -> torch.Tensor:
    """A copy of windows x [B, W, C] with one synthetic anomaly each, of a kind drawn from `kinds`."""
    batch, length, n_channels = x.shape
    device = x.device

    def uniform(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator, device=device)

    def integers(low: int, high: torch.Tensor | int, *shape: int) -> torch.Tensor:
        """Uniform integers in [low, high) (high may differ per row)."""
        return low + (uniform(*shape) * (torch.as_tensor(high, device=device) - low)).long()

    kind_ids = torch.tensor([INJECTIONS.index(k) for k in kinds], device=device)
    kind = kind_ids[integers(0, len(kinds), batch)]                                    # [B]
    min_span, max_span = max(1, int(0.1 * length)), max(2, int(0.9 * length))
    span = integers(min_span, max_span, batch)                                          # [B]
    start = integers(0, length - span, batch)                                           # [B]
    univariate = n_channels == 1
    affected = span.clone()
    affected[kind == INJECTIONS.index("trend")] = (length - start)[kind == INJECTIONS.index("trend")]
    affected[kind == INJECTIONS.index("global")] = 3 if univariate else 2
    affected[kind == INJECTIONS.index("contextual")] = 5 if univariate else 4
    relative = torch.arange(length, device=device)[None, :] - start[:, None]            # [B, W]
    in_segment = (relative >= 0) & (relative < affected[:, None])

    # 1 .. about C/2 distinct channels per window
    fewest, most = max(1, n_channels // 10), max(1, n_channels // 2 - 1)
    n_affected = integers(fewest, most + 1, batch)
    channel_rank = uniform(batch, n_channels).argsort(dim=1).argsort(dim=1)
    in_channels = channel_rank < n_affected[:, None]                                    # [B, C]

    speed_up = integers(2, 5, batch)
    source = start[:, None] + (relative.clamp(min=0) * speed_up[:, None]) % span[:, None]
    source = torch.where(in_segment, source, torch.arange(length, device=device)[None, :])
    seasonal = x.gather(1, source[:, :, None].expand(-1, -1, n_channels))
    sign = torch.where(uniform(batch, 1, n_channels) < 0.5, -1.0, 1.0)
    trend = x + sign * (1.0 + 0.5 * torch.randn(batch, 1, n_channels, generator=generator, device=device))
    first = x.gather(1, start[:, None, None].expand(-1, 1, n_channels))
    shapelet = (first + 0.1 * uniform(batch, 1, n_channels)).expand(-1, length, -1)
    candidates = torch.stack([seasonal, trend, 8.0 * x, 3.0 * x, shapelet])            # [5, B, W, C]
    anomalous = candidates.gather(0, kind[None, :, None, None].expand(1, -1, length, n_channels))[0]
    return torch.where(in_segment[:, :, None] & in_channels[:, None, :], anomalous.to(x.dtype), x)


# -- neighbour mining -----------------------------------------------------------------------------
def mine_neighbours(queries: torch.Tensor, bank: torch.Tensor, k: int,
                    self_distance: float = 1e-10) -> tuple[torch.Tensor, torch.Tensor]:
    """Each query's own k nearest and k furthest bank entries by squared Euclidean distance.

    queries [M, F], bank [N, F] -> (nearest [M, k] closest first, furthest [M, k] furthest first).
    Bank entries at distance <= self_distance are the query itself and are skipped.
    """
    distances = torch.cdist(queries.float(), bank.float(), compute_mode="donot_use_mm_for_euclid_dist").pow(2)
    is_self = distances <= self_distance
    k = min(k, bank.shape[0])
    nearest = distances.masked_fill(is_self, float("inf")).topk(k, dim=1, largest=False).indices
    furthest = distances.masked_fill(is_self, float("-inf")).topk(k, dim=1, largest=True).indices
    return nearest, furthest


@dataclass
class NeighbourBank:
    """The frozen pretext embedder and the windows (with embeddings) neighbours are drawn from."""

    embedder: PretextEmbedder
    windows: torch.Tensor      # [N, W, C]
    embeddings: torch.Tensor   # [N, features_dim]

    def neighbours(self, anchors: torch.Tensor, k: int,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One random window among each anchor's k nearest and one among its k furthest."""
        with torch.no_grad():
            nearest, furthest = mine_neighbours(self.embedder(anchors), self.embeddings, k)
        pick = torch.randint(0, nearest.shape[1], (len(anchors), 2), generator=generator, device=anchors.device)
        rows = torch.arange(len(anchors), device=anchors.device)
        return self.windows[nearest[rows, pick[:, 0]]], self.windows[furthest[rows, pick[:, 1]]]


# -- the module -----------------------------------------------------------------------------------
class CARLAModule(nn.Module):
    stages = ("pretext", "classification")

    def __init__(self, config: CARLA, n_channels: int):
        super().__init__()
        self.score_type = config.score_type
        self.window, self.positive_lag = config.window, config.positive_lag
        self.temperature, self.margin, self.injections = config.temperature, config.margin, config.injections
        self.num_neighbors = config.num_neighbors
        self.entropy_weight, self.inconsistency_weight = config.entropy_weight, config.inconsistency_weight
        self.pretext_epochs, self.classification_epochs = config.pretext_epochs, config.classification_epochs
        self.bank_size = config.bank_size
        self.classification_lr = config.classification_lr
        self.classification_weight_decay = config.classification_weight_decay
        self.embedder = PretextEmbedder(n_channels, config.mid_channels, config.features_dim)
        self.classifier = nn.Linear(2 * config.mid_channels, config.num_classes)
        self.register_buffer("majority_class", torch.tensor(0))
        self.register_buffer("normal_profile", torch.full((config.num_classes,), 1.0 / config.num_classes))
        self.stage = "classification"
        self.stage_epochs: dict[str, int] = {}
        self.stage_settings: dict[str, dict] = {}
        self.train_windows: torch.Tensor | None = None
        self.bank: NeighbourBank | None = None

    # -- hooks of the shared trainer --------------------------------------------------------------
    def on_fit_start(self, trainer, batches) -> None:
        self.stage_epochs = {"pretext": trainer.epochs_for(self.pretext_epochs),
                             "classification": trainer.epochs_for(self.classification_epochs)}
        # Published stage-2 optimiser, and no early stopping: the classification loss on validation
        # windows is dominated by the batch-entropy term and drifts for several epochs before it
        # falls, so patience kept barely trained heads.
        self.stage_settings = {"classification": {"lr": self.classification_lr, "schedule": "constant",
                                                  "weight_decay": self.classification_weight_decay,
                                                  "patience": max(1, self.stage_epochs["classification"])}}
        windows = torch.cat([self.anchor_part(batch["x"]) for batch in batches])
        if len(windows) > self.bank_size:
            windows = windows[torch.randperm(len(windows))[: self.bank_size]]
        self.train_windows = windows
        self.bank = None

    def on_fit_end(self, trainer, batches) -> None:
        """C_m, the class the trained classifier gives most training windows, and the normal profile."""
        device = self.majority_class.device
        self.eval()
        counts = torch.zeros(self.classifier.out_features, dtype=torch.long, device=device)
        total = torch.zeros(self.classifier.out_features, dtype=torch.float64, device=device)
        with torch.no_grad():
            for batch in batches:
                probabilities = self.class_probabilities(self.anchor_part(batch["x"].to(device)))
                counts += torch.bincount(probabilities.argmax(dim=1), minlength=len(counts))
                total += probabilities.sum(dim=0, dtype=torch.float64)
        self.majority_class.fill_(int(counts.argmax()))
        self.normal_profile.copy_((total / counts.sum().clamp_min(1)).float())
        self.train_windows, self.bank = None, None

    # -- pieces -----------------------------------------------------------------------------------
    def anchor_part(self, x: torch.Tensor) -> torch.Tensor:
        """The last `window` steps of a training window that carries positive_lag extra steps."""
        return x[:, -self.window:]

    def class_probabilities(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.classifier(self.embedder.backbone(x)).float(), dim=1)

    def eval_generator(self, device: torch.device) -> torch.Generator | None:
        """Fixed randomness in evaluation, so validation losses of different epochs compare."""
        return None if self.training else torch.Generator(device).manual_seed(EVAL_SEED)

    def build_bank(self, device: torch.device) -> NeighbourBank:
        """Freeze the pretext embedder; bank = training windows plus one injected copy of each."""
        embedder = copy.deepcopy(self.embedder).eval().requires_grad_(False)
        generator = torch.Generator(device).manual_seed(EVAL_SEED)
        chunks, embeddings = [], []
        with torch.no_grad():
            for start in range(0, len(self.train_windows), 1024):
                normal = self.train_windows[start:start + 1024].to(device)
                both = torch.cat([normal, inject_anomalies(normal, self.injections, generator)])
                chunks.append(both)
                embeddings.append(embedder(both))
        return NeighbourBank(embedder, torch.cat(chunks), torch.cat(embeddings))

    # -- losses -----------------------------------------------------------------------------------
    def loss(self, batch: dict) -> dict:
        return self.pretext_loss(batch["x"]) if self.stage == "pretext" else self.classification_loss(batch["x"])

    def pretext_loss(self, x: torch.Tensor) -> dict:
        generator = self.eval_generator(x.device)
        batch = x.shape[0]
        anchor = self.anchor_part(x)
        shift = 1 + (torch.rand(batch, generator=generator, device=x.device) * self.positive_lag).long()  # [B] 1..lag
        steps = (self.positive_lag - shift)[:, None] + torch.arange(self.window, device=x.device)[None, :]
        positive = x.gather(1, steps[:, :, None].expand(-1, -1, x.shape[2]))
        negative = inject_anomalies(anchor, self.injections, generator)
        z_anchor, z_positive, z_negative = self.embedder(torch.cat([anchor, positive, negative])).chunk(3)
        positive_distance = (z_anchor - z_positive).pow(2).sum(dim=1) / self.temperature
        negative_distance = (z_anchor - z_negative).pow(2).sum(dim=1) / self.temperature
        loss = F.relu(self.margin + positive_distance - negative_distance).mean()
        return {"loss": loss, "positive_distance": positive_distance.mean().detach(),
                "negative_distance": negative_distance.mean().detach()}

    def classification_loss(self, x: torch.Tensor) -> dict:
        if self.bank is None:
            self.bank = self.build_bank(x.device)
        generator = self.eval_generator(x.device)
        normal = self.anchor_part(x)
        anchors = torch.cat([normal, inject_anomalies(normal, self.injections, generator)])
        nearest, furthest = self.bank.neighbours(anchors, self.num_neighbors, generator)
        p_anchor, p_nearest, p_furthest = self.class_probabilities(torch.cat([anchors, nearest, furthest])).chunk(3)
        eps = 1e-7
        agree = (p_anchor * p_nearest).sum(dim=1).clamp(eps, 1.0)
        disagree = (p_anchor * p_furthest).sum(dim=1).clamp(0.0, 1.0 - eps)
        consistency = -agree.log().mean()
        inconsistency = -(1.0 - disagree).log().mean()
        mean_p = p_anchor.mean(dim=0).clamp_min(eps)
        entropy = -(mean_p * mean_p.log()).sum()
        loss = consistency + self.inconsistency_weight * inconsistency - self.entropy_weight * entropy
        return {"loss": loss, "consistency": consistency.detach(), "inconsistency": inconsistency.detach(),
                "entropy": entropy.detach()}

    # -- scoring ----------------------------------------------------------------------------------
    def score(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        x = batch["x"]                                                                  # [B, W, C]
        probabilities = self.class_probabilities(x)                                     # [B, num_classes]
        if self.score_type == "majority_class":
            window_score = 1.0 - probabilities[:, self.majority_class]
        else:
            window_score = 0.5 * (probabilities - self.normal_profile).abs().sum(dim=1)  # [B]
        return window_score[:, None].expand(-1, x.shape[1]), window_score


@register("carla")
@dataclass(eq=False)
class CARLA(TorchDetector):
    train_stride: int = setting(5, at_least=1)
    positive_lag: int = setting(10, at_least=1)
    mid_channels: int = setting(4, at_least=1)
    features_dim: int = setting(4, at_least=1)
    temperature: float = setting(0.4, above=0)
    margin: float = setting(1.0, at_least=0)
    injections: list[Injection] = setting(factory=lambda: list(INJECTIONS))
    num_classes: int = setting(10, at_least=2)
    num_neighbors: int = setting(5, at_least=1)
    entropy_weight: float = setting(2.0, at_least=0)
    inconsistency_weight: float = setting(1.0, at_least=0)
    pretext_epochs: int = setting(30, at_least=0)
    classification_epochs: int = setting(50, at_least=0)
    bank_size: int = setting(20000, at_least=1)
    classification_lr: float = setting(1e-2, above=0)
    classification_weight_decay: float = setting(1e-3, at_least=0)
    score_type: str = setting("profile_distance", choices=("profile_distance", "majority_class"))

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.injections:
            raise UserError(f"model.injections=[] leaves no anomaly to inject; choose some of {', '.join(INJECTIONS)}")
        self.injections = list(self.injections)  # a tuple given in code is kept as a list, like a config's

    def batches(self, data, batch_size: int, shuffle: bool, stride: int | None = None) -> WindowBatches:
        """Training and validation windows carry positive_lag extra steps: the anchors' positives."""
        return WindowBatches(data, self.window + self.positive_lag, stride or self.train_stride, batch_size, shuffle,
                             self.seed)

    def build_module(self, n_channels: int) -> CARLAModule:
        return CARLAModule(self, n_channels)
