"""The user's own data from CSV files: `tsad-run dataset=csv dataset.path=FILE_OR_FOLDER`.

Point level (default): one CSV file, or a folder of them, each a long series with one
row per time step. Each file is cut in time into train / val / test parts by
`split` fractions; per-step labels (a 0/1 label column) are needed on the test rows only.

Series level: a folder of CSV files, one series each, plus a series-label file
(columns `file` and `label`, optionally `split` = train/val/test; without it the series
are split at random by the `split` fractions). Without a label file the series label
is 1 where the label column marks any step. `train_anomalies` says what happens to
anomalous series that land in train or val: drop them (train on normal series only),
keep them unlabelled (contaminated training), or keep them labelled (semi-supervised).

Value columns are all numeric columns but the timestamp and label columns unless listed. With
`timestamp_column=auto` the timestamp column is the one named timestamp, time, date or datetime, else
the first column of text whose every cell reads as a date and time (e.g. `ts`); a column of plain
numbers is never taken for timestamps. Rows keep their file order. Everything is checked at the door
(tsad/data/csv_read.py), and each problem is reported as one line that names the file, the column and
the fix; what reading does on its own (a non-numeric column left out, NaN/inf values interpolated or
their rows dropped, timestamps that go back or repeat) is a warning in the run's record, and so are
files without labels: their runs write scores and thresholds but no metrics. Every line number in a
message is the file's own (header = line 1).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tsad.data.csv_read import (  # noqa: F401 (read_frame, table_from_frame: tsad-predict reads files with them)
    Table,
    fill_gaps,
    read_frame,
    read_table,
    reading_warnings,
    table_from_frame,
    unreadable,
)
from tsad.data.registry import DatasetSettings, register_dataset
from tsad.data.series import DatasetSplits, SeriesSet
from tsad.errors import UserError
from tsad.settings.fields import setting

NAN_POLICIES = ("error", "interpolate", "drop")
TRAIN_ANOMALIES = ("drop", "keep", "labelled")
SPLITS = ("train", "val", "test")

log = logging.getLogger(__name__)


def _check_length(length: int, min_length: int, what: str) -> None:
    if length < min_length:
        raise UserError(f"{what} has {length} steps, fewer than dataset.min_length={min_length} (the model's window "
                        f"by default); use longer series, a smaller model.window, or lower dataset.min_length")


def _csv_files(folder: Path, exclude: Path | None) -> list[Path]:
    files = sorted(p for p in folder.glob("*.csv") if exclude is None or p.resolve() != exclude.resolve())
    if not files:
        raise UserError(f"dataset.path={folder} holds no .csv files")
    return files


def _same_columns(tables: list[Table]) -> None:
    first = tables[0]
    for table in tables[1:]:
        if table.columns != first.columns:
            raise UserError(f"{table.path}: value columns {table.columns} differ from {first.path.name}'s "
                            f"{first.columns}; make the files alike or set dataset.value_columns")
        if (table.labels is None) != (first.labels is None):
            raise UserError(f"{table.path}: {'has no' if table.labels is None else 'has a'} label column but "
                            f"{first.path.name} {'has one' if table.labels is None else 'has none'}; "
                            f"label every file or none")


@register_dataset("csv")
@dataclass(frozen=True)
class CsvSettings(DatasetSettings):
    """Train/val/test from the user's CSV files; see the module docstring for the layout."""

    family: str = "csv"
    name: str = "csv"
    level: str = setting("point", choices=("point", "series"))
    seed: int = setting(0, at_least=0)  # seeds the random train/val/test split of series (series level)
    path: str | None = None  # a CSV file or a folder of CSV files (required)
    timestamp_column: str | None = "auto"
    value_columns: str | list[str] | None = None
    label_column: str | None = "auto"
    series_labels: str | None = None
    split: tuple[float, float, float] = setting((0.6, 0.2, 0.2), above=0, below=1)  # train/val/test fractions
    nan_policy: str = setting("error", choices=NAN_POLICIES)
    min_length: int = setting(1, at_least=1)  # shortest series (or split part) accepted
    train_anomalies: str = setting("drop", choices=TRAIN_ANOMALIES)
    separator: str = ","

    def check(self) -> None:
        if not self.path:
            raise UserError("dataset=csv needs a file or folder: add dataset.path=FILE_OR_FOLDER")
        if not Path(self.path).expanduser().exists():
            raise UserError(f"dataset.path={Path(self.path).expanduser()} does not exist; give a CSV file or a "
                            f"folder of CSV files")
        if abs(sum(self.split) - 1) > 1e-6:
            raise UserError(f"dataset.split={list(self.split)} must sum to 1 (fractions of train, val and test)")

    def build(self) -> DatasetSplits:
        source = Path(self.path).expanduser()
        read = lambda file: read_table(file, self.timestamp_column, self.value_columns, self.label_column,  # noqa: E731
                                       self.nan_policy, self.separator)
        if self.level == "point":
            files = [source] if source.is_file() else _csv_files(source, None)
            tables = [read(file) for file in files]
            _same_columns(tables)
            parts = _point_splits(tables, self.split, self.min_length)
        else:
            if not source.is_dir():
                raise UserError(f"dataset.level=series needs a folder with one CSV file per series; "
                                f"dataset.path={source} is a file")
            label_file = _label_file(source, self.series_labels)
            files = _csv_files(source, label_file)
            if label_file is None:
                _refuse_label_files(files, self.separator)
            tables = [read(file) for file in files]
            _same_columns(tables)
            for table in tables:
                _check_length(len(table.values), self.min_length, str(table.path))
                # a whole series lies in one split part, so it is filled from its own rows only
                table.values = fill_gaps(table.values, table.columns, str(table.path))
            parts = _series_splits(tables, label_file, self.split, self.seed, self.train_anomalies)
        info = {"path": str(source), "columns": tables[0].columns, "n_files": len(tables)}
        labelled = tables[0].labels is not None or self.level == "series"
        log.info("csv: %d file(s) from %s, value columns %s, %s", len(tables), source, tables[0].columns,
                 "with labels" if labelled else "no labels (scores only)")
        options = {"separator": self.separator, "nan_policy": self.nan_policy,
                   "timestamp_column": self.timestamp_column, "label_column": self.label_column,
                   "value_columns": self.value_columns}
        warnings = reading_warnings(tables)
        if not labelled:
            why = "dataset.label_column=null" if self.label_column is None else \
                "no column named label, is_anomaly or anomaly"
            warnings.add("no_labels", f"csv: no labels ({why}), so the run writes scores and thresholds but no "
                                      f"metrics; to get metrics, name a 0/1 label column with "
                                      f"dataset.label_column=NAME")
        return DatasetSplits(*parts, level=self.level, name=self.name, info=info, channels=list(tables[0].columns),
                             timestamp_column=tables[0].timestamp_column, csv_options=options, warnings=warnings)


