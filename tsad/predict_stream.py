"""Streaming predictions (`tsad-predict run=RUN_DIR input=-`): CSV rows from standard input, header first, and
one line out per row as it arrives: `row,score,alarm`, or `row,timestamp,score,alarm` when the input has a timestamp
column (after a header line that names them; `row` counts the data rows from 0, the timestamp is echoed as given).

Scores are causal: the score of row t reads rows <= t only. A window model keeps a ring buffer of its last
`window` rows and scores the window ending at each new row through its own causal window scoring
(Runtime.causal, as under the NAB protocol), so a stream gets the scores that scoring all its rows at once
with causal=True gives. The first window-1 rows get an empty score and alarm 0; an alarm is score > the run's
point-level threshold. The header and the first row are checked as a file is (columns matched by name,
timestamp and label columns left out); a later non-finite value follows dataset.nan_policy as far as a stream
can: error, drop (the row gets an empty score and stays out of the window) or interpolate (the column keeps
its last value, as later rows are not known yet).
"""

from __future__ import annotations

import csv
import io
import warnings
from typing import TextIO

import numpy as np

from tsad.data.csv import read_frame
from tsad.data.series import SeriesSet
from tsad.errors import UserError
from tsad.model_inputs import ModelInputs
from tsad.models.window_scoring import WindowScorer
from tsad.pipeline import Pipeline

SOURCE = "input=-"
UNSCORED = ",0"
ROW, TIMESTAMP, SCORE_ALARM = "row", "timestamp", "score,alarm"  # the answer lines' columns


def stream(pipeline: Pipeline, inputs: ModelInputs, options: dict, source: TextIO, sink: TextIO) -> None:
    """Score the CSV rows of `source` one by one into `sink` with a pipeline loaded for causal scoring (`options`:
    how to read the rows, ModelInputs.read_options)."""
    detector = pipeline.detector
    if not isinstance(detector, WindowScorer):
        raise UserError(f"model {detector.name} does not score windows, so input=- cannot stream it; give a file "
                        f"(input=FILE) or use a window model (e.g. pca, lstm_vae, patchtrad)")
    if len(options["separator"]) != 1:
        raise UserError(f"input=- reads rows split by one character; dataset.separator={options['separator']!r} "
                        f"is not one")
    pipeline.threshold("point")  # a run without a point-level threshold fails before any row is read
    # Causal window scoring hands torch read-only views of the window (it only reads them); once per stream
    # torch would warn about that on standard error.
    warnings.filterwarnings("ignore", message="The given NumPy array is not writable", category=UserWarning)
    rows = numbered_lines(source)
    _, header = next(rows, (0, ""))
    if not header:
        raise UserError(f"{SOURCE}: standard input is empty; send a header line, then one CSV row per line")
    _, first = next(rows, (0, ""))
    if not first:
        sink.write(f"{ROW},{SCORE_ALARM}\n")
        return
    frame = read_frame(io.StringIO(header + first), options["separator"], SOURCE)
    table = inputs.matching_table(frame, SOURCE, options)  # checks columns, numbers and NaN like a file
    names = next(csv.reader([header], delimiter=options["separator"]))
    positions = [names.index(column) for column in inputs.channels]
    echo = Echo(names.index(table.timestamp_column) if table.timestamp_column in names else None)
    sink.write(echo.header())
    scorer = RingScorer(pipeline)
    sink.write(echo(next(csv.reader([first], delimiter=options["separator"])),
                    scorer.push(table.values[0]) if len(table.values) else UNSCORED))
    sink.flush()
    for line_number, line in rows:
        fields = next(csv.reader([line], delimiter=options["separator"]))
        values = row_values(fields, positions, inputs.channels, line_number)
        finite = np.isfinite(values)
        if finite.all():
            sink.write(echo(fields, scorer.push(values)))
        elif options["nan_policy"] == "drop":
            sink.write(echo(fields, UNSCORED))
        elif options["nan_policy"] == "interpolate":
            sink.write(echo(fields, scorer.push(np.where(finite, values, scorer.last))))
        else:
            column = inputs.channels[int(np.argmin(finite))]
            raise UserError(f"{SOURCE}: NaN/inf value in column {column!r} at line {line_number}; fix the row or set "
                            f"dataset.nan_policy=interpolate or drop")
        sink.flush()


class Echo:
    """Each answer line: the row's number among the data rows (from 0, as `row` in a prediction folder's
    predictions.csv), its timestamp as given when the input has a timestamp column, then `score,alarm`."""

    def __init__(self, timestamp_position: int | None):
        self.timestamp_position = timestamp_position
        self.row = 0

    def header(self) -> str:
        timestamp = f"{TIMESTAMP}," if self.timestamp_position is not None else ""
        return f"{ROW},{timestamp}{SCORE_ALARM}\n"

    def __call__(self, fields: list[str], answer: str) -> str:
        line = f"{self.row},"
        if self.timestamp_position is not None:
            stamp = fields[self.timestamp_position] if self.timestamp_position < len(fields) else ""
            line += f"{_quoted(stamp)},"
        self.row += 1
        return f"{line}{answer}\n"


def _quoted(text: str) -> str:
    """A field as CSV writes it (quoted when it holds a comma, a quote or a line break)."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow([text])
    return buffer.getvalue()


def numbered_lines(source: TextIO):
    """(line number, line) of each line of `source` that is not blank, as soon as it arrives."""
    for number, line in enumerate(iter(source.readline, ""), start=1):
        if line.strip():
            yield number, line


def row_values(fields: list[str], positions: list[int], channels: list[str], line_number: int) -> np.ndarray:
    """The trained columns of one CSV row as floats (an empty cell is NaN)."""
    values = np.empty(len(positions))
    for index, position in enumerate(positions):
        if position >= len(fields):
            raise UserError(f"{SOURCE}: line {line_number} has {len(fields)} fields, too few for column "
                            f"{channels[index]!r}; fix the row")
        text = fields[position].strip()
        try:
            values[index] = float(text) if text else np.nan
        except ValueError:
            raise UserError(f"{SOURCE}: column {channels[index]!r} holds {text!r} at line {line_number}, not a "
                            f"number; fix the row") from None
    return values


class RingScorer:
    """The last `window` rows of a stream and the causal score of the newest one.

    Each row is written twice, at p and p + window of a buffer of 2 * window rows, so that the last `window`
    rows always lie contiguously at p + 1 .. p + window: a view, no copy per row.
    """

    def __init__(self, pipeline: Pipeline):
        self.pipeline, self.detector, self.window = pipeline, pipeline.detector, pipeline.detector.window
        self.buffer: np.ndarray | None = None
        self.count = 0

    @property
    def last(self) -> np.ndarray:
        return self.buffer[(self.count - 1) % self.window]

    def push(self, row: np.ndarray) -> str:
        """Add a row; its `score,alarm` line (empty score and alarm 0 before the first full window)."""
        if self.buffer is None:
            self.buffer = np.empty((2 * self.window, len(row)), dtype=np.float32)
        position = self.count % self.window
        self.buffer[position] = self.buffer[position + self.window] = row
        self.count += 1
        if self.count < self.window:
            return UNSCORED
        recent = self.buffer[position + 1:position + 1 + self.window]
        score = float(self.detector.score(SeriesSet([recent])).steps[0][-1])
        return f"{score!r},{int(self.pipeline.alarms(score, 'point'))}" if np.isfinite(score) else UNSCORED
