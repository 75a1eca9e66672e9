"""The largest absolute z-score over channels per step: against train statistics or a trailing window."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tsad.data.series import SeriesSet
from tsad.data.windows import SERIES_AGGREGATES, aggregate_series
from tsad.models.base import Detector, Scores, register
from tsad.models.state_files import load_arrays, save_arrays
from tsad.settings.fields import setting


@register("zscore")
@dataclass(eq=False)
class ZScoreDetector(Detector):
    """Largest |z| over channels per step: against train statistics (global) or a trailing window (rolling)."""

    mode: str = setting("global", choices=("global", "rolling"))
    window: int = setting(50, at_least=2)   # the rolling statistics need two past steps
    series_aggregate: str = setting("max", choices=SERIES_AGGREGATES)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None

    def _fit(self, train: SeriesSet, val: SeriesSet | None) -> None:
        stacked = np.concatenate(train.values).astype(np.float64)
        self.mean, self.std = stacked.mean(axis=0), np.maximum(stacked.std(axis=0), 1e-8)

    def _score(self, data: SeriesSet) -> Scores:
        steps = [self._step_scores(np.asarray(s, dtype=np.float64)) for s in data.values]
        return Scores(steps, np.array([aggregate_series(s, self.series_aggregate) for s in steps]))

    def _step_scores(self, series: np.ndarray) -> np.ndarray:
        if self.mode == "global":
            return np.abs((series - self.mean) / self.std).max(axis=1)
        import pandas as pd

        frame = pd.DataFrame(series)
        past = frame.shift(1).rolling(self.window, min_periods=2)
        mean = past.mean().fillna(pd.Series(self.mean)).to_numpy()
        std = past.std().fillna(pd.Series(self.std)).to_numpy()
        return np.abs((series - mean) / np.maximum(std, 1e-8)).max(axis=1)

    def _save_state(self, directory: Path) -> None:
        save_arrays(directory / "stats.npz", self.name, {"mean": self.mean, "std": self.std})

    def _load_state(self, directory: Path) -> None:
        stats = load_arrays(directory / "stats.npz", self.name)
        self.mean, self.std = (stats.array(key, (self.n_channels,), "f") for key in ("mean", "std"))
