"""TSB-AD 1.5's per-file metrics and its sliding-window rule, computed the way TSB-AD computes them.

`tsb_ad_metrics` returns the nine numbers of TSB-AD's `get_metrics(score, label, slidingWindow=...)`
(no `pred`: the thresholded metrics take their best threshold, as TSB-AD's benchmark does);
`sliding_window` is its `find_length_rank(first channel, rank=1)`.

What comes from where:
- AUC-ROC, AUC-PR (average precision) and Standard-F1's precision-recall curve: scikit-learn, as in TSB-AD.
- VUS-PR / VUS-ROC and the window rule: tsad.evaluation.vus (TSB-AD's `version='opt'`, 250 thresholds).
- Range precision / recall and affiliation precision / recall at one threshold: tsad.evaluation.range_metrics.
- Written here because no library does it: TSB-AD's own threshold search (100 evenly spaced thresholds
  between the lowest and highest score, a point flagged when its score is above the threshold, the best
  F1 kept), and the two places where its bookkeeping departs from the textbook metric and which the
  numbers must follow:
  - PA-F1: a true segment starting at the first row never gets that row back by point adjustment
    unless the row itself is flagged (TSB-AD walks back to row 1, not row 0).
  - Event-based-F1: a true segment reaching the last row is taken to end one row earlier, so a one-row
    anomaly in the last row can never be detected.
  PA-F1 and Event-based-F1 count from sorted scores and per-segment maxima (O(n log n) in all, against
  TSB-AD's Python loops over points); R-based-F1 and Affiliation-F call range_metrics once per distinct
  flagged set, O(n) each instead of TSB-AD's segment-against-segment loops.
- Standard-F1 keeps TSB-AD's 1e-5 in the denominator of 2PR / (P + R), and Event-based-F1 and
  Affiliation-F its 1e-15. Affiliation-F is NaN for constant scores: no threshold flags a point and TSB-AD
  leaves affiliation precision undefined there.
"""

from __future__ import annotations

import math

import numpy as np

from tsad.evaluation.range_metrics import (
    affiliation_precision_recall,
    as_binary,
    contiguous_segments,
    f1_from,
    range_precision_recall,
)
from tsad.evaluation.vus import default_window, vus_metrics

METRIC_KEYS = ("auc_pr", "auc_roc", "vus_pr", "vus_roc", "standard_f1", "pa_f1", "event_based_f1",
               "r_based_f1", "affiliation_f")
N_THRESHOLDS = 100
STANDARD_F1_EPSILON = 1e-5
F1_EPSILON = 1e-15


def tsb_ad_metrics(labels, scores, sliding_window: int) -> dict[str, float]:
    """TSB-AD's nine metrics of `scores` (higher is more anomalous) against 0/1 `labels`.

    `sliding_window` is the VUS window (TSB-AD's slidingWindow, see `sliding_window`). Raises
    ValueError for labels that are not 0/1, labels of one class only, non-finite scores, or a
    length mismatch.
    """
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

    labels, scores = _checked_inputs(labels, scores)
    if int(sliding_window) != sliding_window or sliding_window < 0:
        raise ValueError(f"sliding_window must be a non-negative integer, got {sliding_window!r}")
    precision, recall, _ = precision_recall_curve(labels, scores)
    sweep = _ThresholdSweep(labels, scores)
    return {
        "auc_pr": float(average_precision_score(labels, scores)),
        "auc_roc": float(roc_auc_score(labels, scores)),
        **vus_metrics(labels, scores, int(sliding_window)),
        "standard_f1": float(np.max(2 * precision * recall / (precision + recall + STANDARD_F1_EPSILON))),
        "pa_f1": float(np.max(sweep.pa_f1())),
        "event_based_f1": float(np.max(sweep.event_based_f1())),
        "r_based_f1": max(sweep.per_threshold(lambda flagged: f1_from(*range_precision_recall(labels, flagged)))),
        "affiliation_f": _first_nan_or_max(sweep.per_threshold(lambda flagged: _affiliation_f(labels, flagged))),
    }


def sliding_window(values) -> int:
    """TSB-AD's window for a series: the lag of the strongest autocorrelation peak of its first channel.

    The rule of `find_length_rank(first channel, rank=1)`, which tsad.evaluation.vus already implements
    as the VUS default window: over the first 20,000 rows of channel 0, the highest strict local maximum
    of the autocorrelation at lags 3..400; 125 when there is none (a constant series included) or when
    its lag lies outside 6..303.
    """
    series = np.asarray(values, dtype=np.float64)
    if series.ndim not in (1, 2) or len(series) == 0:
        raise ValueError(f"the series for the sliding window must be (rows,) or (rows, channels) with at least "
                         f"one row, got shape {series.shape}")
    if not np.all(np.isfinite(series if series.ndim == 1 else series[:, 0])):
        raise ValueError("the series for the sliding window must be finite (no NaN or inf)")
    return default_window(series)


