"""Synthetic quasi-periodic series with timing errors: a population of heartbeat-like recordings.

Every series is a run of cycles seen on C channels, like ECG leads: each cycle holds
five waves (P, Q, R, S, T), and each channel weighs the waves its own way. Normal series
differ from one another only by nuisances:

  period         each series has its own mean cycle length (period * (1 ± period_spread))
  cycle jitter   each cycle's length wanders around the series mean (relative spread cycle_jitter)
  phase          each series starts at a random point of a cycle
  time warping   inside each cycle the waves shift by a smooth monotone warp (strength warp)
  sampling       samples are taken at irregular times (spacing 1 on average, log-spread sampling_jitter)
  length         each series has its own length in [min_length, max_length]
  and small per-series channel gains, baseline wander and noise.

An anomalous series carries one anomaly, localised on whole cycles; its step labels
mark every sample inside the affected cycles:

  morphology     1-3 beats of another shape (no P wave, wide R, inverted T: ectopic beats)
  missing_cycle  a beat is dropped: one cycle stays flat, so one beat interval doubles
  extra_cycle    an extra beat: one cycle holds two beats of half the length
  period         an abnormal rhythm over 3-6 cycles: alternating short/long intervals or a run of fast beats
  amplitude      on one channel the beats grow (x1.8-2.5) or shrink (x0.15-0.35) over 2-5 cycles

Everything is a pure function of the seed; each split draws from its own stream, so
changing n_train leaves val and test unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tsad.data.checks import check_anomaly_types
from tsad.data.registry import MAX_CHANNELS, MAX_LENGTH, MAX_SERIES, DatasetSettings, register_dataset
from tsad.data.series import DatasetSplits, SeriesSet
from tsad.errors import UserError
from tsad.settings.fields import setting

ANOMALY_TYPES = ("morphology", "missing_cycle", "extra_cycle", "period", "amplitude")

# One row per wave P, Q, R, S, T: centre and width as fractions of the cycle, amplitude.
NORMAL_WAVES = np.array([[0.18, 0.030, 0.15],
                         [0.33, 0.012, -0.12],
                         [0.36, 0.016, 1.00],
                         [0.39, 0.014, -0.25],
                         [0.62, 0.055, 0.30]])
ECTOPIC_WAVES = np.array([[0.18, 0.030, 0.00],
                          [0.33, 0.020, -0.05],
                          [0.38, 0.045, 1.20],
                          [0.44, 0.030, -0.40],
                          [0.64, 0.060, -0.35]])
NORMAL, ECTOPIC, FLAT = 0, 1, 2


@dataclass
class Cycles:
    """The beat schedule of one series: cycle k covers times [start[k], start[k] + duration[k])."""

    start: np.ndarray     # [K]
    duration: np.ndarray  # [K]
    shape: np.ndarray     # [K] NORMAL | ECTOPIC | FLAT
    warp: np.ndarray      # [K] warp strength of each cycle
    gain: np.ndarray      # [K, C] per-cycle channel gain (1 unless an amplitude anomaly)

    def restart(self) -> None:
        """Recompute starts after durations changed (the first start stays)."""
        self.start = self.start[0] + np.concatenate([[0.0], np.cumsum(self.duration[:-1])])

    def replace(self, index: int, parts: int) -> None:
        """Split cycle `index` into `parts` cycles of equal length."""
        repeat = np.ones(len(self.duration), dtype=int)
        repeat[index] = parts
        self.duration = np.repeat(self.duration, repeat)
        self.duration[index:index + parts] /= parts
        self.shape, self.warp, self.gain = (np.repeat(a, repeat, axis=0) for a in (self.shape, self.warp, self.gain))
        self.restart()


class BeatProcess:
    """What every series of a dataset shares: how each channel sees the waves, and the nuisance levels."""

    def __init__(self, rng: np.random.Generator, settings: QuasiPeriodicSettings):
        n_channels = settings.n_channels
        sign = np.where(rng.random(n_channels) < 0.25, -1.0, 1.0)
        # lead[c, w]: how strongly channel c sees wave w
        self.lead = (sign[:, None] * rng.uniform(0.5, 1.2, size=(n_channels, 1))
                     * rng.uniform(0.7, 1.3, size=(n_channels, 5)))
        self.settings = settings

    @property
    def n_channels(self) -> int:
        return self.lead.shape[0]

    def sample_times(self, rng: np.random.Generator, length: int) -> np.ndarray:
        """Irregular sample times [T] starting at 0 with mean spacing 1."""
        spacing = np.exp(rng.normal(0.0, self.settings.sampling_jitter, size=length - 1))
        return np.concatenate([[0.0], np.cumsum(spacing / spacing.mean())])

    def cycles(self, rng: np.random.Generator, end: float) -> Cycles:
        """Enough cycles to cover [0, end] even if an anomaly halves some of them."""
        settings = self.settings
        mean = settings.period * rng.uniform(1 - settings.period_spread, 1 + settings.period_spread)
        count = int(np.ceil(2 * end / mean)) + 4
        wander = np.zeros(count)  # AR(1): neighbouring intervals are alike, as in heart-rate variability
        for k in range(1, count):
            wander[k] = 0.6 * wander[k - 1] + 0.8 * rng.normal()
        duration = mean * np.clip(1 + settings.cycle_jitter * wander, 0.5, 1.5)
        cycles = Cycles(start=np.full(count, -rng.uniform(0, 1) * duration[0]), duration=duration,
                        shape=np.full(count, NORMAL), warp=rng.uniform(-settings.warp, settings.warp, size=count),
                        gain=np.ones((count, self.n_channels)))
        cycles.restart()
        return cycles

    def render(self, rng: np.random.Generator, cycles: Cycles, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Values [T, C] at the sample times, and the cycle index [T] of every sample."""
        index = np.searchsorted(cycles.start, times, side="right") - 1
        phase = (times - cycles.start[index]) / cycles.duration[index]
        warp = cycles.warp[index]
        phase = phase + warp * np.sin(2 * np.pi * phase) / (2 * np.pi)  # monotone for |warp| < 1
        values = np.zeros((len(times), self.n_channels))
        for shape, waves in ((NORMAL, NORMAL_WAVES), (ECTOPIC, ECTOPIC_WAVES)):
            rows = cycles.shape[index] == shape
            bumps = np.exp(-0.5 * ((phase[rows, None] - waves[:, 0]) / waves[:, 1]) ** 2)  # [T', 5]
            values[rows] = bumps @ (waves[:, 2] * self.lead).T
        values *= cycles.gain[index] * rng.uniform(0.9, 1.1, size=self.n_channels)
        wander_period = self.settings.period * rng.uniform(4, 10, size=self.n_channels)
        values += rng.uniform(0, 0.08, size=self.n_channels) * np.sin(
            2 * np.pi * times[:, None] / wander_period + rng.uniform(0, 2 * np.pi, size=self.n_channels))
        values += rng.normal(0.0, self.settings.noise, size=values.shape)
        return values, index

    def series(self, rng: np.random.Generator, length: int, kind: str | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One series: values [T, C], step labels [T] and sample times [T]; kind=None is a normal series."""
        times = self.sample_times(rng, length)
        cycles = self.cycles(rng, times[-1])
        labelled = inject(rng, cycles, kind, times[-1]) if kind else []
        values, index = self.render(rng, cycles, times)
        return values, np.isin(index, labelled).astype(np.int64), times


def inject(rng: np.random.Generator, cycles: Cycles, kind: str, end: float) -> list[int]:
    """Change the schedule for one anomaly of `kind`; returns the indices of the anomalous cycles."""
    inside = np.flatnonzero((cycles.start >= 0) & (cycles.start + cycles.duration <= end))
    if len(inside) == 0:  # a series shorter than one cycle: use the cycle at its middle
        inside = np.searchsorted(cycles.start, [end / 2], side="right") - 1

    def run(low: int, high: int) -> list[int]:
        """A run of low..high consecutive cycles that lie inside the series."""
        span = min(int(rng.integers(low, high + 1)), len(inside))
        first = int(rng.integers(0, len(inside) - span + 1))
        return list(inside[first:first + span])

    if kind == "morphology":
        chosen = run(1, 3)
        cycles.shape[chosen] = ECTOPIC
    elif kind == "missing_cycle":
        chosen = run(1, 1)
        cycles.shape[chosen] = FLAT
    elif kind == "extra_cycle":
        index = run(1, 1)[0]
        cycles.replace(index, 2)
        chosen = [index, index + 1]
    elif kind == "period":
        chosen = run(3, 6)
        if rng.random() < 0.5:  # alternating short/long intervals (a bigeminy-like rhythm)
            swing = rng.uniform(0.3, 0.45)
            cycles.duration[chosen] *= 1 + swing * np.where(np.arange(len(chosen)) % 2, 1.0, -1.0)
        else:  # a run of fast beats
            cycles.duration[chosen] *= rng.uniform(0.5, 0.65)
        cycles.restart()
    elif kind == "amplitude":
        chosen = run(2, 5)
        factor = rng.uniform(1.8, 2.5) if rng.random() < 0.5 else rng.uniform(0.15, 0.35)
        cycles.gain[chosen, int(rng.integers(cycles.gain.shape[1]))] *= factor
    else:
        raise UserError(f"unknown anomaly type {kind!r}; choose from {', '.join(ANOMALY_TYPES)}")
    return chosen


@register_dataset("quasi_periodic")
@dataclass(frozen=True)
class QuasiPeriodicSettings(DatasetSettings):
    """Series-level quasi-periodic data; see the module docstring for the nuisances and anomaly types."""

    family: str = "quasi_periodic"
    name: str = "quasi_periodic"
    level: str = setting("series", choices=("series",))
    seed: int = setting(0, at_least=0)
    n_channels: int = setting(3, at_least=1, at_most=MAX_CHANNELS)
    min_length: int = setting(200, at_least=1, at_most=MAX_LENGTH)  # samples per series, from [min_length, max_length]
    max_length: int = setting(500, at_least=1, at_most=MAX_LENGTH)
    n_train: int = setting(300, at_least=1, at_most=MAX_SERIES)
    n_val: int = setting(60, at_least=1, at_most=MAX_SERIES)
    n_test: int = setting(200, at_least=1, at_most=MAX_SERIES)
    test_anomaly_rate: float = setting(0.3, at_least=0, at_most=1)
    anomaly_types: tuple[str, ...] = ANOMALY_TYPES
    train_contamination: float = setting(0.0, at_least=0, at_most=1)
    train_labelled_anomalies: float = setting(0.0, at_least=0, at_most=1)
    period: float = setting(50.0, above=0)  # mean cycle length in samples
    period_spread: float = setting(0.15, at_least=0, at_most=1)
    cycle_jitter: float = setting(0.04, at_least=0, at_most=1)
    warp: float = setting(0.2, at_least=0, below=1)  # below 1 so that the warp stays monotone
    sampling_jitter: float = setting(0.15, at_least=0, at_most=1)
    noise: float = setting(0.03, at_least=0)

    def check(self) -> None:
        check_anomaly_types(self.anomaly_types, ANOMALY_TYPES)
        if not 3 * self.period <= self.min_length <= self.max_length:
            raise UserError(f"dataset.min_length ({self.min_length}) must be at least 3 cycles (3 * dataset.period = "
                            f"{3 * self.period:g}) and at most dataset.max_length ({self.max_length})")

    def build(self) -> DatasetSplits:
        types = list(self.anomaly_types)
        process = BeatProcess(np.random.default_rng([self.seed, 0]), self)
        make = lambda stream, n, rate, prefix: _split(  # noqa: E731
            process, np.random.default_rng([self.seed, stream]), n, rate, types, self.min_length, self.max_length,
            prefix)
        train, _ = make(1, self.n_train, self.train_contamination, "train")
        if self.train_labelled_anomalies > 0:
            extra, _ = make(4, max(1, int(round(self.n_train * self.train_labelled_anomalies))), 1.0, "train_labelled")
            train = SeriesSet(train.values + extra.values, train.step_labels + extra.step_labels,
                              np.concatenate([train.series_labels, extra.series_labels]),
                              labelled=np.arange(len(train) + len(extra)) >= len(train),
                              timestamps=train.timestamps + extra.timestamps, names=train.names + extra.names)
        val, _ = make(2, self.n_val, self.train_contamination, "val")
        test, test_kinds = make(3, self.n_test, self.test_anomaly_rate, "test")
        return DatasetSplits(train, val, test, level="series", name=self.name,
                             info={"anomaly_types": types, "n_channels": self.n_channels, "seed": self.seed,
                                   "test_anomalies_per_type": {t: test_kinds.count(t) for t in types}})


def _split(process: BeatProcess, rng: np.random.Generator, n: int, rate: float, types: list[str], min_length: int,
           max_length: int, prefix: str) -> tuple[SeriesSet, list[str | None]]:
    """n series, round(n * rate) of them anomalous with the types taken in turn; returns the set and each kind."""
    n_anomalous = int(round(n * rate))
    kinds = [types[i % len(types)] for i in range(n_anomalous)] + [None] * (n - n_anomalous)
    kinds = [kinds[i] for i in rng.permutation(n)]
    values, labels, times = [], [], []
    for kind in kinds:
        x, y, t = process.series(rng, int(rng.integers(min_length, max_length + 1)), kind)
        values.append(x)
        labels.append(y)
        times.append(t)
    names = [f"{prefix}_{i}" + (f"_{kind}" if kind else "") for i, kind in enumerate(kinds)]
    series_labels = np.array([int(kind is not None) for kind in kinds])
    return SeriesSet(values, labels, series_labels, timestamps=times, names=names), kinds
