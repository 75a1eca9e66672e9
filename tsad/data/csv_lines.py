"""The file's own line number (header = line 1) of each data row of a CSV file, for messages that point at a row.

pandas numbers data rows from 0 after the header, skips blank lines and lets a quoted cell span lines, so a row's
number plus 2 is its line only in a plain file. Lines are counted the way pandas reads them, and only when a
message needs one: reading a good file costs nothing.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path


class FileLines:
    """data row (0 = the first row after the header, as pandas numbers them) -> its line in the file.

    `source` is the file's path, or the text that was read (a buffer); without one (or when the file cannot be
    re-read) a row's line is taken as its number plus 2.
    """

    def __init__(self, source: Path | str | None = None, separator: str = ","):
        self.source, self.separator = source, separator
        self._lines: list[int] | None = None

    def __call__(self, data_row: int) -> int:
        if self._lines is None:
            self._lines = self._count()
        data_row = int(data_row)
        return self._lines[data_row] if 0 <= data_row < len(self._lines) else data_row + 2

    def _count(self) -> list[int]:
        if self.source is None:
            return []
        try:
            if isinstance(self.source, Path):
                with open(self.source, newline="", encoding="utf-8-sig", errors="replace") as handle:
                    text = handle.read()
            else:
                text = self.source
            return data_row_lines(text, self.separator)
        except (OSError, csv.Error):
            return []


def data_row_lines(text: str, separator: str) -> list[int]:
    """The line of each data row of CSV `text`: blank lines skipped, the first non-blank record is the header."""
    if len(separator) != 1:  # a regular expression (e.g. \s+): pandas' python parser, one record per line
        starts = [number for number, line in enumerate(text.splitlines(), 1) if line.strip()]
        return starts[1:]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=separator)
    starts, end = [], 0
    for record in reader:
        start, end = end + 1, reader.line_num
        if record and not (len(record) == 1 and not record[0].strip()):
            starts.append(start)
    return starts[1:]
