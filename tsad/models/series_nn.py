"""Whole-series nearest neighbours under a Wasserstein distance between the series' value distributions.

A series scores its distance to its nearest training series (every step gets its series' score). The default is
the one-class baseline of Mauceri, Sweeney & McDermott (Pattern Recognition 2020):
`scipy.stats.wasserstein_distance(a, b)` of two series' values, i.e. the earth mover's distance between the
distributions of their values, which ignores when each value occurs.

- `distance=wasserstein2`: the 2-Wasserstein distance instead (root mean squared gap between the two quantile
  functions), which weighs a few far-off values more.
- `compare=differences`: the distributions of step-to-step differences (slopes) instead of values;
  `compare=both`: the two distances summed, each divided by its median nearest-neighbour distance among the
  training series (left out), so that neither dominates by its units.
- `k`, `neighbours`: the distance to the k-th nearest training series (`kth`) or the mean of the k nearest
  (`mean`); where fewer than k are there (a small class, one left out), all of them count.
Several channels: the sum of the channels' distances.

Between two series of n values each the quantile functions are the sorted values, so the training series are kept
sorted and a whole set is compared at once (cdist); series of other lengths are compared pair by pair on the
merged quantile grid.

The Euclidean 1-NN on whole series is `model=knn model.window=<series length> model.stride=1 model.k=1`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tsad.data.series import SeriesSet
from tsad.errors import UserError
from tsad.models.base import Detector, Scores, register
from tsad.models.state_files import damaged, load_arrays, save_arrays
from tsad.settings.fields import setting

VIEWS = {"values": ("values",), "differences": ("differences",), "both": ("values", "differences")}


@register("series_nn")
@dataclass(eq=False)
class SeriesNearestNeighbour(Detector):
    """Distance from each series to its k-th nearest training series (Wasserstein between value distributions)."""

    scores_vary_within_series = False  # every step gets its series' score

    distance: str = setting("wasserstein", choices=("wasserstein", "wasserstein2"))
    compare: str = setting("values", choices=tuple(VIEWS))
    k: int = setting(1, at_least=1)
    neighbours: str = setting("kth", choices=("kth", "mean"))

    def __post_init__(self) -> None:
        super().__post_init__()
        self.remembered: dict[str, list[np.ndarray]] = {}   # per view, each training series' sorted values [T_i, C]
        self.scales = np.ones(len(VIEWS[self.compare]))      # per view, what its distances are divided by

    @classmethod
    def reads_whole_series(cls) -> bool:
        return True

    @property
    def power(self) -> int:
        return 2 if self.distance == "wasserstein2" else 1

    def _fit(self, train: SeriesSet, val: SeriesSet | None) -> None:
        self.remembered = {view: [sorted_view(series, view) for series in train.values]
                           for view in VIEWS[self.compare]}
        if len(self.remembered) > 1:
            if len(train) < 2:
                raise UserError("model.compare=both scales each distance by the median distance between training "
                                "series and their nearest other one, and there is only one; use model.compare=values")
            self.scales = np.array([nearest_median(self.view_distances(series, series)) for series in
                                    self.remembered.values()])

    def _score(self, data: SeriesSet) -> Scores:
        scored = {view: [sorted_view(series, view) for series in data.values] for view in self.remembered}
        return self.as_scores(self.neighbour_distance(self.distances(scored), left_out=False), data)

    def score_train(self, train: SeriesSet) -> Scores:
        """Leave-one-out: each training series against the other ones (itself would be at 0)."""
        self._require_fitted("score")
        if len(train) < 2:
            raise UserError("series_nn scores its training series against the other ones, and there is only one; "
                            "use threshold.source=val or more training series")
        distances = self.distances(self.remembered)
        np.fill_diagonal(distances, np.inf)
        return self.as_scores(self.neighbour_distance(distances, left_out=True), train)

    def neighbour_distance(self, distances: np.ndarray, left_out: bool) -> np.ndarray:
        """Each row's distance to its k-th nearest column, or the mean over its k nearest."""
        k = min(self.k, distances.shape[1] - left_out)
        nearest = np.sort(distances, axis=1)[:, :k]
        return nearest[:, -1] if self.neighbours == "kth" else nearest.mean(axis=1)

    def distances(self, scored: dict[str, list[np.ndarray]]) -> np.ndarray:
        """[scored series, training series]: each view's distances over its scale, summed over views."""
        return sum(self.view_distances(scored[view], self.remembered[view]) / scale
                   for view, scale in zip(self.remembered, self.scales))

    def view_distances(self, scored: list[np.ndarray], remembered: list[np.ndarray]) -> np.ndarray:
        """[len(scored), len(remembered)] distances between sorted series, summed over channels."""
        from scipy.spatial.distance import cdist

        result = np.empty((len(scored), len(remembered)))
        scored_lengths = np.array([len(s) for s in scored])
        remembered_lengths = np.array([len(s) for s in remembered])
        metric = "sqeuclidean" if self.power == 2 else "cityblock"
        for length in np.unique(scored_lengths):
            rows = np.flatnonzero(scored_lengths == length)
            same = np.flatnonzero(remembered_lengths == length)
            if len(same):
                flat_scored = np.stack([scored[i] for i in rows]).transpose(0, 2, 1)   # [N, C, T]
                flat_remembered = np.stack([remembered[j] for j in same]).transpose(0, 2, 1)
                result[np.ix_(rows, same)] = sum(
                    (cdist(flat_scored[:, c], flat_remembered[:, c], metric) / length) ** (1 / self.power)
                    for c in range(flat_scored.shape[1]))
            for j in np.flatnonzero(remembered_lengths != length):
                for i in rows:
                    result[i, j] = sum(quantile_distance(scored[i][:, c], remembered[j][:, c], self.power)
                                       for c in range(scored[i].shape[1]))
        return result

    @staticmethod
    def as_scores(series_scores: np.ndarray, data: SeriesSet) -> Scores:
        return Scores([np.full(len(series), score) for series, score in zip(data.values, series_scores)],
                      series_scores)

    def _save_state(self, directory: Path) -> None:
        arrays = {"scales": self.scales}
        for view, series in self.remembered.items():
            prefix = "" if view == VIEWS[self.compare][0] else f"{view}_"
            arrays[f"{prefix}lengths"] = np.array([len(s) for s in series], dtype=np.int64)
            arrays[f"{prefix}values"] = np.concatenate(series)
        save_arrays(directory / "state.npz", self.name, arrays)

    def _load_state(self, directory: Path) -> None:
        saved = load_arrays(directory / "state.npz", self.name)
        views = VIEWS[self.compare]
        self.remembered = {}
        for view in views:
            prefix = "" if view == views[0] else f"{view}_"
            lengths = saved.array(f"{prefix}lengths", (None,), "iu")
            values = saved.array(f"{prefix}values", (None, self.n_channels), "f")
            if len(lengths) == 0 or (lengths < 1).any() or lengths.sum() != len(values):
                raise damaged(saved.path, f"holds {len(values)} sorted values that series of lengths "
                                          f"{lengths.tolist()} do not split into")
            self.remembered[view] = np.split(values, np.cumsum(lengths)[:-1])
        if "scales" in saved:   # files saved before compare=both existed hold none: their distances are unscaled
            scales = saved.array("scales", (len(views),))
            if not (scales > 0).all():
                raise damaged(saved.path, f"holds distance scales {scales.tolist()}, which must be positive")
            self.scales = scales


