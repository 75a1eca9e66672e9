"""SD-MAE: a self-distilled masked autoencoder. A Transformer encoder reads a window whose
masked tokens are replaced by a learned mask token; a deep teacher decoder reconstructs the
masked steps and a shallow student decoder learns to mimic the teacher; each decoder has its
own output head. Labelled anomalies in train teach the two to disagree on anomalous steps.

A window counts as a labelled anomaly when one of its masked tokens (patches, or steps) holds a
labelled anomalous step. The step labels of labelled train series travel with the windows
(batch["step_label"], -1 where unknown); a window without step labels falls back to its series
label (1: all its masked tokens count). A window is normal when it holds no labelled anomalous
step at all; one whose labelled anomaly lies only in the visible context is neither: it enters no
term of the loss.

Loss per batch, with d(x) = mean over masked values of (teacher.detach() - student)^2:
    reconstruction   mean over masked values of (teacher - x)^2, normal windows only
    normal term      mean of d(x) over normal windows
    anomaly term     mean over anomalous windows of max(0, margin - d_a(x)), d_a the same mean
                     over the masked tokens that hold an anomaly; its weight ramps from 0 to 1
                     over the first part of training
    loss = reconstruction + lambda_disc * (normal term + warm-up weight * anomaly term)
Without labelled anomalies in a batch the anomaly term is zero, so the model also trains
unsupervised. The teacher is detached in d(x) and the student has its own head, so the
discrepancy terms never reach the teacher decoder or its head: they train the student decoder
and head, and through the student the shared encoder, token embedding and mask token.

Score of a masked step: (teacher - student)^2 + score_reconstruction * (teacher - x)^2,
averaged over channels. The discrepancy alone never looks at the masked values: both
decoders predict them from the context, and without labelled anomalies they tend to agree
on anomalous windows too, so the teacher's error is added as in the official video code.
`last_steps` masks the last `score_steps` steps of each window and scores only those (other
steps are NaN); `sliding` masks consecutive blocks of `score_steps` steps in turn, one pass
per block, and scores every step of the window.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tsad.data.batches import WindowBatches
from tsad.data.windows import window_starts
from tsad.errors import UserError
from tsad.models.base import register
from tsad.models.layers import sinusoidal_positions
from tsad.models.torch_detector import TorchDetector
from tsad.settings.fields import setting

EVAL_MASK_SEED = 0


class SDMAEModule(nn.Module):
    def __init__(self, config: SDMAE, n_channels: int):
        super().__init__()
        window, token_size, d_model = config.window, config.token_size, config.d_model
        self.window, self.token_size, self.n_tokens = window, token_size, window // token_size
        self.mask_ratio, self.margin, self.lambda_disc = config.mask_ratio, config.margin, config.lambda_disc
        self.anomaly_warmup_fraction = config.anomaly_warmup_fraction
        self.scoring, self.score_steps = config.scoring, config.score_steps
        self.score_reconstruction = config.score_reconstruction
        self.embed = nn.Linear(token_size * n_channels, d_model)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, d_model))
        nn.init.normal_(self.mask_token, std=0.02)
        self.register_buffer("positions", sinusoidal_positions(self.n_tokens, d_model), persistent=False)

        def encoder_layer():
            return nn.TransformerEncoderLayer(d_model, config.n_heads, config.ff_size, config.dropout, batch_first=True)

        def decoder_layer():
            return nn.TransformerDecoderLayer(d_model, config.n_heads, config.ff_size, config.dropout, batch_first=True)

        self.encoder = nn.TransformerEncoder(encoder_layer(), config.encoder_layers, enable_nested_tensor=False)
        self.teacher = nn.TransformerDecoder(decoder_layer(), config.teacher_layers)
        self.student = nn.TransformerDecoder(decoder_layer(), config.student_layers)
        self.teacher_head = nn.Linear(d_model, token_size * n_channels)
        self.student_head = nn.Linear(d_model, token_size * n_channels)
        self.warmup_epochs = 0.0
        self.epoch = 0

    # -- training schedule hooks ------------------------------------------------------
    def on_fit_start(self, trainer, batches) -> None:
        self.warmup_epochs = self.anomaly_warmup_fraction * trainer.standard_epochs

    def on_epoch_start(self, epoch: int) -> None:
        self.epoch = epoch

    def anomaly_weight(self) -> float:
        """Warm-up weight of the anomaly term: epoch / warm-up epochs, then 1 (always 1 in eval)."""
        if not self.training or self.warmup_epochs <= 0:
            return 1.0
        return min(1.0, self.epoch / self.warmup_epochs)

    # -- the network --------------------------------------------------------------------
    def forward(self, x: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, L, C], hidden [B, N] (True = masked token) -> teacher and student outputs [B, L, C]."""
        batch = x.shape[0]
        tokens = self.embed(x.reshape(batch, self.n_tokens, -1))                       # [B, N, d]
        tokens = torch.where(hidden[..., None], self.mask_token.to(tokens.dtype), tokens)
        memory = self.encoder(tokens + self.positions)                                  # [B, N, d]
        queries = self.positions.expand(batch, -1, -1)
        teacher = self.teacher_head(self.teacher(queries, memory)).reshape(x.shape)
        student = self.student_head(self.student(queries, memory)).reshape(x.shape)
        return teacher, student

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Weights saved when both decoders shared one `output` head load with that head in both."""
        if "output.weight" in state_dict:
            state_dict = dict(state_dict)
            for name in ("weight", "bias"):
                shared = state_dict.pop(f"output.{name}")
                state_dict[f"teacher_head.{name}"], state_dict[f"student_head.{name}"] = shared, shared.clone()
        return super().load_state_dict(state_dict, strict, assign)

    def random_mask(self, batch: int, device: torch.device) -> torch.Tensor:
        """Mask [B, N]: each window hides a random mask_ratio of its tokens (fixed pattern in eval)."""
        n_hidden = self.n_tokens - round(self.n_tokens * (1 - self.mask_ratio))
        generator = None
        if not self.training:
            generator = torch.Generator(device=device).manual_seed(EVAL_MASK_SEED)
        noise = torch.rand(batch, self.n_tokens, device=device, generator=generator)
        rank = noise.argsort(dim=1).argsort(dim=1)
        return rank < n_hidden

    def block_masks(self) -> torch.Tensor:
        """Token masks [K, N] used for scoring: the last block only, or every block in turn."""
        block = self.score_steps // self.token_size
        if self.scoring == "last_steps":
            starts = [self.n_tokens - block]
        else:
            starts = window_starts(self.n_tokens, block, block).tolist()
        masks = torch.zeros(len(starts), self.n_tokens, dtype=torch.bool, device=self.positions.device)
        for row, start in enumerate(starts):
            masks[row, start:start + block] = True
        return masks

    def step_mask(self, hidden: torch.Tensor) -> torch.Tensor:
        """Token mask [..., N] -> step mask [..., L]."""
        return hidden.repeat_interleave(self.token_size, dim=-1)

    def anomalous_tokens(self, batch: dict, tokens: torch.Tensor) -> torch.Tensor:
        """Those of `tokens` [B, N] that hold a labelled anomaly: a labelled anomalous step where the window
        has step labels, every token of a window labelled 1 where it has series labels only."""
        from_series = tokens & (batch["label"] == 1)[:, None]
        step_label = batch.get("step_label")                                            # [B, L], -1 unknown
        if step_label is None:
            return from_series
        known = (step_label >= 0).all(dim=1, keepdim=True)                              # [B, 1]
        anomalous_steps = (step_label == 1).reshape(tokens.shape[0], self.n_tokens, self.token_size).any(dim=2)
        return torch.where(known, tokens & anomalous_steps, from_series)

    # -- loss -----------------------------------------------------------------------------
    def loss(self, batch: dict) -> dict:
        x = batch["x"]                                                                  # [B, L, C]
        hidden = self.random_mask(x.shape[0], x.device)                                 # [B, N]
        teacher, student = self(x, hidden)

        def token_mean(values: torch.Tensor) -> torch.Tensor:                            # [B, L, C] -> [B, N]
            return values.reshape(x.shape[0], self.n_tokens, -1).mean(dim=2)

        def masked_mean(values: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:     # [B, N] -> [B]
            return (values * tokens).sum(dim=1) / tokens.sum(dim=1).clamp(min=1)

        token_discrepancy = token_mean((teacher.detach() - student) ** 2)
        reconstruction = masked_mean(token_mean((teacher - x) ** 2), hidden)
        discrepancy = masked_mean(token_discrepancy, hidden)
        anomalous_tokens = self.anomalous_tokens(batch, hidden)
        anomalous = anomalous_tokens.any(dim=1)
        # A window with a labelled anomaly only in its visible context enters no term: it is not normal,
        # and the masked steps the decoders predict hold no anomaly for the hinge to push on.
        normal = ~self.anomalous_tokens(batch, torch.ones_like(hidden)).any(dim=1)
        zero = discrepancy.new_zeros(())
        # The teacher models normal data only: labelled anomalies enter through the hinge alone.
        reconstruction_term = reconstruction[normal].mean() if normal.any() else zero
        normal_term = discrepancy[normal].mean() if normal.any() else zero
        anomaly_discrepancy = masked_mean(token_discrepancy, anomalous_tokens)[anomalous]
        anomaly_term = torch.relu(self.margin - anomaly_discrepancy).mean() if anomalous.any() else zero
        discrepancy_term = normal_term + self.anomaly_weight() * anomaly_term
        return {"loss": reconstruction_term + self.lambda_disc * discrepancy_term,
                "reconstruction": reconstruction_term, "discrepancy_normal": normal_term, "anomaly_hinge": anomaly_term}

    # -- scoring --------------------------------------------------------------------------
    def masked_passes(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run every scoring mask over every window: teacher, student [K, B, L, C] and step masks [K, 1, L]."""
        masks = self.block_masks()                                                      # [K, N]
        k, batch = masks.shape[0], x.shape[0]
        repeated = x.unsqueeze(0).expand(k, -1, -1, -1).reshape(k * batch, *x.shape[1:])
        hidden = masks.unsqueeze(1).expand(-1, batch, -1).reshape(k * batch, -1)
        teacher, student = self(repeated, hidden)
        shape = (k, batch, *x.shape[1:])
        return teacher.reshape(shape), student.reshape(shape), self.step_mask(masks).unsqueeze(1)

    def score(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        x = batch["x"]
        teacher, student, masked = self.masked_passes(x)
        per_value = (teacher - student) ** 2 + self.score_reconstruction * (teacher - x) ** 2
        per_pass = per_value.mean(dim=3)                                                # [K, B, L]
        weight = masked.to(per_pass.dtype)
        counts = weight.sum(dim=0)                                                      # [1, L]
        step = (per_pass * weight).sum(dim=0) / counts.clamp(min=1)                      # [B, L]
        step = step.masked_fill(counts == 0, float("nan"))
        return step, step.nanmean(dim=1)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Teacher reconstruction [B, L, C], each step predicted while its block was masked."""
        teacher, _, masked = self.masked_passes(x)
        weight = masked.unsqueeze(-1).to(teacher.dtype)                                 # [K, 1, L, 1]
        rebuilt = (teacher * weight).sum(dim=0) / weight.sum(dim=0).clamp(min=1)
        return torch.where(weight.sum(dim=0) > 0, rebuilt, x)


@register("sdmae")
@dataclass(eq=False)
class SDMAE(TorchDetector):
    window: int = setting(100, at_least=1)
    score_stride: int = setting(10, at_least=1)
    tokens: str = setting("patch", choices=("patch", "step"))
    patch_size: int = setting(10, at_least=1)
    d_model: int = setting(64, at_least=1)
    n_heads: int = setting(4, at_least=1)
    ff_size: int = setting(256, at_least=1)
    dropout: float = setting(0.1, at_least=0, below=1)
    encoder_layers: int = setting(3, at_least=1)
    teacher_layers: int = setting(4, at_least=1)
    student_layers: int = setting(1, at_least=1)
    mask_ratio: float = setting(0.6, above=0, below=1)
    margin: float = setting(1.0, at_least=0)
    lambda_disc: float = setting(0.5, at_least=0)
    anomaly_warmup_fraction: float = setting(0.2, at_least=0, at_most=1)
    scoring: str = setting("sliding", choices=("last_steps", "sliding"))
    score_steps: int = setting(10, at_least=1)
    score_reconstruction: float = setting(1.0, at_least=0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.window % self.token_size:
            raise UserError(f"model.window ({self.window}) must be a multiple of model.patch_size ({self.patch_size})")
        if self.score_steps > self.window or self.score_steps % self.token_size:
            raise UserError(f"model.score_steps ({self.score_steps}) must be a multiple of model.patch_size "
                            f"({self.patch_size}) and at most model.window ({self.window})")
        n_tokens = self.window // self.token_size
        if not 0 < n_tokens - round(n_tokens * (1 - self.mask_ratio)) < n_tokens:
            raise UserError(f"model.mask_ratio ({self.mask_ratio}) must hide at least one and keep at least one of "
                            f"{n_tokens} tokens")
        if self.d_model % self.n_heads:
            raise UserError(f"model.d_model ({self.d_model}) must be divisible by model.n_heads ({self.n_heads})")

    @property
    def token_size(self) -> int:
        """Steps per token: a patch, or a single step."""
        return self.patch_size if self.tokens == "patch" else 1

    def batches(self, data, batch_size: int, shuffle: bool, stride: int | None = None) -> WindowBatches:
        """Training windows with the step labels of labelled series, so that the loss can tell which
        masked steps are anomalous."""
        return WindowBatches(data, self.window, stride or self.train_stride, batch_size, shuffle, self.seed,
                             step_labels=True)

    def _score(self, data):
        """Causal scoring keeps only each window's last step, which only the last scoring block covers:
        one masked pass per window instead of one per block gives the same scores."""
        if not self.causal or self.module.scoring == "last_steps":
            return super()._score(data)
        self.module.scoring = "last_steps"
        try:
            return super()._score(data)
        finally:
            self.module.scoring = self.scoring

    def build_module(self, n_channels: int) -> SDMAEModule:
        return SDMAEModule(self, n_channels)
