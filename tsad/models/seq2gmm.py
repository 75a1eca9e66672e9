"""Seq2GMM (Yang, Dou, Luo, Wang, Poor, IEEE TNSE 2022): a series is cut into S segments by a
piecewise-linear fit, a GRU sequence-to-sequence autoencoder compresses every segment, and
a Gaussian mixture over [relative reconstruction distance, code, cosine similarity] gives
each segment an energy. A series scores its most anomalous segment, so the segment
energies also say where in the series the anomaly is.

  segmentation  pwlf fit of S continuous lines to the series' first principal component;
                segment i spans breakpoints b_i..b_{i+1} inclusive (neighbours share a step).
                Fitted once per data set and cached on disk ($TSAD_CACHE_DIR, default
                ~/.cache/tsad). n_segments=0 picks S automatically (see choose_n_segments in
                tsad/models/segmentation.py, where the segmentation lives).
  compression   GRU encoder over the segment, its state at the last valid step -> code [M, H];
                GRU decoder started from the code and fed, at every step, the code and
                (decoder_input="previous") the segment's previous true step -> reconstruction
                [M, L, C]. "code" feeds the code
                alone, so the decoder never sees the segment (pure compression); "previous"
                makes each step a prediction from the code and the past, which learns far faster
                (the reference decoder runs free on its own outputs)
  features      over valid steps: |t - r| / |t|, code, cos(t, r) -> z [M, H + 2]
  estimation    MLP + softmax -> memberships gamma [M, K]
  energy        -log sum_k gamma_k(z) N(z; mu_k, Sigma_k): the network's memberships weight
                the components (as in the paper), the components come from EM

Training is the surrogate scheme: at the start of every epoch the GMM is refitted by EM on
the current codes of all train segments (from the previous fit and from a fresh start, the
more likely one kept, each component keeping its index) and held fixed while the network
takes gradient steps on  mean_m |t_m - r_m|_2 + lambda_energy * mean energy.
For the original full-batch scheme (one EM step, one gradient step per epoch) set
trainer.batch_size to at least the number of train series. After training the GMM is refitted
once more on the final codes and stored with the weights. With K > 1 the estimation network
learns which component explains each code; with K = 1 (the reference default) gamma is 1.

Components have full covariances by default; the reference code's diagonal ones
(covariance_type=diag) ignore how strongly the GRU code dimensions correlate, so normal
codes off the axes get high energies. The choice was made on labelled validation splits only,
never on test. Validation ROC-AUC / PR-AUC, mean +- sample std over seeds 0-2:
                                          full                              diag
  synthetic series, labelled_val=60       0.925 +- 0.030 / 0.886 +- 0.058   0.871 +- 0.034 / 0.764 +- 0.056
  ECG5000, labelled_val=0.2               0.996 +- 0.004 / 0.994 +- 0.007   0.871 +- 0.149 / 0.873 +- 0.149
(synthetic: 60 series drawn like test; ECG5000: 58 held-out normal and 41 anomalous TRAIN
beats.) Full is ahead for every seed on both, and diag is unsteady (ECG5000 seed 0: 0.706).
TwoLeadECG's 12 normal TRAIN beats leave no room for a labelled split, so it was not used.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from tsad.models import gmm
from tsad.models.base import register
from tsad.models.segmentation import Segmenter, choose_n_segments
from tsad.models.state_files import damaged, read_json_object, required_entries
from tsad.models.torch_detector import SeriesTorchDetector
from tsad.settings.fields import setting

log = logging.getLogger(__name__)


# -- the network -------------------------------------------------------------------------------
class Seq2GMMModule(nn.Module):
    def __init__(self, config: Seq2GMM, n_channels: int, breakpoints: Segmenter):
        super().__init__()
        hidden, estimation_hidden, n_components = config.hidden_size, config.estimation_hidden, config.n_components
        self.encoder = nn.GRU(n_channels, hidden, batch_first=True)
        self.feed_previous = config.decoder_input == "previous"
        self.decoder = nn.GRU(hidden + (n_channels if self.feed_previous else 0), hidden, batch_first=True)
        self.to_output = nn.Linear(hidden, n_channels)
        dim_z = hidden + 2
        self.estimation = nn.Sequential(nn.Linear(dim_z, estimation_hidden), nn.Tanh(),
                                        nn.Linear(estimation_hidden, estimation_hidden), nn.Tanh(),
                                        nn.Linear(estimation_hidden, n_components))
        self.n_components, self.covariance_type = n_components, config.covariance_type
        self.lambda_energy, self.reg_covar = config.lambda_energy, config.reg_covar
        self.em_max_iter = config.em_max_iter
        self.jitter, self.seed = config.jitter, config.seed
        self.breakpoints = breakpoints          # series [T, C] -> breakpoints [S + 1]
        self.train_batches = None
        self.epochs = config.epochs
        self.stage_epochs: dict[str, int] = {}
        covariances = (torch.ones(n_components, dim_z, dtype=torch.float64) if config.covariance_type == "diag"
                       else torch.eye(dim_z, dtype=torch.float64).repeat(n_components, 1, 1))
        self.register_buffer("gmm_weights", torch.full((n_components,), 1.0 / n_components, dtype=torch.float64))
        self.register_buffer("gmm_means", torch.zeros(n_components, dim_z, dtype=torch.float64))
        self.register_buffer("gmm_covariances", covariances)
        self.register_buffer("gmm_fitted", torch.tensor(False))

    def segments(self, batch: dict) -> dict:
        """Cut every series of the batch at its breakpoints: segments [M, L, C] zero-padded, plus bookkeeping."""
        x = batch["x"]
        values = x.detach().float().cpu().numpy()
        rows, starts, stops = [], [], []
        for row, length in enumerate(batch["lengths"].tolist()):
            breaks = self.breakpoints(values[row, :length])
            rows.extend([row] * (len(breaks) - 1))
            starts.extend(breaks[:-1].tolist())
            stops.extend(breaks[1:].tolist())
        device = x.device
        rows, starts = torch.tensor(rows, device=device), torch.tensor(starts, device=device)
        lengths = torch.tensor(stops, device=device) - starts + 1                       # [M]
        offsets = torch.arange(int(lengths.max()), device=device)
        valid = offsets[None, :] < lengths[:, None]                                     # [M, L]
        positions = (starts[:, None] + offsets[None, :]).clamp(max=x.shape[1] - 1)
        pieces = x[rows[:, None], positions] * valid.unsqueeze(-1)
        return {"x": pieces, "lengths": lengths, "valid": valid, "rows": rows, "positions": positions}

    def compress(self, segments: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """z = [relative distance, code, cosine] [M, H + 2] and the reconstruction distance |t - r| [M]."""
        target, valid = segments["x"], segments["valid"].unsqueeze(-1).to(segments["x"].dtype)
        # The GRU is causal, so the zero padding after a segment never reaches the state at its last step.
        states, _ = self.encoder(target)                                                # [M, L, H]
        code = states[torch.arange(len(states), device=states.device), segments["lengths"] - 1]
        h_n = code.unsqueeze(0)
        inputs = code.unsqueeze(1).expand(-1, target.shape[1], -1)                     # [M, L, H]
        if self.feed_previous:
            previous = torch.cat([torch.zeros_like(target[:, :1]), target[:, :-1]], dim=1)
            inputs = torch.cat([inputs, previous], dim=2)
        out, _ = self.decoder(inputs, h_n.contiguous())
        output = self.to_output(out) * valid                                            # [M, L, C]
        distance = (target - output).flatten(1).norm(dim=1)
        norm_target, norm_output = target.flatten(1).norm(dim=1), output.flatten(1).norm(dim=1)
        relative = distance / norm_target.clamp_min(1e-6)
        cosine = (target * output).flatten(1).sum(1) / (norm_target * norm_output).clamp_min(1e-6)
        return torch.cat([relative[:, None], code, cosine[:, None]], dim=1).float(), distance

    def segment_energy(self, z: torch.Tensor) -> torch.Tensor:
        log_memberships = torch.log_softmax(self.estimation(z), dim=1)                  # [M, K]
        return gmm.energy(z, log_memberships, self.gmm_means, self.gmm_covariances, self.jitter)

    # -- training: EM on fixed codes, then gradient steps with the GMM fixed --------------------
    def on_fit_start(self, trainer, batches) -> None:
        self.stage_epochs = {"train": trainer.epochs_for(self.epochs)}
        self.train_batches = batches

    def on_epoch_start(self, epoch: int) -> None:
        self.fit_mixture(self.train_batches)

    def on_fit_end(self, trainer, batches) -> None:
        self.fit_mixture(batches)
        self.train_batches = None

    @torch.no_grad()
    def fit_mixture(self, batches) -> None:
        """EM on the codes of all train segments (also started from the current mixture once there is one)."""
        was_training = self.training
        self.eval()
        device = self.gmm_means.device
        z = torch.cat([self.compress(self.segments({k: v.to(device) for k, v in batch.items()}))[0]
                       for batch in batches])
        init = (self.gmm_weights, self.gmm_means, self.gmm_covariances) if bool(self.gmm_fitted) else None
        weights, means, covariances = gmm.fit_em(z, self.n_components, self.covariance_type, self.reg_covar,
                                                 self.em_max_iter, init=init, seed=self.seed, jitter=self.jitter)
        self.gmm_weights.copy_(weights)
        self.gmm_means.copy_(means)
        self.gmm_covariances.copy_(covariances)
        self.gmm_fitted.fill_(True)
        self.train(was_training)

    def loss(self, batch: dict) -> dict:
        z, distance = self.compress(self.segments(batch))
        reconstruction = distance.mean()
        if not bool(self.gmm_fitted):
            return {"loss": reconstruction, "reconstruction": reconstruction}
        energy = self.segment_energy(z).mean()
        return {"loss": reconstruction + self.lambda_energy * energy.float(), "reconstruction": reconstruction,
                "energy": energy.detach()}

    # -- scoring ----------------------------------------------------------------------------------
    def score(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Series score = its largest segment energy; a step's score = the energy of its segment
        (the larger of the two at a shared breakpoint step)."""
        if not bool(self.gmm_fitted):
            raise RuntimeError("seq2gmm: the GMM is fitted during training; fit the model first")
        x = batch["x"]
        segments = self.segments(batch)
        energies = self.segment_energy(self.compress(segments)[0])                    # [M]
        batch_size, length = x.shape[:2]
        series = torch.full((batch_size,), -torch.inf, dtype=energies.dtype, device=x.device)
        series = series.scatter_reduce(0, segments["rows"], energies, "amax")
        valid = segments["valid"]
        flat = (segments["rows"][:, None] * length + segments["positions"])[valid]
        steps = torch.full((batch_size * length,), -torch.inf, dtype=energies.dtype, device=x.device)
        steps = steps.scatter_reduce(0, flat, energies[:, None].expand_as(valid)[valid], "amax")
        steps = steps.view(batch_size, length)
        return torch.where(batch["mask"], steps, torch.zeros_like(steps)), series


