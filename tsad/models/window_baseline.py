"""What the scikit-learn style window baselines share (iforest, pca, knn): flattened windows in, a window's
score to every step it covers, and out-of-sample scores of the train split.

Window baselines see flattened windows [window * C] of the normalised series; a window's
score goes to every step it covers and overlapping windows are combined per step.

Scoring the train split (threshold.source=train) goes through `score_train(train)`, which
defaults to score(train). kNN and the isolation forest memorise their train windows (a train
window is its own nearest neighbour; it sits in the samples of the trees that isolate it), so
they override it to score each train window out of sample: from no fitted window that shares a
step with it (kNN leaves those out of the neighbours; the forest averages only the trees whose
sample holds none of them, out of bag). Positions (series, start) of the fitted windows and a
fingerprint of the train data are kept for that.
"""

from __future__ import annotations

import hashlib
from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tsad.data.series import SeriesSet
from tsad.data.windows import SERIES_AGGREGATES, STEP_REDUCES, aggregate_series, make_windows, windows_to_steps
from tsad.errors import UserError
from tsad.models.base import Detector, Scores
from tsad.models.state_files import SavedArrays, damaged, load_arrays, save_arrays
from tsad.models.window_scoring import WindowScorer
from tsad.settings.fields import setting

STATE_FILE = "state.npz"               # the fitted estimator and train window positions, as plain arrays
PICKLED_ESTIMATOR = "estimator.joblib"  # what older versions saved instead


