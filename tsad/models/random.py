"""Uniform random scores: the floor every detector must clear."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tsad.data.series import SeriesSet
from tsad.data.windows import SERIES_AGGREGATES, aggregate_series
from tsad.models.base import Detector, Scores, register
from tsad.settings.fields import setting


@register("random")
@dataclass(eq=False)
class RandomDetector(Detector):
    """Uniform random scores: the floor every detector must clear (and the pa_f1 sanity check)."""

    series_aggregate: str = setting("max", choices=SERIES_AGGREGATES)

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
