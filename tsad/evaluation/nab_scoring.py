"""The Numenta Anomaly Benchmark (NAB) scorer's arithmetic, rebuilt from its written specification.

How NAB scores a detector:
- Each labelled anomaly window earns the weighted value of its earliest detection: tpWeight
  at the window's first row, falling along a scaled sigmoid to about 0 at its last row.
  A window without any detection costs fnWeight.
- Every detected row outside all windows costs up to fpWeight: less when it comes soon
  after the end of the previous window, the full weight when no window precedes it.
- The first 15% of each file (at most 750 rows) is the detector's probationary period
  and is not scored at all (tsad/data/nab_format.py).
- One threshold per profile holds for the whole corpus. The raw corpus score is normalised
  so that the null detector (no detections) gets 0 and the perfect detector gets 100.
- NAB chooses that threshold by optimising the corpus score on the labels being scored, and
  its published thresholds (config/thresholds.json) and scoreboard come from that optimiser.
  A score at optimised or published thresholds has therefore read the test labels: tsad's NAB
  protocol reports it as `oracle_nab`, and the score at a threshold chosen without labels as
  `nab_label_free`.

Rows are identified by their position in a file, never by time arithmetic (see
tsad/data/nab_format.py). Reading and writing NAB's files is tsad/evaluation/nab_files.py.

The threshold sweep is vectorised: rows are sorted by score once per corpus, and each
profile's scores at every candidate threshold are one cumulative sum (see _credit_gains).
Sums run in a different order than in NAB's code, so totals may differ from NAB's in the
last digits (about 1e-11 on the corpus).

Deliberate differences from NAB's reference code, all for inputs that NAB fails on or
never meets; none changes a score on the NAB v1.1 corpus:
- Scoring at a threshold below every score of a file detects every row; NAB fails there.
- The "detect nothing" candidate of the threshold sweep is 1.1 as in NAB, unless some
  score reaches 1.1; it is then the next float above the largest score, so that the
  chosen threshold really detects nothing (NAB assumes scores in [0, 1]).
- After a window one row wide every false positive costs the full fpWeight; NAB divides
  by the window width minus one and fails.
- A window with no scored row (entirely probationary) counts towards neither the null
  nor the perfect score, so those stay at 0 and 100. NAB's labeller never makes one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tsad.data.nab_format import probationary_length, windows_to_rows
from tsad.errors import UserError

DEFAULT_PROFILES = {
    "standard": {"tpWeight": 1.0, "fpWeight": 0.11, "fnWeight": 1.0},
    "reward_low_FP_rate": {"tpWeight": 1.0, "fpWeight": 0.22, "fnWeight": 1.0},
    "reward_low_FN_rate": {"tpWeight": 1.0, "fpWeight": 0.11, "fnWeight": 2.0},
}
SIGMOID_STEEPNESS = 5.0
# Beyond this many window lengths after a window, a false positive costs the full fpWeight.
FALSE_POSITIVE_CLAMP = 3.0
NO_DETECTION_THRESHOLD = 1.1


def scaled_sigmoid(relative_position):
    """NAB's scaled sigmoid 2 / (1 + exp(5 p)) - 1, clamped to -1 beyond p = 3.

    p < 0 is a position inside a window (-1 = its first row), p > 0 a distance after a
    window in window lengths. Accepts a number or an array.
    """
    p = np.asarray(relative_position, dtype=np.float64)
    with np.errstate(over="ignore"):
        value = 2.0 / (1.0 + np.exp(SIGMOID_STEEPNESS * p)) - 1.0
    return np.where(p > FALSE_POSITIVE_CLAMP, -1.0, value)[()]


# The value of a detection at a window's first row; window values are scaled by it to reach tpWeight.
MAX_TP = float(scaled_sigmoid(-1.0))


def row_values(n_rows: int, window_rows: Sequence[tuple[int, int]],
               cost_matrix: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """Per row of a file: the index of its window (-1 outside every window) and its weighted value v_i.

    window_rows are sorted, non-overlapping, inclusive (first_row, last_row) pairs. v_i is
    what a detection at row i would be worth: a window's credit is the largest v_i among
    its detected rows, and a false positive adds its (negative) v_i.
    """
    cost = _Cost.from_matrix(cost_matrix)
    window, unit = _window_and_unit_value(n_rows, window_rows)
    return window, np.where(window >= 0, cost.tp * unit, cost.fp * unit)


def _window_and_unit_value(n_rows: int, window_rows: Sequence[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """row_values with tpWeight = fpWeight = 1, so that profiles only rescale it."""
    if len(window_rows) == 0:
        return np.full(n_rows, -1), np.full(n_rows, -1.0)
    rows = np.arange(n_rows)
    starts, ends = np.asarray(window_rows, dtype=np.int64).T
    latest = np.searchsorted(starts, rows, side="right") - 1  # last window starting at or before the row
    start, end = starts[np.maximum(latest, 0)], ends[np.maximum(latest, 0)]
    inside = (latest >= 0) & (rows <= end)
    after = (latest >= 0) & (rows > end)
    unit = np.full(n_rows, -1.0)
    unit[inside] = scaled_sigmoid(-(end - rows + 1)[inside] / (end - start + 1)[inside]) / MAX_TP
    with np.errstate(divide="ignore"):
        unit[after] = scaled_sigmoid((rows - end)[after] / (end - start)[after])
    return np.where(inside, latest, -1), unit


@dataclass(frozen=True)
class _Cost:
    tp: float
    fp: float
    fn: float

    @classmethod
    def from_matrix(cls, matrix: Mapping[str, float]) -> _Cost:
        try:
            return cls(float(matrix["tpWeight"]), float(matrix["fpWeight"]), float(matrix["fnWeight"]))
        except (KeyError, TypeError, ValueError) as error:
            raise UserError(f"a NAB cost matrix needs numeric tpWeight, fpWeight and fnWeight, "
                            f"got {matrix!r}") from error


@dataclass(frozen=True)
class _ScoredRows:
    """The non-probationary rows of every file, concatenated in file order and row order."""

    file_names: list[str]
    file_of_row: np.ndarray
    score: np.ndarray
    window_of_row: np.ndarray  # corpus-wide window number, -1 outside every window
    unit_value: np.ndarray  # v_i / tpWeight inside a window, v_i / fpWeight outside
    file_of_window: np.ndarray
    credit_gain: np.ndarray  # see _credit_gains
    opens_window: np.ndarray
    descending: np.ndarray  # row order by falling score
    run_ends: np.ndarray  # positions in that order where a run of equal scores ends

    @property
    def n_windows(self) -> int:
        return len(self.file_of_window)

    @property
    def inside(self) -> np.ndarray:
        return self.window_of_row >= 0

    def values(self, cost: _Cost) -> np.ndarray:
        return np.where(self.inside, cost.tp * self.unit_value, cost.fp * self.unit_value)


def _scored_rows(files: Mapping[str, tuple], windows: Mapping[str, Sequence[tuple]]) -> _ScoredRows:
    names, parts, windows_so_far = [], [], 0
    for name, (timestamps, anomaly_scores) in files.items():
        if name not in windows:
            raise UserError(f"{name} has no entry in the anomaly windows; "
                            "give it an empty list if it has no anomalies")
        scores = np.asarray(anomaly_scores, dtype=np.float64).ravel()
        if len(scores) != len(timestamps):
            raise UserError(f"{name}: {len(timestamps)} timestamps but {len(scores)} anomaly scores; "
                            "give one score per row")
        if not np.isfinite(scores).all():
            raise UserError(f"{name}: anomaly scores must be finite numbers; replace NaN or infinite scores")
        file_windows = windows_to_rows(timestamps, windows[name], name)
        window, unit = _window_and_unit_value(len(scores), file_windows)
        first_scored = probationary_length(len(scores))
        names.append(name)
        corpus_window = np.where(window >= 0, window + windows_so_far, -1)
        parts.append((scores[first_scored:], corpus_window[first_scored:], unit[first_scored:]))
        windows_so_far += len(file_windows)
    if not parts:
        raise UserError("there are no files to score")

    file_of_row = np.repeat(np.arange(len(parts)), [len(part[0]) for part in parts])
    score, corpus_window, unit = (np.concatenate(column) for column in zip(*parts))
    window_of_row, file_of_window = _number_scored_windows(corpus_window, file_of_row)

    credit_gain, opens_window = _credit_gains(window_of_row, score, unit)
    descending = np.argsort(-score, kind="stable")
    return _ScoredRows(names, file_of_row, score, window_of_row, unit, file_of_window,
                       credit_gain, opens_window, descending, _run_ends(score[descending]))


def _run_ends(sorted_scores: np.ndarray) -> np.ndarray:
    """The last position of each run of equal values."""
    if len(sorted_scores) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.r_[np.flatnonzero(np.diff(sorted_scores)), len(sorted_scores) - 1]


def _number_scored_windows(corpus_window: np.ndarray, file_of_row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Renumber windows 0, 1, ... keeping only those with a scored row; also the file of each."""
    inside = corpus_window >= 0
    kept, number = np.unique(corpus_window[inside], return_inverse=True)
    window_of_row = np.full(len(corpus_window), -1)
    window_of_row[inside] = number
    file_of_window = np.zeros(len(kept), dtype=np.int64)
    file_of_window[number] = file_of_row[inside]
    return window_of_row, file_of_window


