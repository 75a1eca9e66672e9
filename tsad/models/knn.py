"""kNN on windows: the distance from each window to its k-th nearest remembered window.

Two settings go beyond the textbook detector (both chosen for NAB, docs/results.md):

- `block`: a window is read as window / block means of `block` consecutive rows, so it can span a
  longer stretch at the same dimension (block=1: the rows themselves).
- `memory`: `fitted` remembers the train windows only. `growing` also remembers the scored series'
  own earlier windows, each from the moment it ends before the scored window starts (a window never
  meets its own rows), so the detector keeps learning as the series arrives, as online detectors such
  as KNN-CAD do: a pattern that occurred once stops being new. That needs rows scored in order, so it
  is for online (causal) scoring, as under the NAB protocol. There the scored series begins with the
  fitted rows, so a passed window that is also a fitted one is counted once. The series' windows are
  searched by brute force in chunks: an index built once cannot grow as windows arrive.

Scored online, a series that begins with the fitted rows has windows the memory holds: each would be its
own nearest neighbour (score 0). Those windows are scored out of sample, as train windows are
(`score_train`): from the remembered windows that share no row with them, or where fewer than k share none
(fitted rows shorter than about two windows), from the remembered windows other than themselves.

The neighbours of the fitted windows come from scikit-learn's NearestNeighbors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tsad.data.series import SeriesSet
from tsad.errors import UserError
from tsad.models.base import Scores, register
from tsad.models.state_files import SavedArrays, damaged
from tsad.models.window_baseline import WindowBaseline, broadcast_window_score
from tsad.settings.fields import setting

CHUNK_DISTANCES = 2 ** 24  # distances computed at once when searching a series' own windows (~130 MB)


@register("knn")
@dataclass(eq=False)
class KNNDetector(WindowBaseline):
    """Distance from each window (read in blocks of `block` rows) to its k-th nearest remembered window."""

    max_train_windows: int = setting(5000, at_least=1)
    k: int = setting(5, at_least=1)
    block: int = setting(1, at_least=1)
    memory: str = setting("fitted", choices=("fitted", "growing"))

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.window % self.block:
            raise UserError(f"model.block={self.block} must divide model.window={self.window}; "
                            f"use a window that is a multiple of the block")
        if self.memory == "growing" and not self.causal:
            raise UserError("model.memory=growing remembers the windows of a series as it is scored row by row, "
                            "which only an online protocol does (dataset=nab); use model.memory=fitted")

    def features(self, windows: np.ndarray) -> np.ndarray:
        """Windows [N, window, C] as flat vectors [N, window / block * C] of block means."""
        n_windows, length, channels = windows.shape
        blocks = windows.reshape(n_windows, length // self.block, self.block, channels).mean(axis=2)
        return blocks.reshape(n_windows, -1)

    def fit_windows(self, windows: np.ndarray):
        from sklearn.neighbors import NearestNeighbors

        if len(windows) < self.k:
            raise UserError(f"model.k={self.k} exceeds the {len(windows)} train windows; lower model.k")
        return NearestNeighbors(n_neighbors=self.k).fit(self.features(windows.reshape(len(windows), self.window, -1)))

    @property
    def feature_width(self) -> int:
        return self.window // self.block * self.n_channels

    def estimator_arrays(self) -> dict[str, np.ndarray]:
        return {"remembered": self.estimator._fit_X}   # the fitted rows (NearestNeighbors has no public accessor)

    def estimator_from_arrays(self, saved: SavedArrays):
        """The neighbour search refitted on the remembered rows: the same rows give the same neighbours."""
        from sklearn.neighbors import NearestNeighbors

        remembered = saved.array("remembered", (None, self.feature_width), "f")
        if len(remembered) < self.k:
            raise damaged(saved.path, f"remembers {len(remembered)} windows, fewer than model.k={self.k}")
        return NearestNeighbors(n_neighbors=self.k).fit(remembered)

    def score_windows(self, windows: np.ndarray) -> np.ndarray:
        features = self.features(windows)
        n_inside = self.windows_inside_fitted_rows(features) if self.causal else 0
        nearest = np.full((len(features), self.k), np.inf)   # the k smallest distances of each window, ascending
        if n_inside:
            nearest[:n_inside] = self.nearest_left_out(features[:n_inside], np.zeros(n_inside, dtype=int),
                                                       np.arange(n_inside))
        if n_inside < len(features):
            nearest[n_inside:] = self.estimator.kneighbors(features[n_inside:])[0]
        if self.memory == "growing":
            passed_twice = self.train_positions[:, 1] if n_inside else np.array([], dtype=int)
            nearest = np.sort(np.hstack([nearest, self.nearest_earlier(features, passed_twice)]), axis=1)
        kth = nearest[:, self.k - 1]
        crowded = np.flatnonzero(~np.isfinite(kth[:n_inside]))
        if len(crowded):
            kth[crowded] = self.kth_nearest_other(features[crowded], crowded)
        return broadcast_window_score(kth, windows.shape[1])

    def kth_nearest_other(self, features: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """The distance [N] from windows of the fitted rows (starting at `starts`) to their k-th nearest fitted
        window other than themselves: their score where fewer than k fitted windows share no row with them
        (fitted rows shorter than about 2 windows)."""
        n_neighbours = min(self.k + 1, len(self.train_positions))
        distances, neighbours = self.estimator.kneighbors(features, n_neighbours)
        itself = self.train_positions[neighbours, 1] == starts[:, None]
        kth = np.sort(np.where(itself, np.inf, distances), axis=1)[:, self.k - 1]
        if not np.isfinite(kth).all():
            raise UserError(f"knn: model.k={self.k} leaves no other fitted window to compare a window of the fitted "
                            f"rows with; lower model.k or model.window")
        return kth

    def windows_inside_fitted_rows(self, features: np.ndarray) -> int:
        """How many leading windows of a series scored online (one window per row, in order) lie inside the
        fitted rows: up to the last fitted window's start when the series begins with the fitted rows (its
        windows at the fitted windows' starts are the remembered windows), none otherwise."""
        series_index, starts = self.train_positions[:, 0], self.train_positions[:, 1]
        if (series_index != 0).any() or starts.max() >= len(features):
            return 0
        if not np.allclose(features[starts], self.estimator._fit_X, rtol=1e-6, atol=1e-6):
            return 0
        return int(starts.max()) + 1

    def nearest_earlier(self, features: np.ndarray, counted_already: np.ndarray) -> np.ndarray:
        """The k smallest distances [N, k] from each window to the earlier windows of the same series that end
        before it starts (inf where there are fewer), leaving out the windows starting at `counted_already`
        (those the fitted memory holds). Causal scoring passes one window per row, in order, so window
        i - window is the last to end before window i starts."""
        from sklearn.metrics.pairwise import euclidean_distances

        n_windows, gap, k = len(features), self.window, self.k
        nearest = np.full((n_windows, k), np.inf)
        skipped = np.zeros(n_windows, dtype=bool)
        skipped[counted_already[counted_already < n_windows]] = True
        rows_per_chunk = max(1, CHUNK_DISTANCES // max(n_windows, 1))
        for begin in range(gap, n_windows, rows_per_chunk):
            end = min(n_windows, begin + rows_per_chunk)
            squared = euclidean_distances(features[begin:end], features[:end - gap], squared=True)
            too_recent = np.arange(end - gap)[None, :] > np.arange(begin, end)[:, None] - gap
            squared[too_recent | skipped[None, :end - gap]] = np.inf
            if squared.shape[1] > k:
                squared = np.partition(squared, k - 1, axis=1)[:, :k]
            smallest = np.sort(np.sqrt(squared), axis=1)
            nearest[begin:end, :smallest.shape[1]] = smallest
        return nearest

    def score_train(self, train: SeriesSet) -> Scores:
        """Leave-one-out train scores: a train window's k-th neighbour among the fitted windows that share
        no step with it (itself included), as a test window's neighbours never hold its own steps."""
        return self._score_train_out_of_sample(train, self.score_windows_left_out)

    def score_windows_left_out(self, windows: np.ndarray, series_index: np.ndarray, starts: np.ndarray) -> np.ndarray:
        kth = self.nearest_left_out(self.features(windows), series_index, starts)[:, self.k - 1]
        if not np.isfinite(kth).all():
            raise UserError(f"knn: fewer than model.k={self.k} train windows lie outside a train window's own steps; "
                            f"use threshold.source=val or more train data")
        return broadcast_window_score(kth, windows.shape[1])

    def nearest_left_out(self, features: np.ndarray, series_index: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """The k smallest distances [N, k] from windows (of series series_index starting at starts) to the
        fitted windows that share no step with them (inf where there are fewer)."""
        # at most this many fitted windows (stride apart, plus the one at the series end) overlap one window
        n_overlapping = -(-(2 * self.window - 1) // self.stride) + 1
        n_neighbours = min(self.k + n_overlapping, len(self.train_positions))
        distances, neighbours = self.estimator.kneighbors(features, n_neighbours)
        distances = np.where(self.shares_steps(neighbours, series_index, starts), np.inf, distances)
        return np.sort(distances, axis=1)[:, :self.k]
