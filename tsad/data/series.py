"""SeriesSet: the one container for series-level and point-level data."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tsad.data.windows import padding_note
from tsad.errors import UserError
from tsad.run_warnings import RunWarnings

# A channel whose standard deviation is at most this fraction of its mean's size (or at most 1e-12, the scale
# below which the normaliser leaves a channel unscaled) varies at float32 rounding level: near-constant.
NEAR_CONSTANT = 1e-6


@dataclass
class SeriesSet:
    """A collection of multichannel series of possibly different lengths.

    values:         list of float32 arrays [T_i, C]
    step_labels:    optional list of int arrays [T_i] (1 = anomalous step)
    series_labels:  optional int array [N] (1 = anomalous series)
    labelled:       optional bool array [N]: series whose label the detector may see
                    (semi-supervised training); all other labels stay hidden from it
    timestamps:     optional list of arrays [T_i]
    names:          one name per series
    rows:           optional list of int arrays [T_i]: each step's row in the file it was read from
    """

    values: list[np.ndarray]
    step_labels: list[np.ndarray] | None = None
    series_labels: np.ndarray | None = None
    labelled: np.ndarray | None = None
    timestamps: list[np.ndarray] | None = None
    names: list[str] = field(default_factory=list)
    rows: list[np.ndarray] | None = None

    def __post_init__(self) -> None:
        self.values = [np.asarray(v, dtype=np.float32) for v in self.values]
        self.values = [v[:, None] if v.ndim == 1 else v for v in self.values]
        if not self.values:
            raise UserError("a SeriesSet needs at least one series")
        channels = {v.shape[1] for v in self.values}
        if len(channels) != 1:
            raise UserError(f"all series must have the same number of channels, got {sorted(channels)}")
        if not self.names:
            self.names = [f"series_{i}" for i in range(len(self.values))]
        if self.step_labels is not None:
            self.step_labels = [np.asarray(y, dtype=np.int64) for y in self.step_labels]
            for v, y in zip(self.values, self.step_labels):
                if len(y) != len(v):
                    raise UserError(f"step labels of length {len(y)} do not match a series of length {len(v)}")
        if self.series_labels is not None:
            self.series_labels = np.asarray(self.series_labels, dtype=np.int64)
            if len(self.series_labels) != len(self.values):
                raise UserError("series_labels must have one entry per series")
        if self.labelled is not None:
            self.labelled = np.asarray(self.labelled, dtype=bool)

    def __len__(self) -> int:
        return len(self.values)

    @property
    def n_channels(self) -> int:
        return self.values[0].shape[1]

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(v) for v in self.values])

    def visible_series_labels(self) -> np.ndarray:
        """Series labels a detector may train on: 1/0 where labelled, -1 (unknown) elsewhere."""
        visible = np.full(len(self), -1, dtype=np.int64)
        if self.labelled is not None and self.series_labels is not None:
            visible[self.labelled] = self.series_labels[self.labelled]
        return visible

    def visible_step_labels(self) -> list[np.ndarray] | None:
        """Step labels a detector may train on: those of labelled series, -1 (unknown) elsewhere;
        None when no labelled series has step labels."""
        if self.labelled is None or self.step_labels is None or not self.labelled.any():
            return None
        return [y if seen else np.full(len(y), -1, dtype=np.int64) for y, seen in zip(self.step_labels, self.labelled)]

    def subset(self, index) -> SeriesSet:
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        pick = lambda items: None if items is None else [items[i] for i in index]  # noqa: E731
        return SeriesSet(
            values=pick(self.values),
            step_labels=pick(self.step_labels),
            series_labels=None if self.series_labels is None else self.series_labels[index],
            labelled=None if self.labelled is None else self.labelled[index],
            timestamps=pick(self.timestamps),
            names=pick(self.names),
            rows=pick(self.rows),
        )

    def with_values(self, values: list[np.ndarray]) -> SeriesSet:
        """The same set with new values (e.g. normalised); labels and names are shared."""
        return SeriesSet(values, self.step_labels, self.series_labels, self.labelled, self.timestamps, self.names,
                         self.rows)


@dataclass
class DatasetSplits:
    """What a dataset builder returns: train / val / test plus what kind of problem it is.

    level: "series" when whole series are normal or anomalous, "point" when steps are.
    labelled_val: an optional labelled validation split for threshold selection (never test).
    channels: one name per channel (the value columns of CSV data; ch0..ch{C-1} by default), so that new
        data is matched to a trained model by column name.
    timestamp_column: the name of the column that held the timestamps, if any.
    csv_options: how new CSV files are read like the data was (tsad.data.csv.read_table's settings);
        empty for generated data, whose new files are read with the CSV defaults.
    warnings: what the builder did on its own (columns left out, gaps filled) and, once the protocol asks,
        constant or near-constant channels in train or test (note_constant_channels) and a window model's window
        longer than every series (note_padding), for the run's record.
    """

    train: SeriesSet
    val: SeriesSet
    test: SeriesSet
    level: str
    name: str
    labelled_val: SeriesSet | None = None
    info: dict = field(default_factory=dict)
    channels: list[str] = field(default_factory=list)
    timestamp_column: str | None = None
    csv_options: dict = field(default_factory=dict)
    warnings: RunWarnings = field(default_factory=RunWarnings)

    def __post_init__(self) -> None:
        if not self.channels:
            self.channels = [f"ch{i}" for i in range(self.n_channels)]
        if len(self.channels) != self.n_channels:
            raise ValueError(f"{len(self.channels)} channel names for {self.n_channels} channels")

    def note_constant_channels(self) -> None:
        """Add a warning for each constant or near-constant channel of train and of test."""
        for split in ("train", "test"):
            flat = constant_channels(getattr(self, split), self.channels)
            if flat:
                self.warnings.add("constant_channels", f"{split}: {'; '.join(flat)}; no detector can learn or "
                                                       f"rank anything from {'it' if len(flat) == 1 else 'them'}")

    def note_padding(self, window: int | None) -> None:
        """Add a warning when a window model's `window` (None: no window) is longer than every series it sees."""
        if window is None:
            return
        lengths = [length for split in (self.train, self.val, self.test) for length in split.lengths]
        note = padding_note(lengths, window)
        if note is not None:
            self.warnings.add("window_padding", note)

    @property
    def n_channels(self) -> int:
        return self.train.n_channels


def constant_channels(series: SeriesSet, names: list[str]) -> list[str]:
    """Each channel of `series` (all its series together) that is constant or near-constant, as words."""
    stacked = np.concatenate(series.values).astype(np.float64)
    low, high, mean, std = stacked.min(axis=0), stacked.max(axis=0), stacked.mean(axis=0), stacked.std(axis=0)
    flat = []
    for i, name in enumerate(names):
        if low[i] == high[i]:
            flat.append(f"channel {name!r} is constant ({low[i]:.6g})")
        elif std[i] <= max(1e-12, NEAR_CONSTANT * abs(mean[i])):
            flat.append(f"channel {name!r} is near-constant (std {std[i]:.3g} around {mean[i]:.6g})")
    return flat

