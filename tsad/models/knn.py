"""kNN on windows: the distance from each window to its k-th nearest remembered window.

Two settings go beyond the textbook detector (both chosen for NAB, docs/results.md):

- `block`: a window is read as window / block means of `block` consecutive rows, so it can span a
  longer stretch at the same dimension (block=1: the rows themselves).
- `memory`: `fitted` remembers the train windows only. `growing` also remembers the scored series'
  own earlier windows, each from the moment it ends before the scored window starts (a window never
  meets its own rows), so the detector keeps learning as the series arrives, as online detectors such
  as KNN-CAD do: a pattern that occurred once stops being new. That needs rows scored in order, so it
  is for online (causal) scoring, as under the NAB protocol, and it takes the nearest window (k=1):
  there the scored series begins with the fitted rows, so a k-th neighbour would count their windows
  twice. The series' windows are searched by brute force in chunks: an index built once cannot grow
  as windows arrive.

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
        if self.memory == "growing" and self.k != 1:
            raise UserError(f"model.memory=growing takes the nearest window, got model.k={self.k}: online, the "
                            f"series' own windows include the fitted ones, so a k-th neighbour would count them "
                            f"twice; set model.k=1")

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
        distances, _ = self.estimator.kneighbors(features)
        kth = distances[:, -1]
        if self.memory == "growing":
            kth = np.minimum(kth, self.nearest_earlier(features))
        return broadcast_window_score(kth, windows.shape[1])

    def nearest_earlier(self, features: np.ndarray) -> np.ndarray:
        """Distance [N] from each window to the nearest earlier window of the same series that ends before it
        starts (inf where there is none). Causal scoring passes one window per row, in order, so window
        i - window is the last to end before window i starts."""
        from sklearn.metrics.pairwise import euclidean_distances

        n_windows, gap = len(features), self.window
        nearest = np.full(n_windows, np.inf)
        rows_per_chunk = max(1, CHUNK_DISTANCES // max(n_windows, 1))
        for begin in range(gap, n_windows, rows_per_chunk):
            end = min(n_windows, begin + rows_per_chunk)
            squared = euclidean_distances(features[begin:end], features[:end - gap], squared=True)
            too_recent = np.arange(end - gap)[None, :] > np.arange(begin, end)[:, None] - gap
            squared[too_recent] = np.inf
            nearest[begin:end] = np.sqrt(squared.min(axis=1))
        return nearest

    def score_train(self, train: SeriesSet) -> Scores:
        """Leave-one-out train scores: a train window's k-th neighbour among the fitted windows that share
        no step with it (itself included), as a test window's neighbours never hold its own steps."""
        return self._score_train_out_of_sample(train, self.score_windows_left_out)

    def score_windows_left_out(self, windows: np.ndarray, series_index: np.ndarray, starts: np.ndarray) -> np.ndarray:
        # at most this many fitted windows (stride apart, plus the one at the series end) overlap one window
        n_overlapping = -(-(2 * self.window - 1) // self.stride) + 1
        n_neighbours = min(self.k + n_overlapping, len(self.train_positions))
        distances, neighbours = self.estimator.kneighbors(self.features(windows), n_neighbours)
        distances = np.where(self.shares_steps(neighbours, series_index, starts), np.inf, distances)
        kth = np.sort(distances, axis=1)[:, self.k - 1]
        if not np.isfinite(kth).all():
            raise UserError(f"knn: fewer than model.k={self.k} train windows lie outside a train window's own steps; "
                            f"use threshold.source=val or more train data")
        return broadcast_window_score(kth, windows.shape[1])
