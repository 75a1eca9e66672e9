"""Volume under the surface (VUS) of range-aware ROC and PR curves.

The numbers are those of TSB-AD 1.5 (`generate_curve(..., version='opt', thre=250)`).
For each buffer window w in 0..window, the labels get soft margins of w//2 steps on each
side of every anomaly segment, and a ROC and a PR curve are traced over n_thresholds
score thresholds; VUS-ROC and VUS-PR are the mean areas over all windows.

Rather than re-scanning the series for every (window, threshold) pair, each point is
reduced once to the first threshold that flags it. Per window, what a threshold needs
(true positives in the margins, anomaly regions hit) then comes from a histogram over
those first thresholds and a cumulative sum, so the cost is O(n log n) plus, per window,
O(n + n_thresholds) cheap array operations.
"""

from __future__ import annotations

import numpy as np

from tsad.evaluation.range_metrics import as_binary, contiguous_segments

FALLBACK_WINDOW = 125


def vus_metrics(labels, scores, window: int, n_thresholds: int = 250) -> dict:
    """VUS-PR and VUS-ROC of `scores` (higher means more anomalous) against 0/1 `labels`.

    `window` is the largest buffer window (TSB-AD's slidingWindow); windows 0..window are
    averaged. Thresholds are n_thresholds scores spread evenly over the sorted scores, and a
    point is flagged when its score is at least the threshold.
    """
    labels, scores = _checked_inputs(labels, scores)
    if int(window) != window or window < 0:
        raise ValueError(f"window must be a non-negative integer, got {window!r}")
    if int(n_thresholds) != n_thresholds or n_thresholds < 1:
        raise ValueError(f"n_thresholds must be a positive integer, got {n_thresholds!r}")
    window, n_thresholds = int(window), int(n_thresholds)

    starts, ends = contiguous_segments(labels)
    first_hit = first_flagging_threshold(scores, n_thresholds)
    counts = {
        "n": len(labels),
        "n_anomalous": int(labels.sum()),
        "flagged": _cumulative_histogram(first_hit, n_thresholds),
        "flagged_anomalous": _cumulative_histogram(first_hit[labels == 1], n_thresholds),
    }
    margin = _margin_points(labels, starts, ends, window // 2)
    margin_first_hit = first_hit[margin["positions"]]

    roc_areas, pr_areas = [], []
    for w in range(window + 1):
        margin_credit = _margin_credit(margin, margin_first_hit, w, n_thresholds)
        detected_share = _detected_region_share(first_hit, starts, ends, w // 2, n_thresholds)
        tpr, fpr, precision = _curve_points(counts, margin_credit, detected_share)
        roc_areas.append(_roc_area(tpr, fpr))
        pr_areas.append(_pr_area(tpr, precision))
    return {"vus_pr": float(np.mean(pr_areas)), "vus_roc": float(np.mean(roc_areas))}


def first_flagging_threshold(scores: np.ndarray, n_thresholds: int) -> np.ndarray:
    """For each point, the index of the first (highest) threshold with score >= threshold.

    The thresholds are the scores at n_thresholds evenly spaced ranks of the descending
    sort, highest first. With two or more the last is the minimum score, which flags every
    point; a single threshold is the maximum, and points below it get n_thresholds (never).
    """
    descending = -np.sort(-scores)
    thresholds = descending[np.linspace(0, len(scores) - 1, n_thresholds).astype(int)]
    # Count the thresholds strictly above each score; -thresholds is ascending.
    return np.searchsorted(-thresholds, -scores, side="left")


def default_window(scores_or_series) -> int:
    """TSB-AD's VUS window for a series: its dominant period, from the autocorrelation.

    Uses the first 20,000 steps of a 1-D series (of channel 0 for a [T, C] array, as the
    TSB-AD leaderboard does). The period is the lag of the highest strict local maximum of
    the autocorrelation over lags 3..400. Fallback: 125 when there is no such maximum, when
    the lag lies outside 6..303, or when the series is constant.
    """
    series = np.asarray(scores_or_series, dtype=np.float64)
    if series.ndim == 2:
        series = series[:, 0]
    series = series.ravel()[:20_000]
    if not np.all(np.isfinite(series)):
        raise ValueError("the series for the VUS window must be finite")
    centred = series - series.mean()
    if not np.any(centred):
        return FALLBACK_WINDOW
    autocorrelation = _autocorrelation(centred, max_lag=400)[3:]
    inner = autocorrelation[1:-1]
    peaks = np.flatnonzero((inner > autocorrelation[:-2]) & (inner > autocorrelation[2:])) + 1
    if len(peaks) == 0:
        return FALLBACK_WINDOW
    best = int(peaks[np.argmax(autocorrelation[peaks])])
    return best + 3 if 3 <= best <= 300 else FALLBACK_WINDOW


def _autocorrelation(centred: np.ndarray, max_lag: int) -> np.ndarray:
    """Biased sample autocorrelation of a centred series at lags 0..max_lag (fewer if short)."""
    size = 1 << int(2 * len(centred) - 1).bit_length()
    spectrum = np.fft.rfft(centred, size)
    autocovariance = np.fft.irfft(spectrum * np.conj(spectrum), size)[: min(max_lag + 1, len(centred))]
    return autocovariance / autocovariance[0]


def _checked_inputs(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    labels = as_binary(labels, "labels")
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if len(labels) != len(scores):
        raise ValueError(f"{len(labels)} labels but {len(scores)} scores")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores must be finite")
    if labels.min() == labels.max():
        raise ValueError("VUS needs both normal and anomalous labels")
    return labels, scores


def _cumulative_histogram(bins: np.ndarray, n_bins: int, weights=None) -> np.ndarray:
    """Entry k: how many values (or how much weight) fall in bins 0..k; bins >= n_bins are ignored."""
    return np.cumsum(np.bincount(bins, weights=weights, minlength=n_bins)[:n_bins])


def _margin_points(labels: np.ndarray, starts: np.ndarray, ends: np.ndarray, max_reach: int) -> dict:
    """Normal points within max_reach steps of an anomaly segment, sorted by that distance.

    Each keeps its distance to the nearest and the second-nearest segment edge reaching
    towards it (ends of segments on its left, starts of segments on its right).
    """
    normal = np.flatnonzero(labels == 0)
    unreachable = len(labels) + max_reach + 1
    ends_before = np.searchsorted(ends, normal)
    starts_after = np.searchsorted(starts, normal, side="right")
    distances = np.full((len(normal), 4), unreachable)
    for column, rank in enumerate((1, 2)):
        has_end = ends_before >= rank
        distances[has_end, column] = normal[has_end] - ends[ends_before[has_end] - rank]
        has_start = starts_after + rank - 1 < len(starts)
        distances[has_start, column + 2] = starts[starts_after[has_start] + rank - 1] - normal[has_start]
    distances.sort(axis=1)
    reached = np.flatnonzero(distances[:, 0] <= max_reach)
    order = reached[np.argsort(distances[reached, 0], kind="stable")]
    return {"positions": normal[order], "nearest": distances[order, 0], "second": distances[order, 1]}


def _margin_credit(margin: dict, margin_first_hit: np.ndarray, w: int, n_thresholds: int) -> np.ndarray:
    """Per threshold, the soft label mass of flagged margin points at window w.

    A margin point at distance d from one segment edge weighs sqrt(1 - d/w). Reached by two
    or more edges it weighs 1: each share is at least sqrt(1/2), and the sum is capped at 1.
    """
    reach = w // 2
    if reach == 0:
        return np.zeros(n_thresholds)
    count = np.searchsorted(margin["nearest"], reach, side="right")
    nearest, second = margin["nearest"][:count], margin["second"][:count]
    weights = np.where(second <= reach, 1.0, np.sqrt(1 - nearest / w))
    return _cumulative_histogram(margin_first_hit[:count], n_thresholds, weights)


def _detected_region_share(first_hit: np.ndarray, starts: np.ndarray, ends: np.ndarray, reach: int,
                           n_thresholds: int) -> np.ndarray:
    """Per threshold, the share of widened anomaly regions holding at least one flagged point."""
    region_starts, region_ends = _widened_regions(starts, ends, reach, len(first_hit))
    # The sentinel makes end + 1 == n a valid reduceat bound; gaps between regions are dropped.
    bounds = np.column_stack([region_starts, region_ends + 1]).ravel()
    earliest_hit = np.minimum.reduceat(np.append(first_hit, n_thresholds), bounds)[::2]
    return _cumulative_histogram(earliest_hit, n_thresholds) / len(region_starts)


def _widened_regions(starts: np.ndarray, ends: np.ndarray, reach: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Segments widened by `reach` steps on each side, clipped to the series.

    Neighbours merge only when their widened spans share a step.
    """
    separate = ends[:-1] + reach < starts[1:] - reach
    region_starts = np.concatenate([[max(starts[0] - reach, 0)], starts[1:][separate] - reach])
    region_ends = np.concatenate([ends[:-1][separate] + reach, [min(ends[-1] + reach, n - 1)]])
    return region_starts, region_ends


def _curve_points(counts: dict, margin_credit: np.ndarray, detected_share: np.ndarray):
    """Range-aware TPR, FPR and precision at every threshold for one window."""
    true_positives = counts["flagged_anomalous"] + margin_credit
    # Anomalies count half of the margin mass that the flagged points earned.
    positives = (2 * counts["n_anomalous"] + margin_credit) / 2
    tpr = np.minimum(true_positives / positives, 1) * detected_share
    fpr = (counts["flagged"] - true_positives) / (counts["n"] - positives)
    precision = true_positives / counts["flagged"]
    return tpr, fpr, precision


def _roc_area(tpr: np.ndarray, fpr: np.ndarray) -> float:
    """Trapezoid area of the ROC path from (0, 0) through every threshold to (1, 1)."""
    tpr_path, fpr_path = np.concatenate([[0.0], tpr, [1.0]]), np.concatenate([[0.0], fpr, [1.0]])
    return float(np.sum(np.diff(fpr_path) * (tpr_path[1:] + tpr_path[:-1]) / 2))


def _pr_area(tpr: np.ndarray, precision: np.ndarray) -> float:
    """Average precision: each recall step times the precision where it ends."""
    return float(np.sum(np.diff(np.concatenate([[0.0], tpr])) * precision))
