"""Synthetic multichannel series with every anomaly type the seeds name.

Normal signal: a few shared latent sinusoids mixed into C channels (so channels are
correlated), plus a per-channel trend and noise. Each series varies its phases,
amplitudes and periods a little. Anomaly types, each selectable and mixable:

  spike         a few isolated large values
  level_shift   the mean jumps for a segment
  variance      the noise level grows for a segment
  drift         a slow random-walk wander away from normal over a segment
  trend_change  the slope changes from a point on until the end of the series
  frequency     the oscillation speeds up for a segment
  pattern       the waveform is replaced by another shape for a segment
  complex       two or three of the above in the same segment

Everything is a pure function of the seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tsad.data.checks import check_anomaly_types, check_labelled_val, labelled_val_count
from tsad.data.registry import MAX_CHANNELS, MAX_LENGTH, MAX_SERIES, DatasetSettings, register_dataset
from tsad.data.series import DatasetSplits, SeriesSet
from tsad.errors import UserError
from tsad.settings.fields import setting

ANOMALY_TYPES = ("spike", "level_shift", "variance", "drift", "trend_change", "frequency", "pattern", "complex")
SIMPLE_TYPES = ANOMALY_TYPES[:-1]


class SignalProcess:
    """The normal process shared by every series of a dataset: periods, mixing and trends."""

    def __init__(self, rng: np.random.Generator, n_channels: int, noise: float, n_sources: int = 3,
                 period_range: tuple[float, float] = (12.0, 60.0)):
        self.periods = rng.uniform(*period_range, size=n_sources)
        self.mixing = rng.normal(size=(n_channels, n_sources)) / np.sqrt(n_sources)
        self.trends = rng.normal(scale=0.002, size=n_channels)
        self.offsets = rng.normal(scale=0.5, size=n_channels)
        self.noise = noise

    def sources(self, t: np.ndarray, rng: np.random.Generator, frequency_scale: np.ndarray | float = 1.0) -> np.ndarray:
        """Latent sources [T, K] at (possibly warped) times t, with random phases and amplitudes."""
        phases = rng.uniform(0, 2 * np.pi, size=len(self.periods))
        amplitudes = rng.uniform(0.8, 1.2, size=len(self.periods))
        periods = self.periods * rng.uniform(0.95, 1.05, size=len(self.periods))
        return amplitudes * np.sin(2 * np.pi * np.outer(t * frequency_scale, 1 / periods) + phases)

    def sample(self, rng: np.random.Generator, length: int) -> tuple[np.ndarray, np.ndarray]:
        """A normal series [T, C] and its clean (noise-free) part."""
        t = np.arange(length, dtype=np.float64)
        clean = self.sources(t, rng) @ self.mixing.T + np.outer(t, self.trends) + self.offsets
        return clean + rng.normal(scale=self.noise, size=clean.shape), clean


def inject(rng: np.random.Generator, x: np.ndarray, kind: str, start: int, stop: int, magnitude: float,
           process: SignalProcess) -> tuple[np.ndarray, np.ndarray]:
    """Insert one anomaly of `kind` into x [T, C] over steps [start, stop); returns (x, step labels)."""
    x = x.copy()
    length, n_channels = x.shape
    labels = np.zeros(length, dtype=np.int64)
    scale = x.std(axis=0) + 1e-6
    channels = rng.choice(n_channels, size=max(1, int(np.ceil(n_channels * rng.uniform(0.3, 1.0)))), replace=False)
    sign = rng.choice([-1.0, 1.0], size=len(channels))
    span = stop - start
    if kind == "spike":
        points = rng.choice(np.arange(start, stop), size=min(span, int(rng.integers(1, 4))), replace=False)
        for point in points:
            x[point, channels] += sign * magnitude * 1.5 * scale[channels] * rng.uniform(1.0, 1.5, size=len(channels))
        labels[points] = 1
        return x, labels
    segment = slice(start, stop)
    if kind == "level_shift":
        x[segment, channels] += sign * magnitude * scale[channels]
    elif kind == "variance":
        x[segment, channels] += rng.normal(scale=magnitude * 0.6 * scale[channels], size=(span, len(channels)))
    elif kind == "drift":
        steps = rng.normal(loc=1.0, scale=0.5, size=(span, len(channels)))
        ramp = np.cumsum(steps, axis=0) / span
        x[segment, channels] += sign * magnitude * scale[channels] * ramp
    elif kind == "trend_change":
        stop = length
        segment = slice(start, stop)
        ramp = np.arange(stop - start)[:, None] / max(1, min(stop - start, 50))
        x[segment, channels] += sign * magnitude * 0.7 * scale[channels] * ramp
    elif kind == "frequency":
        t = np.arange(span, dtype=np.float64)
        faster = process.sources(t, rng, frequency_scale=rng.uniform(2.5, 4.0)) @ process.mixing.T
        normal = process.sources(t, rng) @ process.mixing.T
        x[segment, channels] += (faster - normal)[:, channels] * max(1.0, magnitude / 3)
    elif kind == "pattern":
        t = np.arange(span, dtype=np.float64)
        period = rng.uniform(8, 30)
        square = np.sign(np.sin(2 * np.pi * t / period))[:, None]
        level = x[segment, channels].mean(axis=0)
        x[segment, channels] = level + square * magnitude * 0.6 * scale[channels] + rng.normal(
            scale=process.noise, size=(span, len(channels)))
    elif kind == "complex":
        segment_types = [t for t in SIMPLE_TYPES if t not in ("spike", "trend_change")]
        for sub in rng.choice(segment_types, size=int(rng.integers(2, 4)), replace=False):
            x, sub_labels = inject(rng, x, str(sub), start, stop, magnitude, process)
            labels |= sub_labels
        return x, labels
    else:
        raise UserError(f"unknown anomaly type {kind!r}; choose from {', '.join(ANOMALY_TYPES)}")
    labels[start:stop] = 1
    return x, labels


def _anomalous_series(rng, process, length, types, settings: SyntheticSettings) -> tuple[np.ndarray, np.ndarray]:
    x, _ = process.sample(rng, length)
    span = max(2, int(round(length * rng.uniform(*settings.segment_fraction))))
    start = int(rng.integers(length // 10, max(length // 10 + 1, length - span)))
    return inject(rng, x, str(rng.choice(types)), start, min(length, start + span), settings.magnitude, process)


@register_dataset("synthetic")
@dataclass(frozen=True)
class SyntheticSettings(DatasetSettings):
    """Series-level (`level=series`) or point-level (`level=point`) synthetic data.

    Series level: many series of random length in [min_length, max_length]; a fraction of
    test series (test_anomaly_rate) carry one anomaly segment. Point level: n_train/n_val/
    n_test long series of max_length steps, each test series carrying n_anomalies segments
    of anomaly_length steps. train_contamination puts unlabelled anomalies into train;
    train_labelled_anomalies adds that fraction of extra anomalous train series whose label
    the detector may see (semi-supervised models). labelled_val > 0 adds a labelled
    validation split drawn like test (a number below 1 is a fraction of n_test, a whole
    number from 1 up a count of series) for thresholds such as val_best_f1.
    """

    family: str = "synthetic"
    name: str = "synthetic"
    seed: int = setting(0, at_least=0)
    n_channels: int = setting(3, at_least=1, at_most=MAX_CHANNELS)
    min_length: int = setting(50, at_least=1, at_most=MAX_LENGTH)  # lengths drawn from [min_length, max_length]
    max_length: int = setting(200, at_least=1, at_most=MAX_LENGTH)  # point level: every series is this long
    n_train: int = setting(300, at_least=1, at_most=MAX_SERIES)
    n_val: int = setting(60, at_least=1, at_most=MAX_SERIES)
    n_test: int = setting(200, at_least=1, at_most=MAX_SERIES)
    test_anomaly_rate: float = setting(0.3, at_least=0, at_most=1)
    anomaly_types: tuple[str, ...] = ANOMALY_TYPES
    magnitude: float = setting(2.0, above=0)  # anomaly size in units of the channel's standard deviation
    segment_fraction: tuple[float, float] = setting((0.1, 0.3), at_least=0, at_most=1)  # of the series' length
    noise: float = setting(0.1, at_least=0)  # observation noise std of the normal signal
    train_contamination: float = setting(0.0, at_least=0, at_most=1)
    train_labelled_anomalies: float = setting(0.0, at_least=0, at_most=1)
    labelled_val: int | float = setting(0, at_least=0)
    n_anomalies: int = setting(8, at_least=0)  # point level: anomaly segments per test series
    anomaly_length: tuple[int, int] = setting((5, 40), at_least=1)  # point level: segment length range in steps

    def check(self) -> None:
        check_anomaly_types(self.anomaly_types, ANOMALY_TYPES)
        if self.min_length > self.max_length:
            raise UserError(f"dataset.min_length ({self.min_length}) must be at most dataset.max_length "
                            f"({self.max_length})")
        for key in ("segment_fraction", "anomaly_length"):
            low, high = getattr(self, key)
            if low > high:
                raise UserError(f"dataset.{key}=[{low}, {high}] must be a range [low, high] with low <= high")
        check_labelled_val(self.labelled_val, "n_test")

    def build(self) -> DatasetSplits:
        types = list(self.anomaly_types)
        n_labelled_val = labelled_val_count(self.labelled_val, self.n_test)
        rng = np.random.default_rng(self.seed)
        process = SignalProcess(rng, self.n_channels, self.noise)
        if self.level == "series":
            make = lambda n, rate, prefix: _series_split(rng, process, n, rate, prefix, types, self)  # noqa: E731
        else:
            make = lambda n, rate, prefix: _point_split(  # noqa: E731
                rng, process, n, _anomaly_count(self.n_anomalies, rate, self.test_anomaly_rate), prefix, types, self)
        train = make(self.n_train, self.train_contamination, "train")
        if self.train_labelled_anomalies > 0:
            extra = make(max(1, int(round(self.n_train * self.train_labelled_anomalies))), 1.0, "train_labelled")
            extra.labelled = np.ones(len(extra), dtype=bool)
            train.labelled = np.zeros(len(train), dtype=bool)
            train = _concat(train, extra)
        val = make(self.n_val, self.train_contamination, "val")
        test = make(self.n_test, self.test_anomaly_rate, "test")
        # Drawn after test, so that asking for it leaves train, val and test unchanged.
        labelled = make(n_labelled_val, self.test_anomaly_rate, "labelled_val") if n_labelled_val else None
        return DatasetSplits(train, val, test, level=self.level, name=self.name, labelled_val=labelled,
                             info={"anomaly_types": types, "n_channels": self.n_channels, "seed": self.seed,
                                   "n_labelled_val": n_labelled_val})


def _series_split(rng, process, n, rate, prefix, types, settings: SyntheticSettings):
    values, step_labels, series_labels = [], [], []
    anomalous = rng.permutation(n) < int(round(n * rate))
    for is_anomalous in anomalous:
        length = int(rng.integers(settings.min_length, settings.max_length + 1))
        if is_anomalous:
            x, labels = _anomalous_series(rng, process, length, types, settings)
        else:
            x, labels = process.sample(rng, length)[0], np.zeros(length, dtype=np.int64)
        values.append(x)
        step_labels.append(labels)
        series_labels.append(int(labels.any()))
    return SeriesSet(values, step_labels, np.array(series_labels), names=[f"{prefix}_{i}" for i in range(n)])


def _anomaly_count(n_anomalies: int, rate: float, test_rate: float) -> int:
    """Point level: test series carry n_anomalies segments; other splits scale it by rate / test rate."""
    if test_rate <= 0:
        return 0
    return int(round(n_anomalies * min(1.0, rate / test_rate)))


def _point_split(rng, process, n, count, prefix, types, settings: SyntheticSettings):
    """n long series of max_length steps, each with `count` anomaly segments in separate slots."""
    length, anomaly_length = settings.max_length, settings.anomaly_length
    values, step_labels = [], []
    for _ in range(n):
        x, _ = process.sample(rng, length)
        labels = np.zeros(length, dtype=np.int64)
        slots = np.linspace(length * 0.05, length * 0.95, count + 1).astype(int)
        for lo, hi in zip(slots[:-1], slots[1:]):
            span = int(rng.integers(anomaly_length[0], anomaly_length[1] + 1))
            kind = str(rng.choice([t for t in types if t != "trend_change"] or types))
            start = int(rng.integers(lo, max(lo + 1, hi - span)))
            x, new = inject(rng, x, kind, start, min(start + span, hi), settings.magnitude, process)
            labels |= new
        values.append(x)
        step_labels.append(labels)
    series_labels = np.array([int(y.any()) for y in step_labels])
    return SeriesSet(values, step_labels, series_labels, names=[f"{prefix}_{i}" for i in range(n)])


def _concat(a: SeriesSet, b: SeriesSet) -> SeriesSet:
    return SeriesSet(a.values + b.values, a.step_labels + b.step_labels,
                     np.concatenate([a.series_labels, b.series_labels]),
                     np.concatenate([a.labelled, b.labelled]), None, a.names + b.names)