def _credit_gains(window_of_row: np.ndarray, score: np.ndarray, unit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row, how much its window's credit rises when the falling threshold reaches the row's score.

    Returns the rise in tpWeight units, and whether the row is its window's first detection,
    which also recovers the fnWeight of a missed window. A window's credit is the value of its
    earliest detected row, so a row can raise it only if it scores higher than every earlier
    row of its window ("leading" rows; all other rows raise nothing). The falling threshold
    reaches the leading rows from the last one (the highest score) backwards: the last lifts
    the credit from -fnWeight to its own value, each earlier one by the difference between
    its value and that of the next leading row.
    """
    gain, opens = np.zeros(len(score)), np.zeros(len(score), dtype=bool)
    inside = np.flatnonzero(window_of_row >= 0)
    if len(inside) == 0:
        return gain, opens
    by_window = window_of_row[inside]
    window_scores = pd.Series(score[inside])
    best_before = window_scores.groupby(by_window).cummax().groupby(by_window).shift(1)
    leading = inside[(best_before.isna() | (window_scores > best_before)).to_numpy()]
    leading_unit = pd.Series(unit[leading])
    next_unit = leading_unit.groupby(window_of_row[leading]).shift(-1)
    gain[leading] = (leading_unit - next_unit.fillna(0.0)).to_numpy()
    opens[leading] = next_unit.isna().to_numpy()
    return gain, opens


def _sweep(rows: _ScoredRows, cost: _Cost) -> tuple[np.ndarray, np.ndarray]:
    """Every candidate threshold with its raw corpus score, highest threshold first.

    The candidates are "detect nothing" and every distinct scored anomaly value; the score
    of a candidate t is that of detecting every row scoring >= t.
    """
    gains = np.where(rows.inside, cost.tp * rows.credit_gain + cost.fn * rows.opens_window, cost.fp * rows.unit_value)
    null_score = -cost.fn * rows.n_windows
    totals = null_score + np.cumsum(gains[rows.descending])[rows.run_ends]
    thresholds = rows.score[rows.descending][rows.run_ends]
    return np.r_[_nothing_detected_threshold(rows.score), thresholds], np.r_[null_score, totals]


def _nothing_detected_threshold(scores: np.ndarray) -> float:
    if len(scores) == 0 or scores.max() < NO_DETECTION_THRESHOLD:
        return NO_DETECTION_THRESHOLD
    return float(np.nextafter(scores.max(), np.inf))


def _best_threshold(rows: _ScoredRows, cost: _Cost) -> float:
    """The threshold with the highest raw corpus score; the highest such threshold on ties, as in NAB."""
    thresholds, totals = _sweep(rows, cost)
    return float(thresholds[np.argmax(totals)])


def _score_files_at(rows: _ScoredRows, cost: _Cost, threshold: float) -> dict[str, np.ndarray]:
    """Raw score, row counts and window counts per file with every row scoring >= threshold detected."""
    n_files = len(rows.file_names)
    detected = rows.score >= threshold
    values = rows.values(cost)

    def per_file(mask, weights=None):
        selected = None if weights is None else weights[mask]
        return np.bincount(rows.file_of_row[mask], weights=selected, minlength=n_files)

    best_detection = np.full(rows.n_windows, -np.inf)
    hit_rows = detected & rows.inside
    np.maximum.at(best_detection, rows.window_of_row[hit_rows], values[hit_rows])
    window_hit = np.isfinite(best_detection)
    credit = np.where(window_hit, best_detection, -cost.fn)
    false_positives = detected & ~rows.inside
    return {
        "raw_score": per_file(false_positives, values)
        + np.bincount(rows.file_of_window, weights=credit, minlength=n_files),
        "tp": per_file(hit_rows),
        "tn": per_file(~detected & ~rows.inside),
        "fp": per_file(false_positives),
        "fn": per_file(~detected & rows.inside),
        "windows": np.bincount(rows.file_of_window, minlength=n_files),
        "windows_detected": np.bincount(rows.file_of_window[window_hit], minlength=n_files),
    }


def normalised_score(raw_score: float, cost_matrix: Mapping[str, float], n_windows: int) -> float | None:
    """100 * (raw - null) / (perfect - null), or None when there is no window to score against."""
    cost = _Cost.from_matrix(cost_matrix)
    if n_windows == 0:
        return None
    null_score, perfect_score = -cost.fn * n_windows, cost.tp * n_windows
    return 100.0 * (raw_score - null_score) / (perfect_score - null_score)


def score_corpus(
    files: Mapping[str, tuple],
    windows: Mapping[str, Sequence[tuple]],
    profiles: Mapping[str, Mapping[str, float]] | None = None,
    thresholds: Mapping[str, float] | float | None = None,
) -> dict:
    """Score in-memory detector output with NAB.

    files:      {file name: (timestamps, anomaly scores)}, one score per row, rows in file order.
    windows:    {file name: [(start timestamp, end timestamp), ...]} (inclusive), an entry for
                every file in `files` (an empty list for a file without anomalies); entries for
                other files are ignored, so normalisation uses the windows of the scored files.
    profiles:   {profile: {"tpWeight", "fpWeight", "fnWeight"}}; NAB's three profiles by default.
    thresholds: one threshold per profile, one for all, or None to choose, per profile, the
                threshold with the best raw corpus score (NAB's optimiser; it reads the labels
                in `windows`, so its scores are oracle figures).

    Returns {"scores": {profile: normalised score (0 = null detector, 100 = perfect)},
    "raw_scores", "thresholds", "counts" (tp/tn/fp/fn rows and windows detected) per profile,
    and "per_file": {profile: {file: {"raw_score", "tp", "tn", "fp", "fn", "windows",
    "windows_detected"}}}}.
    """
    rows = _scored_rows(files, windows)
    result = {"scores": {}, "raw_scores": {}, "thresholds": {}, "counts": {}, "per_file": {}}
    for profile, cost_matrix in (DEFAULT_PROFILES if profiles is None else profiles).items():
        cost = _Cost.from_matrix(cost_matrix)
        threshold = _best_threshold(rows, cost) if thresholds is None else _threshold_for(thresholds, profile)
        per_file = _score_files_at(rows, cost, threshold)
        raw_score = float(per_file["raw_score"].sum())
        result["scores"][profile] = normalised_score(raw_score, cost_matrix, rows.n_windows)
        result["raw_scores"][profile] = raw_score
        result["thresholds"][profile] = threshold
        result["counts"][profile] = {key: int(counts.sum()) for key, counts in per_file.items() if key != "raw_score"}
        result["per_file"][profile] = {
            name: {key: float(column[i]) if key == "raw_score" else int(column[i])
                   for key, column in per_file.items()}
            for i, name in enumerate(rows.file_names)
        }
    return result


def _threshold_for(thresholds: Mapping[str, float] | float, profile: str) -> float:
    if not isinstance(thresholds, Mapping):
        return float(thresholds)
    if profile not in thresholds:
        raise UserError(f"no threshold given for profile {profile!r}; give one for each of the profiles scored")
    return float(thresholds[profile])

