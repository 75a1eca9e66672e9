"""Honest baselines through the same contract: random, isolation forest, PCA, z-score (kNN: knn.py).

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
from tsad.data.windows import SERIES_AGGREGATES, aggregate_series, make_windows, windows_to_steps
from tsad.errors import UserError
from tsad.models.base import Detector, Scores, register, require_at_least, require_choice
from tsad.models.window_scoring import WindowScorer, check_window_settings

PCA_SCORINGS = ("reconstruction", "density")


@dataclass(eq=False)
class WindowBaseline(WindowScorer, Detector):
    """Shared window plumbing for the scikit-learn style baselines."""

    window: int = 32
    stride: int = 4
    score_stride: int = 1
    step_reduce: str = "mean"
    series_aggregate: str = "max"
    max_train_windows: int = 20000

    def __post_init__(self) -> None:
        super().__post_init__()
        check_window_settings(self, "stride", "score_stride")
        require_at_least(1, max_train_windows=self.max_train_windows)
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

    def _save_state(self, directory: Path) -> None:
        import joblib

        joblib.dump(self.estimator, directory / "estimator.joblib")
        np.savez(directory / "train_windows.npz", positions=self.train_positions,
                 fingerprint=np.array(self.train_fingerprint))

    def _load_state(self, directory: Path) -> None:
        import joblib

        self.estimator = joblib.load(directory / "estimator.joblib")
        if (directory / "train_windows.npz").exists():   # absent in folders saved before score_train existed
            state = np.load(directory / "train_windows.npz")
            self.train_positions, self.train_fingerprint = state["positions"], str(state["fingerprint"])


def fingerprint(data: SeriesSet) -> str:
    """A digest of a split's (normalised) values: score_train checks it is given the data it was fitted on."""
    digest = hashlib.sha256()
    for series in data.values:
        array = np.ascontiguousarray(series)
        digest.update(f"{array.shape}{array.dtype}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def average_path_length(n: np.ndarray) -> np.ndarray:
    """c(n), the mean path length of an unsuccessful search in a binary search tree of n points
    (Liu et al. 2008): 2 H(n-1) - 2 (n-1) / n with H(i) ~ ln i + Euler's constant; c(1) = 0, c(2) = 1."""
    n = np.asarray(n, dtype=np.float64)
    safe = np.maximum(n, 3.0)
    c = 2.0 * (np.log(safe - 1.0) + np.euler_gamma) - 2.0 * (safe - 1.0) / safe
    return np.where(n <= 1, 0.0, np.where(n == 2, 1.0, c))


def node_depths(forest) -> list[np.ndarray]:
    """Depth of every node of every tree of a fitted sklearn IsolationForest (the root has depth 0)."""
    depths = []
    for tree in forest.estimators_:
        structure = tree.tree_
        depth = np.zeros(structure.node_count)
        for node in range(structure.node_count):           # children are numbered after their parent
            for child in (structure.children_left[node], structure.children_right[node]):
                if child >= 0:
                    depth[child] = depth[node] + 1
        depths.append(depth)
    return depths


def tree_path_lengths(forest, flat: np.ndarray, depths: list[np.ndarray]) -> np.ndarray:
    """Path length [n_trees, N] of each row of flat [N, F] in each tree of a fitted sklearn IsolationForest:
    depth of the leaf it reaches plus c(train points in that leaf), the terms of the forest's own score."""
    flat = np.asarray(flat, dtype=np.float32)
    lengths = np.empty((len(forest.estimators_), len(flat)))
    for t, (tree, features) in enumerate(zip(forest.estimators_, forest.estimators_features_)):
        columns = flat[:, features] if len(features) != flat.shape[1] else flat   # the forest's own rule
        leaves = tree.apply(columns)
        lengths[t] = depths[t][leaves] + average_path_length(tree.tree_.n_node_samples[leaves])
    return lengths


def broadcast_window_score(window_scores: np.ndarray, window: int) -> np.ndarray:
    return np.repeat(window_scores[:, None], window, axis=1)


@register("random")
@dataclass(eq=False)
class RandomDetector(Detector):
    """Uniform random scores: the floor every detector must clear (and the pa_f1 sanity check)."""

    series_aggregate: str = "max"

    def __post_init__(self) -> None:
        super().__post_init__()
        require_choice("series_aggregate", self.series_aggregate, SERIES_AGGREGATES)

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
@dataclass(eq=False)
class IsolationForestDetector(WindowBaseline):
    """Isolation forest on flattened windows; score = negated sklearn score_samples."""

    n_estimators: int = 200
    max_samples: int = 256

    def __post_init__(self) -> None:
        super().__post_init__()
        require_at_least(1, n_estimators=self.n_estimators, max_samples=self.max_samples)

    def fit_windows(self, windows: np.ndarray):
        from sklearn.ensemble import IsolationForest

        return IsolationForest(n_estimators=self.n_estimators, max_samples=min(self.max_samples, len(windows)),
                               random_state=self.seed).fit(windows)

    def score_windows(self, windows: np.ndarray) -> np.ndarray:
        scores = -self.estimator.score_samples(windows.reshape(len(windows), -1))
        return broadcast_window_score(scores, windows.shape[1])

    def score_train(self, train: SeriesSet) -> Scores:
        """Out-of-bag train scores: each window's path length is averaged over the trees whose sample
        holds no fitted window sharing a step with it (the score of the whole forest is the same average
        over every tree). The trees are the fitted ones, so train and test scores share one forest."""
        bags = [np.asarray(bag) for bag in self.estimator.estimators_samples_]   # rows of each tree's sample
        depths = node_depths(self.estimator)
        return self._score_train_out_of_sample(
            train, lambda windows, index, starts: self.score_windows_out_of_bag(windows, index, starts, bags, depths))

    def score_windows_out_of_bag(self, windows: np.ndarray, series_index: np.ndarray, starts: np.ndarray,
                                 bags: list[np.ndarray], depths: list[np.ndarray]) -> np.ndarray:
        forest = self.estimator
        # a window's position as one number, series after series, far enough apart never to overlap
        span = int(max(self.train_positions[:, 1].max(), starts.max())) + 2 * self.window
        scored = series_index * span + starts
        out_of_bag = np.empty((len(bags), len(windows)), dtype=bool)                # [n_trees, N_w]
        for t, bag in enumerate(bags):
            fitted = np.sort(self.train_positions[bag, 0] * span + self.train_positions[bag, 1])
            first = np.searchsorted(fitted, scored - (self.window - 1), side="left")
            last = np.searchsorted(fitted, scored + (self.window - 1), side="right")
            out_of_bag[t] = last == first          # no fitted window of this tree starts within window - 1 steps
        n_trees = out_of_bag.sum(axis=0)
        if (n_trees == 0).any():
            raise UserError("iforest: a train window lies in every tree's sample, so it has no out-of-bag score; "
                            "use threshold.source=val, more train data or a smaller model.max_samples")
        lengths = tree_path_lengths(forest, windows.reshape(len(windows), -1), depths)   # [n_trees, N_w]
        mean_length = (lengths * out_of_bag).sum(axis=0) / n_trees
        scores = 2.0 ** (-mean_length / average_path_length(forest.max_samples_))  # = -score_samples, out of bag
        return broadcast_window_score(scores, windows.shape[1])


@register("pca")
@dataclass(eq=False)
class PCADetector(WindowBaseline):
    """PCA on flattened windows. scoring=reconstruction: a step's score is its squared reconstruction error over
    channels. scoring=density: a window's score is its negative log-likelihood under a Gaussian mixture of
    `density_components` components (scikit-learn's, full covariances) fitted to the train windows' principal
    components: one component is Hotelling's T^2 up to a constant; more model a normal class with several
    shapes. Density ignores what the components leave out, reconstruction ignores where inside them a window
    lies."""

    n_components: float = 0.95
    scoring: str = "reconstruction"
    density_components: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        require_choice("scoring", self.scoring, PCA_SCORINGS)
        require_at_least(1, density_components=self.density_components)

    def fit_windows(self, windows: np.ndarray):
        from sklearn.decomposition import PCA
        from sklearn.mixture import GaussianMixture
        from sklearn.pipeline import make_pipeline

        n_components = int(self.n_components) if self.n_components >= 1 else self.n_components
        pca = PCA(n_components=n_components, random_state=self.seed)
        if self.scoring == "reconstruction":
            return pca.fit(windows)
        if len(windows) < 2 * self.density_components:
            raise UserError(f"model.density_components={self.density_components} needs at least "
                            f"{2 * self.density_components} train windows, got {len(windows)}; lower it")
        mixture = GaussianMixture(self.density_components, covariance_type="full", random_state=self.seed)
        return make_pipeline(pca, mixture).fit(windows.astype(np.float64))   # log-likelihoods need float64

    def reconstruct_windows(self, windows: np.ndarray) -> np.ndarray:
        pca = self.estimator if self.scoring == "reconstruction" else self.estimator[0]   # a pipeline's first step
        flat = windows.reshape(len(windows), -1)
        return pca.inverse_transform(pca.transform(flat)).reshape(windows.shape)

    def score_windows(self, windows: np.ndarray) -> np.ndarray:
        if self.scoring == "density":
            flat = windows.reshape(len(windows), -1).astype(np.float64)
            return broadcast_window_score(-self.estimator.score_samples(flat), windows.shape[1])
        return ((windows - self.reconstruct_windows(windows)) ** 2).sum(axis=2)


@register("zscore")
@dataclass(eq=False)
class ZScoreDetector(Detector):
    """Largest |z| over channels per step: against train statistics (global) or a trailing window (rolling)."""

    mode: str = "global"
    window: int = 50
    series_aggregate: str = "max"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mode not in ("global", "rolling"):
            raise UserError(f"model.mode must be 'global' or 'rolling', got {self.mode!r}")
        require_at_least(2, window=self.window)  # the rolling statistics need two past steps
        require_choice("series_aggregate", self.series_aggregate, SERIES_AGGREGATES)
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