class _ThresholdSweep:
    """TSB-AD's 100 thresholds over one file's scores and what each of them flags."""

    def __init__(self, labels: np.ndarray, scores: np.ndarray):
        self.labels, self.scores = labels, scores
        self.thresholds = np.linspace(scores.min(), scores.max(), N_THRESHOLDS)
        self.flagged = _count_above(scores, self.thresholds)
        self.flagged_anomalous = _count_above(scores[labels == 1], self.thresholds)
        self.starts, self.ends = contiguous_segments(labels)

    def per_threshold(self, metric) -> list[float]:
        """`metric(flagged)` for the 0/1 flags of every threshold.

        The flagged sets shrink as the threshold rises, so thresholds flagging as many points flag the
        same points (ties, few distinct scores): each set is scored once.
        """
        values_by_count = {}
        for threshold, count in zip(self.thresholds, self.flagged):
            if count not in values_by_count:
                values_by_count[count] = metric((self.scores > threshold).astype(np.int8))
        return [values_by_count[count] for count in self.flagged]

    def pa_f1(self) -> np.ndarray:
        """Point F1 after point adjustment, per threshold."""
        lengths = self.ends - self.starts + 1
        hit = self._segment_hit(self.starts, self.ends)
        true_positives = hit @ lengths
        if self.starts[0] == 0:
            # The first row of a segment at the start stays as flagged.
            true_positives = true_positives - (hit[:, 0] & (self.scores[0] <= self.thresholds))
        false_positives = self.flagged - self.flagged_anomalous
        false_negatives = lengths.sum() - true_positives
        denominator = 2 * true_positives + false_positives + false_negatives
        return np.divide(2 * true_positives, denominator, out=np.zeros(N_THRESHOLDS), where=true_positives > 0)

    def event_based_f1(self) -> np.ndarray:
        """F1 of event recall and point precision, per threshold."""
        ends = self.ends.copy()
        if ends[-1] == len(self.labels) - 1:
            ends[-1] -= 1
        event_recall = self._segment_hit(self.starts, ends).mean(axis=1)
        precision = np.divide(self.flagged_anomalous, self.flagged, out=np.zeros(N_THRESHOLDS),
                              where=self.flagged > 0)
        return 2 * event_recall * precision / (event_recall + precision + F1_EPSILON)

    def _segment_hit(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """[threshold, segment]: whether a score in the segment is above the threshold; empty segments never."""
        nonempty = starts <= ends
        peaks = np.full(len(starts), -np.inf)
        if nonempty.any():
            bounds = np.column_stack([starts[nonempty], ends[nonempty] + 1]).ravel()
            # The appended row makes end + 1 == n a valid bound; the gaps between segments are dropped.
            peaks[nonempty] = np.maximum.reduceat(np.append(self.scores, -np.inf), bounds)[::2]
        return (peaks[None, :] > self.thresholds[:, None]).astype(np.int64)


def _count_above(scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """For each threshold, how many scores are strictly above it."""
    return len(scores) - np.searchsorted(np.sort(scores), thresholds, side="right")


def _affiliation_f(labels: np.ndarray, flagged: np.ndarray) -> float:
    if not flagged.any():
        return math.nan
    precision, recall = affiliation_precision_recall(labels, flagged)
    return 2 * precision * recall / (precision + recall + F1_EPSILON)


def _first_nan_or_max(values: list[float]) -> float:
    """Python's max() over floats, which TSB-AD uses: NaN when the first value is NaN, later NaNs skipped."""
    return math.nan if math.isnan(values[0]) else float(np.nanmax(values))


def _checked_inputs(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    labels = as_binary(labels, "labels")
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if len(labels) != len(scores):
        raise ValueError(f"{len(labels)} labels but {len(scores)} scores")
    if len(labels) == 0:
        raise ValueError("no labels and no scores: TSB-AD's metrics need at least one row")
    if not np.all(np.isfinite(scores)):
        bad = int(np.sum(~np.isfinite(scores)))
        raise ValueError(f"{bad} of {len(scores)} scores are NaN or infinite; TSB-AD's metrics need finite scores")
    if labels.min() == labels.max():
        kind = "anomalous" if labels[0] == 1 else "normal"
        raise ValueError(f"all {len(labels)} labels are {kind}; TSB-AD's metrics need both classes")
    return labels, scores
