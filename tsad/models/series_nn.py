"""Whole-series nearest neighbour under the 1-Wasserstein distance between the series' value distributions.

A series scores the distance to its nearest training series (every step gets its series' score). The distance
is the one of Mauceri, Sweeney & McDermott's one-class baseline (Pattern Recognition 2020):
`scipy.stats.wasserstein_distance(a, b)` of two series' values, i.e. the earth mover's distance between the
distributions of their values, which ignores when each value occurs. `compare=differences` applies it to the
step-to-step differences instead (the distribution of slopes). Several channels: the sum of the channels'
distances.

Two series of n values each are at distance mean(|sort(a) - sort(b)|), so the training series are kept sorted
and a whole set is compared at once; series of other lengths fall back to scipy, pair by pair.

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


@register("series_nn")
@dataclass(eq=False)
class SeriesNearestNeighbour(Detector):
    """Distance from each series to its nearest training series (1-Wasserstein between value distributions)."""

    distance: str = setting("wasserstein", choices=("wasserstein",))
    compare: str = setting("values", choices=("values", "differences"))

    def __post_init__(self) -> None:
        super().__post_init__()
        self.remembered: list[np.ndarray] = []   # each training series' sorted values [T_i, C]

    @classmethod
    def reads_whole_series(cls) -> bool:
        return True

    def _fit(self, train: SeriesSet, val: SeriesSet | None) -> None:
        self.remembered = [self.sorted_values(series) for series in train.values]

    def _score(self, data: SeriesSet) -> Scores:
        nearest = self.distances([self.sorted_values(series) for series in data.values]).min(axis=1)
        return self.as_scores(nearest, data)

    def score_train(self, train: SeriesSet) -> Scores:
        """Leave-one-out: each training series' distance to the nearest other one (itself would be at 0)."""
        self._require_fitted("score")
        if len(self.remembered) < 2:
            raise UserError("series_nn scores its training series against the other ones, and there is only one; "
                            "use threshold.source=val or more training series")
        distances = self.distances(self.remembered)
        np.fill_diagonal(distances, np.inf)
        return self.as_scores(distances.min(axis=1), train)

    def sorted_values(self, series: np.ndarray) -> np.ndarray:
        values = np.diff(series, axis=0) if self.compare == "differences" else series
        if len(values) == 0:
            raise UserError(f"model.compare={self.compare} needs series of at least 2 steps; use model.compare=values")
        return np.sort(values.astype(np.float64), axis=0)

    def distances(self, scored: list[np.ndarray]) -> np.ndarray:
        """[len(scored), len(remembered)] distances between sorted series, summed over channels."""
        from scipy.spatial.distance import cdist
        from scipy.stats import wasserstein_distance

        result = np.empty((len(scored), len(self.remembered)))
        scored_lengths = np.array([len(s) for s in scored])
        remembered_lengths = np.array([len(s) for s in self.remembered])
        for length in np.unique(scored_lengths):
            rows = np.flatnonzero(scored_lengths == length)
            same = np.flatnonzero(remembered_lengths == length)
            if len(same):
                flat_scored = np.stack([scored[i] for i in rows]).transpose(0, 2, 1)   # [N, C, T]
                flat_remembered = np.stack([self.remembered[j] for j in same]).transpose(0, 2, 1)
                result[np.ix_(rows, same)] = sum(cdist(flat_scored[:, c], flat_remembered[:, c], "cityblock")
                                                 for c in range(flat_scored.shape[1])) / length
            for j in np.flatnonzero(remembered_lengths != length):
                for i in rows:
                    result[i, j] = sum(wasserstein_distance(scored[i][:, c], self.remembered[j][:, c])
                                       for c in range(scored[i].shape[1]))
        return result

    @staticmethod
    def as_scores(series_scores: np.ndarray, data: SeriesSet) -> Scores:
        return Scores([np.full(len(series), score) for series, score in zip(data.values, series_scores)],
                      series_scores)

    def _save_state(self, directory: Path) -> None:
        lengths = np.array([len(series) for series in self.remembered], dtype=np.int64)
        save_arrays(directory / "state.npz", self.name, {"lengths": lengths,
                                                          "values": np.concatenate(self.remembered)})

    def _load_state(self, directory: Path) -> None:
        saved = load_arrays(directory / "state.npz", self.name)
        lengths = saved.array("lengths", (None,), "iu")
        values = saved.array("values", (None, self.n_channels), "f")
        if len(lengths) == 0 or (lengths < 1).any() or lengths.sum() != len(values):
            raise damaged(saved.path, f"holds {len(values)} sorted values that series of lengths {lengths.tolist()} "
                                      f"do not split into")
        self.remembered = np.split(values, np.cumsum(lengths)[:-1])
