"""TRACE-GPT (Lee, Choi, Kim, arXiv 2309.11427): a causal convolutional embedding followed by a
GPT-style decoder, pre-trained on next-value prediction with a cross-entropy loss; the anomaly
score of a step is the negative log-likelihood of the value actually observed there.

An interpretation. The paper names the parts (temporal convolutional embedding, generative
pre-trained Transformer, next-value cross-entropy used both for pre-training and to separate
abnormal sequences) but no code or layer sizes were published. What is ours:

- Tokens. Cross-entropy on a next value needs categorical targets, so each channel is robustly
  scaled with its train median and interquartile range, clipped to [-clip, clip] and cut into
  `n_bins` equal bins. The bin edges are fitted on train at the start of training and kept as
  buffers, so a saved model tokenises new data exactly as it did in training.
- Channels. The paper's traces are univariate. By default a window's channels enter the
  embedding together and the head predicts every channel's next bin (channels independent given
  the past of all channels), which uses cross-channel structure and costs one sequence per
  window; `channel_independent` runs each channel as its own sequence through shared weights
  instead (C times the compute). Either way a step's score is the sum of its channels' NLLs.
- Embedding. Residual blocks of two dilated causal convolutions (dilations 1, 2, 4, ...; left
  padding only) over the clipped, scaled values, plus learned positions.
- Decoder. Pre-LayerNorm Transformer blocks with a causal mask and a linear head over the bins.
- First step. A learned begin-of-sequence vector precedes the embedded values, so position t
  predicts token t from values before t only, and step 0 gets a (marginal) prediction too:
  every step of a window is scored and nothing is borrowed from later steps.

Step score. By default the NLL of the observed bin. That NLL also counts how uncertain the
prediction was, so steps that are hard to predict in every series (noise, steep edges) score high
in normal series too; on ECG5000 normal beats even get a higher median step NLL than anomalous
ones. `step_score=excess_nll` subtracts the entropy of the predicted distribution (the NLL the
model expected at that step), which leaves the surprise alone (docs/results.md, ECG section).

Causality is exact: the score of step t depends on steps <= t only, through the convolutions
(left padding), the attention mask and the begin-of-sequence shift. Windows overlapping a step
combine their scores for it (different context lengths); they all end at or after that step but
only see up to it, so a change at step t never moves a score before t.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tsad.errors import UserError
from tsad.models.base import register
from tsad.models.torch_detector import TorchDetector
from tsad.settings.fields import setting

MAX_TOKENISER_STEPS = 1_000_000  # train steps (sampled) used to fit the bin edges


class CausalConvBlock(nn.Module):
    """Two dilated causal convolutions with a residual: output t sees inputs <= t."""

    def __init__(self, channels: int, kernel_size: int, dilation: int, dropout: float):
        super().__init__()
        self.left_pad = (kernel_size - 1) * dilation
        self.conv1 = nn.Conv1d(channels, channels, kernel_size, dilation=dilation)
        self.conv2 = nn.Conv1d(channels, channels, kernel_size, dilation=dilation)
        self.dropout = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor) -> torch.Tensor:       # [N, D, T]
        y = self.dropout(F.gelu(self.conv1(F.pad(h, (self.left_pad, 0)))))
        y = self.dropout(F.gelu(self.conv2(F.pad(y, (self.left_pad, 0)))))
        return h + y


class CausalSelfAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor) -> torch.Tensor:       # [N, T, D]
        n, length, d_model = h.shape
        q, k, v = self.qkv(h).view(n, length, 3, self.n_heads, d_model // self.n_heads).permute(2, 0, 3, 1, 4)
        mixed = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.dropout(self.out(mixed.transpose(1, 2).reshape(n, length, d_model)))


class DecoderBlock(nn.Module):
    def __init__(self, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attention = CausalSelfAttention(d_model, n_heads, dropout)
        self.norm2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model),
                                 nn.Dropout(dropout))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = h + self.attention(self.norm1(h))
        return h + self.mlp(self.norm2(h))


class TraceGPTModule(nn.Module):
    def __init__(self, config: TraceGPT, n_channels: int):
        super().__init__()
        n_bins, d_model, dropout = config.n_bins, config.d_model, config.dropout
        self.n_bins, self.clip, self.channel_independent = n_bins, config.clip, config.channel_independent
        self.step_score = config.step_score
        sequence_channels = 1 if config.channel_independent else n_channels
        # Tokeniser state, fitted on train in on_fit_start.
        self.register_buffer("center", torch.zeros(n_channels))
        self.register_buffer("scale", torch.ones(n_channels))
        self.register_buffer("edges", torch.zeros(n_channels, n_bins - 1))
        self.input = nn.Conv1d(sequence_channels, d_model, 1)
        self.convs = nn.Sequential(*(CausalConvBlock(d_model, config.kernel_size, 2**i, dropout)
                                     for i in range(config.n_conv_blocks)))
        self.begin = nn.Parameter(torch.zeros(1, 1, d_model))
        self.positions = nn.Parameter(torch.zeros(1, config.window, d_model))
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(DecoderBlock(d_model, config.n_heads, dropout) for _ in range(config.n_layers))
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, sequence_channels * n_bins)
        nn.init.normal_(self.begin, std=0.02)
        nn.init.normal_(self.positions, std=0.02)

    # -- tokeniser ------------------------------------------------------------------
    def on_fit_start(self, trainer, batches) -> None:
        """Fit per-channel median, IQR and the bin edges on the train windows."""
        values = torch.cat([batch["x"].flatten(0, 1) for batch in batches]).float()        # [N*L, C]
        if len(values) > MAX_TOKENISER_STEPS:
            keep = torch.randperm(len(values), generator=torch.Generator().manual_seed(0))[:MAX_TOKENISER_STEPS]
            values = values[keep]
        # One channel at a time: torch.quantile refuses inputs of more than 2**24 values.
        quartiles = torch.stack([torch.quantile(column, torch.tensor([0.25, 0.5, 0.75])) for column in values.T], dim=1)
        low, median, high = quartiles
        iqr = high - low
        scale = torch.where(iqr > 1e-6, iqr, torch.ones_like(iqr))
        unit_edges = torch.linspace(-self.clip, self.clip, self.n_bins + 1)[1:-1]
        self.center.copy_(median)
        self.scale.copy_(scale)
        self.edges.copy_(median[:, None] + scale[:, None] * unit_edges[None, :])

    def tokenise(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Windows [B, L, C] -> (scaled clipped values [B, C, L], bin ids [B, C, L])."""
        x = x.float().transpose(1, 2)
        scaled = ((x - self.center[:, None]) / self.scale[:, None]).clamp(-self.clip, self.clip)
        tokens = torch.stack([torch.bucketize(x[:, c].contiguous(), self.edges[c]) for c in range(x.shape[1])], dim=1)
        return scaled, tokens

    # -- model ----------------------------------------------------------------------
    def step_nll(self, x: torch.Tensor, excess: bool = False) -> torch.Tensor:
        """NLL of each observed bin given the steps before it, summed over channels: [B, L].
        excess: minus the entropy of the predicted distribution (the NLL the model expected there)."""
        batch, length, channels = x.shape
        scaled, tokens = self.tokenise(x)
        # Sequences [N, channels in, L]: one per channel (N = B*C) or one per window (N = B).
        sequences = scaled.flatten(0, 1)[:, None] if self.channel_independent else scaled
        embedded = self.convs(self.input(sequences)).transpose(1, 2)                       # [N, L, D]
        # Shift right: position t sees embeddings of steps < t and predicts token t.
        h = torch.cat([self.begin.expand(len(embedded), 1, -1), embedded[:, :-1]], dim=1)
        h = self.dropout(h + self.positions[:, :length])
        for block in self.blocks:
            h = block(h)
        logits = self.head(self.norm(h)).float()                                             # [N, L, (C) * bins]
        if self.channel_independent:
            logits = logits.view(batch, channels, length, self.n_bins)
        else:
            logits = logits.view(batch, length, channels, self.n_bins).transpose(1, 2)      # [B, C, L, bins]
        nll = F.cross_entropy(logits.flatten(0, 2), tokens.flatten(), reduction="none").view(batch, channels, length)
        if excess:
            log_p = torch.log_softmax(logits, dim=-1)
            nll = nll + (log_p.exp() * log_p).sum(dim=-1)
        return nll.sum(dim=1)

    def loss(self, batch: dict) -> dict:
        nll = self.step_nll(batch["x"])
        return {"loss": nll.mean() / batch["x"].shape[2]}

    def score(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        nll = self.step_nll(batch["x"], excess=self.step_score == "excess_nll")
        return nll, nll.mean(dim=1)


@register("tracegpt")
@dataclass(eq=False)
class TraceGPT(TorchDetector):
    train_stride: int = setting(8, at_least=1)
    score_stride: int = setting(8, at_least=1)
    n_bins: int = setting(256, at_least=2)
    clip: float = setting(6.0, above=0)
    d_model: int = setting(64, at_least=1)
    n_conv_blocks: int = setting(4, at_least=1)
    kernel_size: int = setting(3, at_least=1)
    n_layers: int = setting(4, at_least=1)
    n_heads: int = setting(4, at_least=1)
    dropout: float = setting(0.1, at_least=0, below=1)
    channel_independent: bool = False
    step_score: str = setting("nll", choices=("nll", "excess_nll"))

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.d_model % self.n_heads:
            raise UserError(f"model.d_model ({self.d_model}) must be divisible by model.n_heads ({self.n_heads})")

    def build_module(self, n_channels: int) -> TraceGPTModule:
        return TraceGPTModule(self, n_channels)