def sorted_view(series: np.ndarray, view: str) -> np.ndarray:
    """The series' values, or its step-to-step differences, sorted per channel: their quantile functions."""
    values = np.diff(series, axis=0) if view == "differences" else series
    if len(values) == 0:
        raise UserError(f"model.compare={view} needs series of at least 2 steps; use model.compare=values")
    return np.sort(values.astype(np.float64), axis=0)


def quantile_distance(a: np.ndarray, b: np.ndarray, power: int) -> float:
    """The p-Wasserstein distance between the values of sorted 1-D arrays of any lengths: the two quantile
    functions are steps, constant between the merged grid points i/len(a) and j/len(b)."""
    grid = np.union1d(np.arange(1, len(a) + 1) / len(a), np.arange(1, len(b) + 1) / len(b))
    widths = np.diff(grid, prepend=0.0)
    middles = grid - widths / 2
    gaps = np.abs(a[(middles * len(a)).astype(int)] - b[(middles * len(b)).astype(int)])
    return float((widths * gaps ** power).sum() ** (1 / power))


def nearest_median(distances: np.ndarray) -> float:
    """The median over rows of a square distance matrix of each row's nearest other column; 1 when that is 0
    (identical series), so that the view is left unscaled rather than divided by zero."""
    distances = distances.copy()
    np.fill_diagonal(distances, np.inf)
    median = float(np.median(distances.min(axis=1)))
    return median if median > 0 else 1.0
