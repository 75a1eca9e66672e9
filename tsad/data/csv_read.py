"""One CSV file of `dataset=csv` (and of tsad-predict's input) read and checked: a Table of values, labels and
timestamps, each problem reported as one line that names the file, the column, the file's own line and the fix.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tsad.data.csv_lines import FileLines
from tsad.errors import UserError
from tsad.run_warnings import RunWarnings

TIMESTAMP_NAMES = ("timestamp", "time", "date", "datetime")
# Every value is stored as float32, the precision models compute in: a larger magnitude would become inf.
LARGEST_VALUE = float(np.finfo(np.float32).max)
LABEL_NAMES = ("label", "is_anomaly", "anomaly")
OTHER_SEPARATORS = (";", "|")  # a file written with one of these reads as a single column under the default ","


@dataclass
class Table:
    """One CSV file after validation: values [T, C], optional labels [T] (NaN = unlabelled row) and timestamps.

    With dataset.nan_policy=interpolate, values keep NaN at the gaps; fill_gaps fills them per split part.
    rows [T] are the data rows of the file the values come from (0 = the first row after the header).
    lines maps a data row to its line in the file (header = line 1).
    What reading did on its own: dropped_columns (non-numeric, left out of the values), typo_cells (of those, the
    columns of numbers with a few other cells: column -> (line, text, count) of the first), non_finite (NaN/inf
    values per column, interpolated or dropped with their rows), dropped_rows, and timestamp_order (where the
    timestamps first go back or repeat, as words; rows are used in file order all the same).
    """

    path: Path
    values: np.ndarray
    labels: np.ndarray | None
    timestamps: np.ndarray | None
    columns: list[str]
    rows: np.ndarray
    timestamp_column: str | None = None
    dropped_columns: list[str] = field(default_factory=list)
    non_finite: dict[str, int] = field(default_factory=dict)
    dropped_rows: int = 0
    lines: FileLines = field(default_factory=FileLines)
    typo_cells: dict[str, tuple[int, str, int]] = field(default_factory=dict)
    timestamp_order: str | None = None

    @property
    def name(self) -> str:
        return self.path.stem


def read_table(path: Path, timestamp_column, value_columns, label_column, nan_policy: str, separator: str) -> Table:
    """Read and check one CSV file (columns, numbers, finiteness, binary labels)."""
    return table_from_frame(read_frame(path, separator), path, timestamp_column, value_columns, label_column,
                            nan_policy)


def read_frame(path, separator: str, name: str | None = None):
    """The rows of a CSV file (or text buffer, `name` in errors) as a DataFrame, checked as readable, not empty."""
    import pandas as pd

    try:
        frame = pd.read_csv(path, sep=separator)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        raise UserError(f"{name or path}: cannot read it as CSV ({reason}); check it or dataset.separator") from None
    except OSError as error:
        raise UserError(f"{name or path}: {unreadable(Path(path), error)}") from None
    if frame.empty:
        raise UserError(f"{name or path}: has no data rows")
    source = Path(path) if isinstance(path, (str, Path)) else path.getvalue() if hasattr(path, "getvalue") else None
    frame.attrs["lines"] = FileLines(source, separator)
    return frame


def unreadable(path: Path, error: OSError) -> str:
    """Why a file cannot be opened, as words with the fix (a folder, a broken link, no permission)."""
    if path.is_dir():
        return "is a folder, not a CSV file; give a file, or move the folder out of dataset.path"
    if path.is_symlink() and not path.exists():
        return f"is a link to {path.readlink()}, which does not exist; fix or remove the link"
    return f"cannot be read ({error.strerror or type(error).__name__}); check that it exists and is readable"


def table_from_frame(frame, path: Path, timestamp_column, value_columns, label_column, nan_policy: str) -> Table:
    """Check the rows of one CSV file (columns, numbers, finiteness, binary labels) read from `path`."""
    lines = frame.attrs.get("lines") or FileLines()
    timestamp_column = _timestamp_column(frame, timestamp_column, path)
    label_column = _pick_column(frame, label_column, LABEL_NAMES, "label_column", path)
    reserved = {timestamp_column, label_column} - {None}
    columns = _value_columns(frame, value_columns, reserved, path, lines)
    dropped = [] if value_columns is not None else [c for c in frame.columns if c not in {*columns, *reserved}]
    typos = {column: typo for column in dropped if (typo := _typo_cells(frame[column], lines)) is not None}
    order = None if timestamp_column is None else _timestamp_order(frame[timestamp_column], lines)
    n_rows = len(frame)
    frame, values, non_finite = _finite_values(frame, columns, nan_policy, path, lines)
    labels = None if label_column is None else _binary_labels(frame[label_column], path, lines)
    timestamps = None if timestamp_column is None else frame[timestamp_column].to_numpy()
    return Table(path, values.astype(np.float32), labels, timestamps, columns, frame.index.to_numpy(),
                 timestamp_column, dropped, non_finite, n_rows - len(frame), lines, typos, order)


def separator_hint(frame) -> str | None:
    """For a file read as one column whose header holds another usual separator: the setting that reads it."""
    header = str(frame.columns[0]) if len(frame.columns) == 1 else ""
    found = next((separator for separator in OTHER_SEPARATORS if separator in header), None)
    if found is None:
        return None
    return f"its header looks separated by {found!r}: read it with 'dataset.separator=\"{found}\"'"


def _value_columns(frame, requested, reserved: set, path: Path, lines: FileLines) -> list[str]:
    """The requested value columns, checked; by default every numeric column that is not reserved."""
    import pandas as pd

    if requested is None:
        columns = [c for c in frame.columns if c not in reserved and pd.api.types.is_numeric_dtype(frame[c])
                   and not pd.api.types.is_bool_dtype(frame[c])]
        if not columns:
            fix = separator_hint(frame) or "fix the file or name the value columns with dataset.value_columns=[...]"
            raise UserError(f"{path}: no numeric value column (columns: {', '.join(map(str, frame.columns))}); {fix}")
        return columns
    columns = [str(c) for c in ([requested] if isinstance(requested, str) else requested)]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise UserError(f"{path}: dataset.value_columns names missing columns {missing}; the file has "
                        f"{', '.join(map(str, frame.columns))}")
    for column in columns:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            bad = frame[column][pd.to_numeric(frame[column], errors="coerce").isna() & frame[column].notna()]
            raise UserError(f"{path}: value column {column!r} is not numeric ({bad.iloc[0]!r} at line "
                            f"{lines(bad.index[0])}); fix the file or leave the column out of dataset.value_columns")
    return columns


def _typo_cells(column, lines: FileLines) -> tuple[int, str, int] | None:
    """(line, text, count) of the first cell that is no number in a column of numbers otherwise (more numbers than
    other cells); None for a column of text."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
        return None
    numbers = pd.to_numeric(column, errors="coerce")
    odd = column.notna() & numbers.isna()
    if not odd.any() or numbers.notna().sum() <= odd.sum():
        return None
    first = odd.idxmax()
    return lines(first), str(column[first]), int(odd.sum())