@register("seq2gmm")
@dataclass(eq=False)
class Seq2GMM(SeriesTorchDetector):
    n_segments: int = setting(3, at_least=0)   # 0: chosen on the train set
    max_auto_segments: int = setting(5, at_least=2)
    breakpoint_freedom: float = setting(0.4, at_least=0, at_most=0.5)
    segment_max_points: int = setting(100, at_least=4)
    pwlf_maxiter: int = setting(50, at_least=1)
    pwlf_popsize: int = setting(8, at_least=1)
    hidden_size: int = setting(15, at_least=1)
    decoder_input: str = setting("previous", choices=("previous", "code"))
    n_components: int = setting(1, at_least=1)
    covariance_type: str = setting("full", choices=gmm.COVARIANCE_TYPES)
    estimation_hidden: int = setting(128, at_least=1)
    lambda_energy: float = setting(1e-4, at_least=0)
    reg_covar: float = setting(1e-4, at_least=0)
    em_max_iter: int = setting(100, at_least=1)
    jitter: float = setting(1e-6, at_least=0)
    epochs: int = setting(100, at_least=1)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.segments_per_series = self.n_segments   # resolved from the train set when n_segments = 0
        self.segmenter: Segmenter | None = None

    def make_segmenter(self, n_segments: int) -> Segmenter:
        return Segmenter(n_segments, self.breakpoint_freedom, self.segment_max_points, self.pwlf_maxiter,
                         self.pwlf_popsize)

    def _fit(self, train, val) -> None:
        if self.n_segments == 0:
            self.segments_per_series = choose_n_segments(train.values, self.max_auto_segments, self.make_segmenter)
            log.info("seq2gmm: chose S=%d segments per series", self.segments_per_series)
        self.segmenter = self.make_segmenter(self.segments_per_series)
        self.segmenter.prepare(train.values + ([] if val is None else val.values))
        super()._fit(train, val)

    def _score(self, data):
        self.segmenter.prepare(data.values)
        return super()._score(data)

    def build_module(self, n_channels: int) -> Seq2GMMModule:
        if self.segmenter is None:
            self.segmenter = self.make_segmenter(self.segments_per_series)
        return Seq2GMMModule(self, n_channels, breakpoints=self.segmenter)

    def _save_state(self, directory: Path) -> None:
        super()._save_state(directory)
        (directory / "segmentation.json").write_text(json.dumps({"segments_per_series": self.segments_per_series}))

    def _load_state(self, directory: Path) -> None:
        path = directory / "segmentation.json"
        segmentation = read_json_object(path)
        required_entries(path, segmentation, {"segments_per_series": int})
        if segmentation["segments_per_series"] < 1:
            raise damaged(path, f"has segments_per_series={segmentation['segments_per_series']}, not a count")
        self.segments_per_series = segmentation["segments_per_series"]
        super()._load_state(directory)
