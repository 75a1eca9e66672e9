"""Torch models: an nn.Module trained by the shared trainer, on windows (TorchDetector) or on whole
padded series with a mask (SeriesTorchDetector).

A torch model subclasses one of them and builds in `build_module(n_channels)` an `nn.Module`, given the
model's dataclass as its config (`LSTMVAEModule(self, n_channels)`, which reads `config.hidden_size`), exposing
  loss(batch) -> dict with a "loss" entry (plus any components worth logging)
  score(batch) -> (step_scores [B, T], series_scores [B])
for the batches of tsad/data/batches.py. For window models T is the window length and the wrapper
maps window scores back to steps; a module may return NaN for steps it does not score (e.g. only
the last step of a window).

Optional module hooks the shared trainer calls: on_fit_start(trainer, batches),
on_epoch_start(epoch), after_step(step), on_fit_end(trainer, batches), and a `stages`
tuple for models trained in several stages (the trainer sets `module.stage`). By stage name,
optional `stage_epochs` (set in on_fit_start from `trainer.epochs_for(n)`, so that a user's
trainer.max_epochs still caps them) and `stage_settings`: a stage's own lr, weight_decay,
schedule or patience.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tsad.data.batches import BatchSource, SeriesBatches, WindowBatches, window_batch
from tsad.data.series import SeriesSet
from tsad.data.windows import SERIES_AGGREGATES, STEP_REDUCES
from tsad.models.base import Detector, Scores
from tsad.models.state_files import load_weights
from tsad.models.window_scoring import WindowScorer
from tsad.settings.fields import setting


@dataclass(eq=False)
class TorchModuleDetector(Detector):
    """What every torch model shares: build the module, train it with the shared trainer, save its weights."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.module = None

    @abstractmethod
    def build_module(self, n_channels: int):
        """Return the nn.Module for `n_channels` input channels."""

    @abstractmethod
    def batches(self, data: SeriesSet, batch_size: int, shuffle: bool) -> BatchSource:
        """The training (and validation) batches of `data`."""

    @property
    def n_parameters(self) -> int:
        return 0 if self.module is None else int(sum(p.numel() for p in self.module.parameters()))

    def _fit(self, train: SeriesSet, val: SeriesSet | None) -> None:
        import torch

        from tsad.training.trainer import Trainer

        torch.manual_seed(self.seed)
        self.module = self.build_module(train.n_channels)
        trainer = Trainer(self.runtime.trainer, device=self.device, checkpoint_dir=self.runtime.checkpoint_dir,
                          epoch_callbacks=self.runtime.epoch_callbacks)
        batch_size = trainer.batch_size
        val_batches = None if val is None or len(val) == 0 else self.batches(val, batch_size, shuffle=False)
        self.history = trainer.fit(self.module, self.batches(train, batch_size, shuffle=True), val_batches)

    def _scoring_setup(self):
        """Put the module in eval mode on the run's device; returns (score one batch -> numpy, batch size)."""
        import torch

        self.module.eval()
        device = torch.device(self.device)
        self.module.to(device)

        def run(batch: dict) -> tuple[np.ndarray, np.ndarray]:
            with torch.no_grad():
                step, series = self.module.score({k: v.to(device) for k, v in batch.items()})
            return step.float().cpu().numpy(), series.float().cpu().numpy()

        return run, self.runtime.trainer.batch_size

    def _save_state(self, directory: Path) -> None:
        import torch

        with open(directory / "weights.pt", "wb") as handle:  # a full disk: Python's OSError with its errno
            torch.save({k: v.detach().cpu() for k, v in self.module.state_dict().items()}, handle)

    def _load_state(self, directory: Path) -> None:
        self.module = self.build_module(self.n_channels)
        load_weights(directory / "weights.pt", self.module)


@dataclass(eq=False)
class TorchDetector(WindowScorer, TorchModuleDetector):
    """A torch model of fixed-length windows: trained on windows every `train_stride` steps, scored on
    windows every `score_stride` steps, overlapping window scores combined per step by `step_reduce`."""

    window: int = setting(64, at_least=1)
    train_stride: int = setting(4, at_least=1)
    score_stride: int = setting(1, at_least=1)
    step_reduce: str = setting("mean", choices=STEP_REDUCES)
    series_aggregate: str = setting("max", choices=SERIES_AGGREGATES)

    @property
    def can_reconstruct(self) -> bool:
        return hasattr(self.module, "reconstruct")

    def reconstruct_windows(self, windows: np.ndarray) -> np.ndarray:
        import torch

        self.module.eval()
        with torch.no_grad():
            windows = torch.from_numpy(np.ascontiguousarray(windows)).to(self.device)
            return self.module.reconstruct(windows).cpu().numpy()

    def batches(self, data: SeriesSet, batch_size: int, shuffle: bool, stride: int | None = None) -> BatchSource:
        return WindowBatches(data, self.window, stride or self.train_stride, batch_size, shuffle, self.seed)

    def _score(self, data: SeriesSet) -> Scores:
        import torch

        run, batch_size = self._scoring_setup()

        def score_windows(windows: np.ndarray) -> np.ndarray:
            out = []
            for start in range(0, len(windows), batch_size):
                # writable as well as contiguous: torch warns on (and may not use) a read-only view
                chunk = torch.from_numpy(np.require(windows[start:start + batch_size], requirements=("C", "W")))
                out.append(run(window_batch(chunk))[0])
            return np.concatenate(out)

        return self._window_scores_to_scores(data, score_windows)


@dataclass(eq=False)
class SeriesTorchDetector(TorchModuleDetector):
    """A torch model of whole series, padded to the longest in a batch with a mask of real steps."""

    @classmethod
    def reads_whole_series(cls) -> bool:
        return True

    def batches(self, data: SeriesSet, batch_size: int, shuffle: bool) -> BatchSource:
        return SeriesBatches(data, batch_size, shuffle, self.seed)

    def _score(self, data: SeriesSet) -> Scores:
        run, batch_size = self._scoring_setup()
        steps, series_scores = [], []
        for index, batch in SeriesBatches(data, batch_size, shuffle=False, seed=0).with_index():
            step, series = run(batch)
            for row, i in enumerate(index):
                steps.append((i, step[row, : len(data.values[i])].astype(np.float64)))
            series_scores.extend(zip(index, series.astype(np.float64)))
        steps = [s for _, s in sorted(steps, key=lambda item: item[0])]
        return Scores(steps, np.array([s for _, s in sorted(series_scores, key=lambda item: item[0])]))
