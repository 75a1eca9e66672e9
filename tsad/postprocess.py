"""Causal post-processing of step scores (`postprocess=`): anomaly likelihood, spatial override, alarm rest.

Transforms that work on any detector's scores, as the top NAB detectors use them (see the README's
config-group table and docs/results.md). Each output at row t reads rows <= t only. Under NAB's protocol
they run on each file's running-rank scores with NAB's probationary period as the learning phase; offline
point-level runs (and tsad-predict on such a run) apply them the same way to each series, with NAB's rule for
the learning phase (the first 15 % of the series' rows, at most 750).

- Anomaly likelihood (the method HTM's NAB detector uses, re-implemented from its description): the
  detector's raw scores (unscored warm-up rows count as 0) are averaged over the last `average_window`
  rows; a normal distribution fitted to those averages (after a learning phase, and
  again every `refit_every` rows, over at most `history` rows) gives the tail probability Q of the
  current average, one-sided (only high scores are unusual). The mean is floored at 0.03 and the
  variance at 0.0003; inputs whose values barely vary get a flat distribution. Of a run of rows with
  Q <= 1e-5 only the first keeps it (the rest get 1e-3: one alarm per event). The output is
  ln(Q + 1e-10) / ln(1e-10) in [0, 1]: 0.5 means Q = 1e-5, a calibrated level that needs no labels.
  The learning phase is the `probation` rows the caller names (NAB: its probationary period): half to
  learn, half to estimate, as NAB runs HTM; their output is the likelihood 0.5.
- Spatial override: 1.0 where a value leaves [min - tolerance * range, max + tolerance * range] of the
  values seen before it (any channel).
- Alarm rest: 0 for `rest_fraction * probation` rows after an output of at least `rest_level`, so that
  an event raises one alarm (only the earliest detection in a NAB window counts; later ones cost).

Hand-written because no maintained library provides these online transforms (the reference
implementation is in an archived AGPL project).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import erfc

from tsad.settings.fields import Section, setting

RED_ZONE = 1e-5  # Q at or below this is an extreme event
YELLOW_ZONE = 1e-3  # what later rows of one extreme event are lowered to
LOG_FLOOR = 1e-10
MEAN_FLOOR, VARIANCE_FLOOR = 0.03, 0.0003
FLAT_INPUT_VARIANCE = 1.5e-5  # input values varying less than this get a flat distribution
FLAT_MEAN, FLAT_VARIANCE = 0.5, 1e6


@dataclass(frozen=True)
class PostProcess(Section):
    """The postprocess config group (conf/postprocess/<name>.yaml mirror it): which transforms run, with the
    published methods' constants."""

    name: str = "none"
    likelihood: bool = False
    average_window: int = setting(10, at_least=1)
    refit_every: int = setting(100, at_least=1)
    history: int = setting(8640, at_least=1)
    spatial: bool = False
    spatial_tolerance: float = setting(0.05, at_least=0)
    rest: bool = False
    rest_fraction: float = setting(0.2, at_least=0)
    rest_level: float = setting(0.5, at_least=0, at_most=1)

    @property
    def active(self) -> bool:
        return self.likelihood or self.spatial or self.rest

    def apply(self, values: np.ndarray, raw_scores: np.ndarray, scores: np.ndarray, probation: int) -> np.ndarray:
        """Post-processed scores [T] of one series from its values [T] or [T, C], the detector's raw scores [T]
        (NaN = unscored) and their mapping to [0, 1] (`scores`, used as they are without the likelihood)."""
        out = np.asarray(scores, dtype=np.float64).copy()
        if self.likelihood:
            out = anomaly_likelihood(values, np.nan_to_num(raw_scores, nan=0.0), probation, self.average_window,
                                     self.refit_every, self.history)
        if self.spatial:
            out[outside_seen_range(values, self.spatial_tolerance)] = 1.0
        if self.rest:
            out = rest_after_alarms(out, self.rest_level, int(self.rest_fraction * probation))
        return out


def running_rank(raw_scores: np.ndarray) -> np.ndarray:
    """Causal map to [0, 1]: rank (ties low) of each score among the scores so far, over their count.

    NaN (no score yet) maps to 0 and is not counted.
    """
    mapped = np.zeros(len(raw_scores))
    scored = np.flatnonzero(~np.isnan(raw_scores))
    if len(scored):
        mapped[scored] = pd.Series(raw_scores[scored]).expanding().rank(method="min", pct=True).to_numpy()
    return mapped


def anomaly_likelihood(values: np.ndarray, scores: np.ndarray, probation: int, average_window: int = 10,
                       refit_every: int = 100, history: int = 8640) -> np.ndarray:
    """The log-scaled anomaly likelihood of each row (see the module doc); rows of the learning phase get 0.5's."""
    values = np.asarray(values, dtype=np.float64).reshape(len(scores), -1)
    learning = probation // 2
    averages = moving_average(scores, average_window)
    tail = np.full(len(scores), 0.5)
    for fit_at in range(probation, len(scores), refit_every):  # one fit serves the next refit_every rows
        first = max(0, fit_at - history)
        mean, std = fit_normal(averages[max(learning, first):fit_at], values[first:fit_at])
        block = slice(fit_at, fit_at + refit_every)
        tail[block] = 0.5 * erfc((averages[block] - mean) / std / math.sqrt(2))
    extreme = tail <= RED_ZONE
    repeated = extreme & np.concatenate([[False], extreme[:-1]])
    tail[repeated] = YELLOW_ZONE
    return np.log(tail + LOG_FLOOR) / np.log(LOG_FLOOR)


def moving_average(scores: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last `window` scores at each row (fewer at the start)."""
    sums = np.cumsum(np.concatenate([[0.0], scores]))
    ends = np.arange(1, len(scores) + 1)
    starts = np.maximum(0, ends - window)
    return (sums[ends] - sums[starts]) / (ends - starts)


def fit_normal(averages: np.ndarray, values: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of the averaged scores, floored; flat when the input values barely vary."""
    if len(averages) < 2 or values.var(axis=0).max() < FLAT_INPUT_VARIANCE:
        return FLAT_MEAN, math.sqrt(FLAT_VARIANCE)
    return max(float(averages.mean()), MEAN_FLOOR), math.sqrt(max(float(averages.var()), VARIANCE_FLOOR))


def outside_seen_range(values: np.ndarray, tolerance: float) -> np.ndarray:
    """Rows [T] whose value (in any channel) leaves the range of the values before it, widened by `tolerance`."""
    values = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    if len(values) < 2:
        return np.zeros(len(values), dtype=bool)
    low = np.minimum.accumulate(values, axis=0)[:-1]
    high = np.maximum.accumulate(values, axis=0)[:-1]
    margin = tolerance * (high - low)
    outside = (values[1:] > high + margin) | (values[1:] < low - margin)
    outside &= high > low  # a constant history has no range to leave
    return np.concatenate([[False], outside.any(axis=1)])


def rest_after_alarms(scores: np.ndarray, level: float, rest: int) -> np.ndarray:
    """Scores with the `rest` rows after each output >= `level` set to 0 (the first of an event stays)."""
    out = scores.copy()
    quiet_until = -1
    for t, score in enumerate(scores):
        if t <= quiet_until:
            out[t] = 0.0
        elif score >= level:
            quiet_until = t + rest
    return out