@dataclass(eq=False)
class WindowBaseline(WindowScorer, Detector):
    """Shared window plumbing for the scikit-learn style baselines."""

    window: int = setting(32, at_least=1)
    stride: int = setting(4, at_least=1)
    score_stride: int = setting(1, at_least=1)
    step_reduce: str = setting("mean", choices=STEP_REDUCES)
    series_aggregate: str = setting("max", choices=SERIES_AGGREGATES)
    max_train_windows: int = setting(20000, at_least=1)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.estimator = None
        self.train_positions: np.ndarray | None = None   # [N, 2] (series index, start) of each fitted window
        self.train_fingerprint: str | None = None

    def train_windows(self, data: SeriesSet) -> tuple[np.ndarray, np.ndarray]:
        """Flattened train windows [N, window * C], subsampled (seeded) to max_train_windows, and their
        positions [N, 2]: series index and start (in make_windows' padded steps)."""
        windows, positions = [], []
        for index, series in enumerate(data.values):
            series_windows, starts, _ = make_windows(series, self.window, self.stride)
            windows.append(series_windows)
            positions.append(np.stack([np.full(len(starts), index), starts], axis=1))
        windows, positions = np.concatenate(windows), np.concatenate(positions)
        if len(windows) > self.max_train_windows:
            keep = np.sort(np.random.default_rng(self.seed).choice(len(windows), self.max_train_windows, replace=False))
            windows, positions = windows[keep], positions[keep]
        return windows.reshape(len(windows), -1), positions

    def _fit(self, train: SeriesSet, val: SeriesSet | None) -> None:
        windows, self.train_positions = self.train_windows(train)
        self.train_fingerprint = fingerprint(train)
        self.estimator = self.fit_windows(windows)

    def _score(self, data: SeriesSet) -> Scores:
        return self._window_scores_to_scores(data, self.score_windows)

    def _score_train_out_of_sample(self, train: SeriesSet, score_windows_left_out, chunk: int = 100_000) -> Scores:
        """score(train) with the windows scored by score_windows_left_out(windows [N, L, C], series_index [N],
        starts [N]), which must use no fitted window that shares a step with a scored one. Windows of many
        series go to it at once (up to about `chunk` windows) so that per-call costs do not add up per series."""
        if self.causal:
            raise UserError(f"{self.name}: out-of-sample train scores are not available in the causal (online) mode")
        if self.train_fingerprint is None:
            raise UserError(f"{self.name}: this detector was saved without its train window positions; "
                            f"fit it again to score train data out of sample")
        data = self._normalised(train)
        if fingerprint(data) != self.train_fingerprint:
            raise ValueError(f"{self.name}.score_train: the data is not the train split the detector was fitted on")
        variants: list[list[np.ndarray]] = [[] for _ in data.values]
        pending = []                                   # (series index, windows, starts, n_pad) not scored yet
        progress = self.scoring_progress(data, "scoring train out of sample")

        def score_pending() -> None:
            windows = np.concatenate([p[1] for p in pending])
            series_index = np.concatenate([np.full(len(p[2]), p[0]) for p in pending])
            window_scores = score_windows_left_out(windows, series_index, np.concatenate([p[2] for p in pending]))
            cuts = np.cumsum([len(p[2]) for p in pending])[:-1]
            for (index, _, starts, n_pad), scores in zip(pending, np.split(window_scores, cuts)):
                length = len(data.values[index])
                variants[index].append(windows_to_steps(scores, starts, length, self.step_reduce, n_pad))
                progress.update(length)
            pending.clear()

        with progress:
            for index, series in enumerate(data.values):
                for augmented, offset in self.runtime.tta.variants(series, self.score_stride):
                    pending.append((index, *make_windows(augmented, self.window, self.score_stride, offset)))
                if sum(len(p[2]) for p in pending) >= chunk:
                    score_pending()
            if pending:
                score_pending()
        steps = [np.mean(v, axis=0) for v in variants]
        return Scores(steps, np.array([aggregate_series(s, self.series_aggregate) for s in steps]))

    def shares_steps(self, fitted: np.ndarray, series_index: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """Whether fitted windows (rows of train_positions, indexed by `fitted` [N_w, M]) share a step with
        the scored windows of series series_index [N_w] starting at starts [N_w]: [N_w, M] bool."""
        positions = self.train_positions[fitted]                                   # [N_w, M, 2]
        return ((positions[..., 0] == series_index[:, None])
                & (np.abs(positions[..., 1] - starts[:, None]) < self.window))

    @abstractmethod
    def fit_windows(self, windows: np.ndarray): ...

    @abstractmethod
    def score_windows(self, windows: np.ndarray) -> np.ndarray:
        """Windows [N, L, C] -> per-step scores [N, L]."""

    @abstractmethod
    def estimator_arrays(self) -> dict[str, np.ndarray]:
        """The fitted estimator as plain arrays, saved without pickle (a run folder's files run no code)."""

    @abstractmethod
    def estimator_from_arrays(self, saved: SavedArrays):
        """The estimator rebuilt from estimator_arrays' arrays, scoring bit for bit as the one that was saved."""

    @property
    def feature_width(self) -> int:
        """The length of the flat vector the estimator reads per window."""
        return self.window * self.n_channels

    def _save_state(self, directory: Path) -> None:
        save_arrays(directory / STATE_FILE, self.name, {**self.estimator_arrays(),
                                                        "train_positions": self.train_positions,
                                                        "train_fingerprint": np.array(self.train_fingerprint)})

    def _load_state(self, directory: Path) -> None:
        if (directory / PICKLED_ESTIMATOR).exists() and not (directory / STATE_FILE).exists():
            raise damaged(directory / PICKLED_ESTIMATOR, "is a pickle of an older tsad, which tsad no longer opens "
                                                         "(a pickle can run any code)")
        saved = load_arrays(directory / STATE_FILE, self.name)
        self.estimator = self.estimator_from_arrays(saved)
        self.train_positions = saved.array("train_positions", (None, 2), "iu")
        self.train_fingerprint = saved.text("train_fingerprint")


def fingerprint(data: SeriesSet) -> str:
    """A digest of a split's (normalised) values: score_train checks it is given the data it was fitted on."""
    digest = hashlib.sha256()
    for series in data.values:
        array = np.ascontiguousarray(series)
        digest.update(f"{array.shape}{array.dtype}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def broadcast_window_score(window_scores: np.ndarray, window: int) -> np.ndarray:
    return np.repeat(window_scores[:, None], window, axis=1)
