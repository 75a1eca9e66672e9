"""Honest baselines through the same contract: random, isolation forest, PCA, kNN, z-score.

Window baselines see flattened windows [window * C] of the normalised series; a window's
score goes to every step it covers and overlapping windows are combined per step.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path

import numpy as np

from tsad.data.series import SeriesSet
from tsad.data.windows import aggregate_series, make_windows
from tsad.errors import UserError
from tsad.models.base import Detector, Scores, WindowScorer, register


class WindowBaseline(WindowScorer, Detector):
    """Shared window plumbing for the scikit-learn style baselines."""

    def __init__(self, window: int = 32, stride: int = 4, score_stride: int = 1, step_reduce: str = "mean",
                 series_aggregate: str = "max", max_train_windows: int = 20000):
        super().__init__()
        if window < 1 or stride < 1 or score_stride < 1:
            raise UserError(f"model.window, model.stride and model.score_stride must be >= 1 (got {window}, {stride}, {score_stride})")
        self.window = window
        self.stride = stride
        self.score_stride = score_stride
        self.step_reduce = step_reduce
        self.series_aggregate = series_aggregate
        self.max_train_windows = max_train_windows
        self.estimator = None

    def train_windows(self, data: SeriesSet) -> np.ndarray:
        """Flattened train windows [N, window * C], subsampled (seeded) to max_train_windows."""
        windows = np.concatenate([make_windows(s, self.window, self.stride)[0] for s in data.values])
        if len(windows) > self.max_train_windows:
            keep = np.random.default_rng(self.seed).choice(len(windows), self.max_train_windows, replace=False)
            windows = windows[np.sort(keep)]
        return windows.reshape(len(windows), -1)

    def _fit(self, train: SeriesSet, val: SeriesSet | None) -> None:
        self.estimator = self.fit_windows(self.train_windows(train))

    def _score(self, data: SeriesSet) -> Scores:
        return self._window_scores_to_scores(data, self.score_windows)

    @abstractmethod
    def fit_windows(self, windows: np.ndarray): ...

    @abstractmethod
    def score_windows(self, windows: np.ndarray) -> np.ndarray:
        """Windows [N, L, C] -> per-step scores [N, L]."""

    def _save_state(self, directory: Path) -> None:
        import joblib

        joblib.dump(self.estimator, directory / "estimator.joblib")

    def _load_state(self, directory: Path) -> None:
        import joblib

        self.estimator = joblib.load(directory / "estimator.joblib")


def broadcast_window_score(window_scores: np.ndarray, window: int) -> np.ndarray:
    return np.repeat(window_scores[:, None], window, axis=1)


@register("random")
class RandomDetector(Detector):
    """Uniform random scores: the floor every detector must clear (and the pa_f1 sanity check)."""

    def __init__(self, series_aggregate: str = "max"):
        super().__init__()
        self.series_aggregate = series_aggregate

    def _fit(self, train: SeriesSet, val: SeriesSet | None) -> None:
        pass

    def _score(self, data: SeriesSet) -> Scores:
        rng = np.random.default_rng([self.seed, len(data), int(data.lengths.sum())])
        steps = [rng.random(len(s)) for s in data.values]
        return Scores(steps, np.array([aggregate_series(s, self.series_aggregate) for s in steps]))

    def _save_state(self, directory: Path) -> None:
        pass

    def _load_state(self, directory: Path) -> None:
        pass


@register("iforest")
class IsolationForestDetector(WindowBaseline):
    """Isolation forest on flattened windows; score = negated sklearn score_samples."""

    def __init__(self, window: int = 32, stride: int = 4, score_stride: int = 1, step_reduce: str = "mean",
                 series_aggregate: str = "max", max_train_windows: int = 20000, n_estimators: int = 200,
                 max_samples: int = 256):
        super().__init__(window, stride, score_stride, step_reduce, series_aggregate, max_train_windows)
        self.n_estimators = n_estimators
        self.max_samples = max_samples

    def fit_windows(self, windows: np.ndarray):
        from sklearn.ensemble import IsolationForest

        return IsolationForest(n_estimators=self.n_estimators, max_samples=min(self.max_samples, len(windows)),
                               random_state=self.seed).fit(windows)

    def score_windows(self, windows: np.ndarray) -> np.ndarray:
        scores = -self.estimator.score_samples(windows.reshape(len(windows), -1))
        return broadcast_window_score(scores, windows.shape[1])


@register("pca")
class PCADetector(WindowBaseline):
    """PCA on flattened windows; a step's score is its squared reconstruction error over channels."""

    def __init__(self, window: int = 32, stride: int = 4, score_stride: int = 1, step_reduce: str = "mean",
                 series_aggregate: str = "max", max_train_windows: int = 20000, n_components: float = 0.95):
        super().__init__(window, stride, score_stride, step_reduce, series_aggregate, max_train_windows)
        self.n_components = n_components

    def fit_windows(self, windows: np.ndarray):
        from sklearn.decomposition import PCA

        n_components = int(self.n_components) if self.n_components >= 1 else self.n_components
        return PCA(n_components=n_components, random_state=self.seed).fit(windows)

    def reconstruct_windows(self, windows: np.ndarray) -> np.ndarray:
        flat = windows.reshape(len(windows), -1)
        return self.estimator.inverse_transform(self.estimator.transform(flat)).reshape(windows.shape)

    def score_windows(self, windows: np.ndarray) -> np.ndarray:
        return ((windows - self.reconstruct_windows(windows)) ** 2).sum(axis=2)


@register("knn")
class KNNDetector(WindowBaseline):
    """Distance from each window to its k-th nearest train window."""

    def __init__(self, window: int = 32, stride: int = 4, score_stride: int = 1, step_reduce: str = "mean",
                 series_aggregate: str = "max", max_train_windows: int = 5000, k: int = 5):
        super().__init__(window, stride, score_stride, step_reduce, series_aggregate, max_train_windows)
        self.k = k

    def fit_windows(self, windows: np.ndarray):
        from sklearn.neighbors import NearestNeighbors

        if len(windows) < self.k:
            raise UserError(f"model.k={self.k} exceeds the {len(windows)} train windows; lower model.k")
        return NearestNeighbors(n_neighbors=self.k).fit(windows)

    def score_windows(self, windows: np.ndarray) -> np.ndarray:
        distances, _ = self.estimator.kneighbors(windows.reshape(len(windows), -1))
        return broadcast_window_score(distances[:, -1], windows.shape[1])


@register("zscore")
class ZScoreDetector(Detector):
    """Largest |z| over channels per step: against train statistics (global) or a trailing window (rolling)."""

    def __init__(self, mode: str = "global", window: int = 50, series_aggregate: str = "max"):
        super().__init__()
        if mode not in ("global", "rolling"):
            raise UserError(f"model.mode must be 'global' or 'rolling', got {mode!r}")
        self.mode = mode
        self.window = window
        self.series_aggregate = series_aggregate
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
        np.savez(directory / "stats.npz", mean=self.mean, std=self.std)

    def _load_state(self, directory: Path) -> None:
        stats = np.load(directory / "stats.npz")
        self.mean, self.std = stats["mean"], stats["std"]