def _point_splits(tables: list[Table], fractions, min_length: int) -> tuple[SeriesSet, SeriesSet, SeriesSet]:
    """Cut every file in time into train / val / test parts; labels are required on test rows only."""
    pieces = {split: [] for split in SPLITS}
    for table in tables:
        length = len(table.values)
        cut_train = int(round(fractions[0] * length))
        cut_val = cut_train + int(round(fractions[1] * length))
        for split, rows in zip(SPLITS, (slice(0, cut_train), slice(cut_train, cut_val), slice(cut_val, length))):
            _check_length(len(table.values[rows]), min_length,
                          f"{table.path}: the {split} part (dataset.split={list(fractions)})")
            pieces[split].append((table, rows))
        if table.labels is not None and np.isnan(table.labels[cut_val:]).any():
            missing = np.isnan(table.labels[cut_val:])
            raise UserError(f"{table.path}: {int(missing.sum())} test rows (the first at line "
                            f"{table.lines(table.rows[cut_val + int(np.argmax(missing))])}) have no label; label "
                            f"every test row with 0 or 1")

    def series_set(split: str) -> SeriesSet:
        chosen = pieces[split]
        labels = [table.labels[rows] for table, rows in chosen] if chosen[0][0].labels is not None else None
        if labels is not None and any(np.isnan(y).any() for y in labels):
            labels = None  # unlabelled train/val rows are allowed; the split then carries no labels
        return SeriesSet(
            values=[fill_gaps(table.values[rows], table.columns, f"{table.path}: the {split} part")
                    for table, rows in chosen],
            step_labels=None if labels is None else [y.astype(np.int64) for y in labels],
            series_labels=None if labels is None else np.array([int(y.any()) for y in labels]),
            timestamps=None if chosen[0][0].timestamps is None else [table.timestamps[rows] for table, rows in chosen],
            names=[table.name for table, _ in chosen],
            rows=[table.rows[rows] for table, rows in chosen])

    return series_set("train"), series_set("val"), series_set("test")


def _label_file(folder: Path, series_labels: str | None) -> Path | None:
    if series_labels is None:
        return None
    label_file = Path(series_labels).expanduser()
    label_file = label_file if label_file.is_absolute() else folder / label_file
    if not label_file.is_file():
        raise UserError(f"dataset.series_labels={series_labels} not found (looked for {label_file}); give a CSV "
                        f"with columns file,label (relative paths are inside dataset.path)")
    return label_file