def _timestamp_order(column, lines: FileLines) -> str | None:
    """Where the timestamps first go back in time or repeat, as words; None when they increase (or cannot be read
    as times or numbers, so that no order can be told)."""
    import warnings

    import pandas as pd

    given = column[column.notna()]
    if pd.api.types.is_bool_dtype(given):
        return None
    if pd.api.types.is_numeric_dtype(given):
        moments = given.to_numpy(np.float64)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pandas' notes on how it guessed the date format
            parsed = pd.to_datetime(given, errors="coerce")
        if parsed.isna().any():
            return None
        moments = parsed.to_numpy("datetime64[ns]").astype(np.int64)
    steps = np.diff(moments)
    wrong = steps <= 0
    if not wrong.any():
        return None
    at = int(np.argmax(wrong))
    earlier, later = given.index[at], given.index[at + 1]
    what = (f"line {lines(later)} repeats the timestamp of line {lines(earlier)} ({given[later]})" if steps[at] == 0
            else f"line {lines(later)} ({given[later]}) is earlier than line {lines(earlier)} ({given[earlier]})")
    return f"{what}; {int(wrong.sum())} row(s) in all go back in time or repeat a timestamp"


def _finite_values(frame, columns: list[str], nan_policy: str, path: Path, lines: FileLines):
    """(frame, values [T, C], {column: NaN/inf count}) with NaN/inf refused, marked as NaN gaps to interpolate, or
    their rows dropped; a value too large for float32 is refused whatever the policy."""
    values = frame[columns].to_numpy(dtype=np.float64)
    finite = np.isfinite(values)
    with np.errstate(invalid="ignore"):
        too_large = finite & (np.abs(values) > LARGEST_VALUE)
    if too_large.any():
        row, col = np.argwhere(too_large)[0]
        raise UserError(f"{path}: value {values[row, col]:.6g} in column {columns[col]!r} at line "
                        f"{lines(frame.index[row])} is beyond ±{LARGEST_VALUE:.4g}, the largest number tsad "
                        f"stores ({int(too_large.sum())} such values); rescale the column in the file, "
                        f"e.g. divide it by 1e300")
    if finite.all():
        return frame, values, {}
    counts = {column: int(n) for column, n in zip(columns, (~finite).sum(axis=0)) if n}
    if nan_policy == "error":
        row, col = np.argwhere(~finite)[0]
        raise UserError(f"{path}: {int((~finite).sum())} NaN/inf values (first in column {columns[col]!r} at "
                        f"line {lines(frame.index[row])}); fix the file or set dataset.nan_policy=interpolate or "
                        f"drop")
    if nan_policy == "interpolate":
        # Only mark the gaps here: they are filled later within each train/val/test part, so that
        # no part is filled from another part's rows (fill_gaps).
        if not finite.any(axis=0).all():
            column = columns[int(np.argmin(finite.any(axis=0)))]
            raise UserError(f"{path}: value column {column!r} has no finite value to interpolate from; "
                            f"leave it out with dataset.value_columns")
        return frame, np.where(finite, values, np.nan), counts
    keep = finite.all(axis=1)
    if not keep.any():
        raise UserError(f"{path}: dataset.nan_policy=drop removed every row; every row has a NaN/inf value")
    return frame[keep], values[keep], counts  # the index keeps each row's place in the file


