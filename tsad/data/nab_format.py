"""NAB's data format: the anomaly windows file, the probationary period, and windows as rows.

labels/combined_windows.json maps "<category>/<name>.csv" to inclusive (start, end) timestamp
pairs. Rows are identified by their position in a file, never by time arithmetic: some NAB files
repeat timestamps or go back in time, so a window boundary maps to the first row carrying that
timestamp. The first 15% of each file (at most 750 rows) is its probationary period, which NAB
never scores.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from tsad.errors import UserError

WINDOWS_FILE = "labels/combined_windows.json"
PROBATIONARY_FRACTION = 0.15
PROBATIONARY_MAX_ROWS = 750  # the fraction of a 5000-row file


def probationary_length(n_rows: int) -> int:
    """The number of leading rows of a file that are never scored."""
    return min(math.floor(PROBATIONARY_FRACTION * n_rows), PROBATIONARY_MAX_ROWS)


def load_nab_windows(nab_root) -> dict[str, list[tuple[str, str]]]:
    """{"<category>/<name>.csv": [(start, end), ...]} from labels/combined_windows.json, timestamps as written."""
    path = Path(nab_root) / WINDOWS_FILE
    windows = read_nab_json(path, "the NAB anomaly windows")
    return {name: [(start, end) for start, end in file_windows] for name, file_windows in windows.items()}


def read_nab_json(path: Path, what: str):
    """One of the NAB repository's JSON files; `what` says what it holds, for the error message."""
    if not path.is_file():
        raise UserError(f"{path} is missing; it holds {what}: point --nab-root at a copy of the NAB repository")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise UserError(f"{path} is not valid JSON ({error}); restore it from the NAB repository") from error


def windows_to_rows(timestamps, windows: Sequence[tuple], file_name: str = "file") -> list[tuple[int, int]]:
    """Map (start, end) timestamp windows to inclusive row pairs, each boundary at its first occurrence."""
    if len(windows) == 0:
        return []
    distinct, first_row = np.unique(_as_nanoseconds(timestamps, file_name), return_index=True)
    boundaries = [boundary for window in windows for boundary in window]
    boundary_ns = _as_nanoseconds(boundaries, file_name)
    position = np.searchsorted(distinct, boundary_ns)
    found = position < len(distinct)
    found[found] = distinct[position[found]] == boundary_ns[found]
    if not found.all():
        raise UserError(f"{file_name}: window boundary {boundaries[int(np.argmin(found))]} is not a timestamp "
                        "of the file; windows must start and end on timestamps of the data")
    rows = first_row[position].reshape(-1, 2)
    if (rows[:, 0] > rows[:, 1]).any() or (rows[1:, 0] <= rows[:-1, 1]).any():
        raise UserError(f"{file_name}: anomaly windows must be sorted and must not overlap; merge or reorder them")
    return [(int(start), int(end)) for start, end in rows]


def _as_nanoseconds(timestamps, file_name: str) -> np.ndarray:
    try:
        parsed = pd.to_datetime(np.asarray(timestamps).ravel(), format="ISO8601")
    except (ValueError, TypeError) as error:
        reason = str(error).splitlines()[0]
        raise UserError(f"{file_name}: cannot read the timestamps ({reason}); "
                        "write them as 'YYYY-MM-DD HH:MM:SS'") from error
    return pd.DatetimeIndex(parsed).as_unit("ns").asi8


def windows_from_labels(timestamps, labels) -> list[tuple]:
    """Windows as (first, last) timestamps of each run of rows labelled 1.

    Two NAB windows with no row between them come back as one window; NAB merges only
    windows that overlap or share a boundary.
    """
    flags = np.r_[0, np.asarray(labels).astype(bool).astype(np.int8).ravel(), 0]
    starts = np.flatnonzero(np.diff(flags) == 1)
    ends = np.flatnonzero(np.diff(flags) == -1) - 1
    stamps = np.asarray(timestamps)
    return [(stamps[start], stamps[end]) for start, end in zip(starts, ends)]