def _refuse_label_files(files: list[Path], separator: str) -> None:
    """A series-label file in the folder must not be read as a series."""
    import pandas as pd

    for file in files:
        try:
            header = set(pd.read_csv(file, sep=separator, nrows=0).columns)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError):
            continue  # read_table reports it
        if {"file", "label"} <= header:
            raise UserError(f"{file} looks like a series-label file (columns file, label); "
                            f"set dataset.series_labels={file.name}")


def _read_series_labels(label_file: Path, tables: list[Table]) -> tuple[np.ndarray, list[str] | None]:
    """Series labels [N] in table order and, when the file has a split column, each series' split."""
    import pandas as pd

    try:
        frame = pd.read_csv(label_file, dtype=str)
    except OSError as error:
        raise UserError(f"dataset.series_labels: {label_file} {unreadable(label_file, error)}") from None
    if not {"file", "label"} <= set(frame.columns):
        raise UserError(f"{label_file}: needs columns 'file' and 'label' (and optionally 'split'), "
                        f"has {', '.join(frame.columns)}")
    stems = frame["file"].str.strip().map(lambda f: Path(f).stem)
    known, listed = [t.name for t in tables], set(stems)
    missing, extra = [n for n in known if n not in listed], sorted(listed - set(known))
    if missing or extra or len(stems) != len(listed):
        problem = (f"no label for {', '.join(missing[:3])}" if missing else
                   f"labels for missing files {', '.join(extra[:3])}" if extra else "files listed twice")
        raise UserError(f"{label_file}: {len(frame)} labels for {len(tables)} series files ({problem}); "
                        f"list every file of dataset.path exactly once")
    by_name = frame.assign(stem=stems).set_index("stem")
    labels = by_name.loc[known, "label"].str.strip()
    if not labels.isin(["0", "1"]).all():
        odd = sorted(set(labels[~labels.isin(["0", "1"])].astype(str)))
        raise UserError(f"{label_file}: labels must be 0 (normal) or 1 (anomaly), found {', '.join(odd[:5])}")
    if "split" not in frame.columns:
        return labels.astype(int).to_numpy(), None
    splits = by_name.loc[known, "split"].str.strip().str.lower()
    if not splits.isin(SPLITS).all():
        raise UserError(f"{label_file}: column 'split' must hold train, val or test, found "
                        f"{', '.join(sorted(set(splits[~splits.isin(SPLITS)].astype(str)))[:5])}")
    return labels.astype(int).to_numpy(), list(splits)


def _series_splits(tables: list[Table], label_file: Path | None, fractions, seed: int,
                   train_anomalies: str) -> tuple[SeriesSet, SeriesSet, SeriesSet]:
    if label_file is not None:
        labels, assigned = _read_series_labels(label_file, tables)
    elif tables[0].labels is not None:
        if any(np.isnan(t.labels).any() for t in tables):
            raise UserError("dataset.level=series without dataset.series_labels takes each series' label from its "
                            "label column, which has empty rows; label every row or give a series-label file")
        labels, assigned = np.array([int(t.labels.any()) for t in tables]), None
    else:
        raise UserError("dataset.level=series needs labels: set dataset.series_labels=FILE (columns file,label) "
                        "or give the files a label column")
    if assigned is None:
        order = np.random.default_rng(seed).permutation(len(tables))
        cut_train = int(round(fractions[0] * len(tables)))
        cut_val = cut_train + int(round(fractions[1] * len(tables)))
        assigned = [None] * len(tables)
        for position, index in enumerate(order):
            assigned[index] = "train" if position < cut_train else "val" if position < cut_val else "test"

    def series_set(split: str) -> SeriesSet:
        rows = [i for i, s in enumerate(assigned) if s == split]
        if split != "test" and train_anomalies == "drop":
            rows = [i for i in rows if labels[i] == 0]
        if not rows:
            raise UserError(f"dataset.level=series: no series left for {split} ({len(tables)} files, "
                            f"dataset.split={list(fractions)}, dataset.train_anomalies={train_anomalies}); "
                            f"add series or change the split")
        chosen = [tables[i] for i in rows]
        step_labels = None
        if all(t.labels is not None and not np.isnan(t.labels).any() for t in chosen):
            step_labels = [t.labels.astype(np.int64) for t in chosen]
        return SeriesSet(values=[t.values for t in chosen], step_labels=step_labels, series_labels=labels[rows],
                         labelled=np.full(len(rows), split == "train" and train_anomalies == "labelled"),
                         timestamps=None if chosen[0].timestamps is None else [t.timestamps for t in chosen],
                         names=[t.name for t in chosen], rows=[t.rows for t in chosen])

    return series_set("train"), series_set("val"), series_set("test")