def fill_gaps(values: np.ndarray, columns: list[str], what: str) -> np.ndarray:
    """values [T, C] with NaN gaps filled linearly per column, and gaps at either end by the nearest value.

    Called on one train/val/test part (or one whole series at series level), never on a whole file
    before it is cut: filling the end of train from the first test rows would leak test data into train.
    """
    gaps = np.isnan(values)
    if not gaps.any():
        return values
    if gaps.all(axis=0).any():
        column = columns[int(np.argmax(gaps.all(axis=0)))]
        raise UserError(f"{what} has no finite value in column {column!r} to interpolate from; "
                        f"change dataset.split, leave the column out with dataset.value_columns, or fix the file")
    steps = np.arange(len(values))
    filled = values.copy()
    for column in np.flatnonzero(gaps.any(axis=0)):
        known = ~gaps[:, column]
        # np.interp holds the first/last known value beyond the ends
        filled[:, column] = np.interp(steps, steps[known], values[known, column].astype(np.float64))
    return filled


def reading_warnings(tables: list[Table]) -> RunWarnings:
    """What reading the files did on its own, as warnings: columns left out, NaN/inf values filled or dropped."""
    warnings = RunWarnings()
    for table in tables:
        for column, (line, text, count) in table.typo_cells.items():
            others = f" and {count - 1} more such cell(s)" if count > 1 else ""
            warnings.add("typo_cells", f"csv: {table.path}: column {column!r} left out of the values: its cell "
                                       f"{text!r} at line {line} is not a number{others}, the rest are numbers; fix "
                                       f"the cell (empty it to mark a gap, with dataset.nan_policy=interpolate), or "
                                       f"leave the column out on purpose with dataset.value_columns=[...]")
    for table in tables:
        if table.timestamp_order is not None:
            warnings.add("timestamp_order", f"csv: {table.path}: timestamps in {table.timestamp_column!r} are not "
                                            f"increasing: {table.timestamp_order}; rows are used in file order "
                                            f"(windows and the train/val/test cut follow the file, not time): sort "
                                            f"the file by its timestamps and remove repeated rows")
    typos = {column for table in tables for column in table.typo_cells}
    dropped = list(dict.fromkeys(column for table in tables for column in table.dropped_columns
                                 if column not in typos))
    if dropped:
        warnings.add("dropped_columns", f"csv: non-numeric column(s) {', '.join(map(repr, dropped))} left out of "
                                        "the values; choose the value columns with dataset.value_columns=[...]")
    counts = {}
    for table in tables:
        for column, n in table.non_finite.items():
            counts[column] = counts.get(column, 0) + n
    if counts:
        where = ", ".join(f"{n} in {column!r}" for column, n in counts.items())
        rows = sum(table.dropped_rows for table in tables)
        done = f"dropped with their {rows} rows" if rows else "interpolated within each split part"
        warnings.add("nan_dropped" if rows else "nan_interpolated",
                     f"csv: {sum(counts.values())} NaN/inf values ({where}) {done}")
    return warnings


def _binary_labels(column, path: Path, lines: FileLines) -> np.ndarray:
    """Labels [T] as floats: 0, 1, or NaN for an empty cell; anything else is refused."""
    import pandas as pd

    labels = pd.to_numeric(column.astype(int) if pd.api.types.is_bool_dtype(column) else column,
                           errors="coerce").to_numpy(np.float64)
    unreadable = column.notna().to_numpy() & np.isnan(labels)
    given = labels[~np.isnan(labels)]
    wrong = unreadable | (~np.isnan(labels) & ~np.isin(labels, (0, 1)))
    if wrong.any():
        odd = sorted(set(column[unreadable].astype(str)) | {f"{v:g}" for v in given if v not in (0, 1)})
        raise UserError(f"{path}: label column {column.name!r} must hold 0 (normal) or 1 (anomaly), found "
                        f"{', '.join(odd[:5])} (first at line {lines(column.index[np.argmax(wrong)])}); fix the "
                        f"file or choose another dataset.label_column")
    return labels


def _timestamp_column(frame, requested, path: Path):
    """The column `requested` names; with 'auto' the first column named like timestamps (TIMESTAMP_NAMES), else the
    first column of text whose every cell reads as a date and time (`ts`, `time_utc`, ...). A column of numbers is
    never taken for timestamps: it is a value column."""
    column = _pick_column(frame, requested, TIMESTAMP_NAMES, "timestamp_column", path)
    if column is not None or requested != "auto":
        return column
    return next((column for column in frame.columns if _holds_datetimes(frame[column])), None)


def _holds_datetimes(column) -> bool:
    """Whether every cell of a column of text reads as a date and time (each with a digit: no 'now' or 'May')."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return False
    cells = column.dropna().astype(str)
    if cells.empty or not cells.str.contains(r"\d").all():
        return False
    with warnings.catch_warnings():  # pandas warns when it parses each cell on its own
        warnings.simplefilter("ignore", UserWarning)
        parsed = pd.to_datetime(cells, errors="coerce")
    return bool(parsed.notna().all())


def _pick_column(frame, requested, auto_names: tuple[str, ...], key: str, path: Path):
    """The column `requested` names; with 'auto' the first column called one of auto_names (any case), if any."""
    if requested is None:
        return None
    if requested == "auto":
        return next((c for c in frame.columns if str(c).strip().lower() in auto_names), None)
    if requested not in frame.columns:
        raise UserError(f"{path}: dataset.{key}={requested!r} is not a column (columns: "
                        f"{', '.join(map(str, frame.columns))}); fix the name, or set it to null")
    return requested
