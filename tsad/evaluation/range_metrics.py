"""Range-aware metrics for binary predictions against binary labels.

A segment (or event, or range) is a maximal run of consecutive 1s. Every function takes
`labels` and `predictions` of the same length, each made of 0s and 1s (or booleans).

- Range-based precision / recall (Tatbul et al., NeurIPS 2018) with the settings the
  TSB-AD benchmark uses: flat positional bias, reciprocal cardinality (an overlap counts
  1/k when k ranges of the other side touch the range), and existence weight alpha=0.2
  for recall, alpha=0 for precision.
- Event-based F1: recall over true events (one detected step detects the event),
  precision over points (Garg et al. 2021's composite F-score; TSB-AD's "Event-based-F1").
- Affiliation precision / recall (Huet et al., KDD 2022): step i is the time interval
  [i, i+1) and the series is [0, n).
- Point-adjusted F1: every step of a true segment counts as detected once any step in it
  is predicted. It inflates scores, so report it only next to the metrics above.

Precision is 0 when nothing is predicted, and an F1 is 0 when precision + recall is 0.
"""

from __future__ import annotations

import numpy as np

from tsad.evaluation.alarms import alarms

RECALL_EXISTENCE_WEIGHT = 0.2
PRECISION_EXISTENCE_WEIGHT = 0.0


def contiguous_segments(binary: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and inclusive ends of the runs of 1s in a 0/1 vector."""
    padded = np.concatenate([[0], np.asarray(binary, dtype=np.int8), [0]])
    steps = np.diff(padded)
    return np.flatnonzero(steps == 1), np.flatnonzero(steps == -1) - 1


def range_event_metrics(labels, scores, threshold: float) -> dict:
    """All metrics of this module for the predictions `scores > threshold`."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = as_binary(labels, "labels")
    if len(labels) != len(scores):
        raise ValueError(f"{len(labels)} labels but {len(scores)} scores")
    predictions = alarms(scores, threshold).astype(np.int8)
    range_precision, range_recall = range_precision_recall(labels, predictions)
    affiliation_precision, affiliation_recall = affiliation_precision_recall(labels, predictions)
    return {
        "range_precision": range_precision,
        "range_recall": range_recall,
        "range_f1": f1_from(range_precision, range_recall),
        "event_f1": event_f1(labels, predictions),
        "affiliation_precision": affiliation_precision,
        "affiliation_recall": affiliation_recall,
        "affiliation_f1": f1_from(affiliation_precision, affiliation_recall),
        "pa_f1": pa_f1(labels, predictions),
    }


def f1_from(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


# Range-based precision and recall -------------------------------------------------------

def range_precision_recall(labels, predictions) -> tuple[float, float]:
    labels, predictions = _pair(labels, predictions)
    recall = _range_score(labels, predictions, RECALL_EXISTENCE_WEIGHT)
    precision = _range_score(predictions, labels, PRECISION_EXISTENCE_WEIGHT)
    return precision, recall


def range_f1(labels, predictions) -> float:
    return f1_from(*range_precision_recall(labels, predictions))


def _range_score(reference: np.ndarray, other: np.ndarray, existence_weight: float) -> float:
    """Mean over the ranges of `reference` of how well `other` covers each of them.

    Recall is this with reference=labels; precision swaps the roles.
    """
    starts, ends = contiguous_segments(reference)
    if len(starts) == 0:
        return 0.0
    other_starts, other_ends = contiguous_segments(other)
    covered_before = np.concatenate([[0], np.cumsum(other)])
    covered = covered_before[ends + 1] - covered_before[starts]
    # Ranges of `other` overlapping [s, e]: those starting at or before e minus those ending before s.
    touching = np.searchsorted(other_starts, ends, side="right") - np.searchsorted(other_ends, starts, side="left")
    existence = (covered > 0).astype(np.float64)
    overlap = covered / (ends - starts + 1) / np.maximum(touching, 1)
    return float(np.mean(existence_weight * existence + (1 - existence_weight) * overlap))


# Event-based F1 and point-adjusted F1 ---------------------------------------------------

def event_f1(labels, predictions) -> float:
    """F1 of event recall (share of true segments hit at least once) and point precision."""
    labels, predictions = _pair(labels, predictions)
    starts, ends = contiguous_segments(labels)
    hits_before = np.concatenate([[0], np.cumsum(predictions)])
    detected = hits_before[ends + 1] - hits_before[starts] > 0
    event_recall = float(detected.mean()) if len(starts) else 0.0
    return f1_from(_point_precision(labels, predictions), event_recall)


def pa_f1(labels, predictions) -> float:
    """Point F1 after point adjustment: a hit anywhere in a true segment marks all of it detected."""
    labels, predictions = _pair(labels, predictions)
    adjusted = predictions.copy()
    starts, ends = contiguous_segments(labels)
    hits_before = np.concatenate([[0], np.cumsum(predictions)])
    for start, end in zip(starts, ends):
        if hits_before[end + 1] > hits_before[start]:
            adjusted[start:end + 1] = 1
    return _point_f1(labels, adjusted)


def _point_precision(labels: np.ndarray, predictions: np.ndarray) -> float:
    n_predicted = int(predictions.sum())
    return int(np.sum(labels & predictions)) / n_predicted if n_predicted else 0.0


def _point_f1(labels: np.ndarray, predictions: np.ndarray) -> float:
    n_true = int(labels.sum())
    recall = int(np.sum(labels & predictions)) / n_true if n_true else 0.0
    return f1_from(_point_precision(labels, predictions), recall)


# Affiliation precision and recall -------------------------------------------------------

def affiliation_precision_recall(labels, predictions) -> tuple[float, float]:
    """Affiliation precision and recall, each averaged over the true events.

    The series is split into one zone per true event (boundaries halfway between
    neighbouring events). In a zone E around event J:
    - a predicted instant x scores P(dist(Y, J) > dist(x, J)) for Y uniform on E, or 1 inside J;
    - a true instant y scores P(|Y - y| > dist(y, predictions in E)), or 1 if predicted.
    Precision averages over zones holding a prediction; a zone without one scores 0 recall.
    """
    labels, predictions = _pair(labels, predictions)
    true_starts, true_ends = contiguous_segments(labels)
    if len(true_starts) == 0:
        return 0.0, 0.0
    true_events = np.stack([true_starts, true_ends + 1], axis=1).astype(np.float64)
    predicted_starts, predicted_ends = contiguous_segments(predictions)
    predicted_events = np.stack([predicted_starts, predicted_ends + 1], axis=1).astype(np.float64)
    precisions, recalls = [], []
    for event, zone in zip(true_events, _affiliation_zones(true_events, len(labels))):
        pieces = _clip_to_zone(predicted_events, zone)
        if len(pieces):
            precisions.append(_zone_precision(pieces, event, zone))
        recalls.append(_zone_recall(pieces, event, zone))
    precision = float(np.mean(precisions)) if precisions else 0.0
    return precision, float(np.mean(recalls))


def affiliation_f1(labels, predictions) -> float:
    return f1_from(*affiliation_precision_recall(labels, predictions))


def _affiliation_zones(events: np.ndarray, length: int) -> np.ndarray:
    midpoints = (events[:-1, 1] + events[1:, 0]) / 2
    edges = np.concatenate([[0.0], midpoints, [float(length)]])
    return np.stack([edges[:-1], edges[1:]], axis=1)


def _clip_to_zone(intervals: np.ndarray, zone: np.ndarray) -> np.ndarray:
    clipped = np.stack([np.maximum(intervals[:, 0], zone[0]), np.minimum(intervals[:, 1], zone[1])], axis=1)
    return clipped[clipped[:, 0] < clipped[:, 1]]


def _ramp_integral(low: float, high: float, knee: float) -> float:
    """Integral of max(0, x - knee) for x from low to high."""
    return (max(high, knee) - knee) ** 2 / 2 - (max(low, knee) - knee) ** 2 / 2


def _falling_ramp_integral(low: float, high: float, knee: float) -> float:
    """Integral of max(0, knee - x) for x from low to high."""
    return _ramp_integral(-high, -low, -knee)


def _zone_precision(pieces: np.ndarray, event: np.ndarray, zone: np.ndarray) -> float:
    (zone_start, zone_end), (event_start, event_end) = zone, event
    zone_length = zone_end - zone_start
    room_before, room_after = event_start - zone_start, zone_end - event_end
    total = 0.0
    for low, high in pieces:
        total += max(0.0, min(high, event_end) - max(low, event_start))
        # Before the event, at distance d = event_start - x, the share of the zone farther
        # away is max(0, room_before - d) + max(0, room_after - d), i.e. ramps in x.
        before_high = min(high, event_start)
        if low < before_high:
            total += (_ramp_integral(low, before_high, zone_start)
                      + _ramp_integral(low, before_high, event_start - room_after)) / zone_length
        after_low = max(low, event_end)
        if after_low < high:
            total += (_falling_ramp_integral(after_low, high, zone_end)
                      + _falling_ramp_integral(after_low, high, event_end + room_before)) / zone_length
    return total / float(np.sum(pieces[:, 1] - pieces[:, 0]))


def _zone_recall(pieces: np.ndarray, event: np.ndarray, zone: np.ndarray) -> float:
    if len(pieces) == 0:
        return 0.0
    (zone_start, zone_end), (event_start, event_end) = zone, event
    zone_length = zone_end - zone_start
    total = 0.0
    for low, high in pieces:
        total += max(0.0, min(high, event_end) - max(low, event_start))
    # Each instant outside the predictions is judged against its nearest predicted piece,
    # whose near edge (the pivot) lies left or right of it.
    for low, high, pivot, pivot_is_left in _gaps_with_nearest_edge(pieces):
        low, high = max(low, event_start), min(high, event_end)
        if low >= high:
            continue
        # With distance d = |y - pivot|, the share of the zone farther than d from y is
        # max(0, y - zone_start - d) + max(0, zone_end - y - d); one term is constant here.
        if pivot_is_left:
            total += ((pivot - zone_start) * (high - low)
                      + 2 * _falling_ramp_integral(low, high, (zone_end + pivot) / 2)) / zone_length
        else:
            total += ((zone_end - pivot) * (high - low)
                      + 2 * _ramp_integral(low, high, (zone_start + pivot) / 2)) / zone_length
    return total / (event_end - event_start)


def _gaps_with_nearest_edge(pieces: np.ndarray):
    """(low, high, pivot, pivot_is_left) for the stretches of the line outside sorted `pieces`."""
    yield -np.inf, pieces[0, 0], pieces[0, 0], False
    for (_, left_end), (right_start, _) in zip(pieces[:-1], pieces[1:]):
        middle = (left_end + right_start) / 2
        yield left_end, middle, left_end, True
        yield middle, right_start, right_start, False
    yield pieces[-1, 1], np.inf, pieces[-1, 1], True


# Input checks ---------------------------------------------------------------------------

def as_binary(values, name: str) -> np.ndarray:
    """`values` as a flat int8 0/1 vector; anything other than 0, 1 or booleans is an error."""
    values = np.asarray(values).ravel()
    if values.dtype != bool and not np.isin(values, (0, 1)).all():
        raise ValueError(f"{name} must contain only 0 and 1")
    return values.astype(np.int8)


def _pair(labels, predictions) -> tuple[np.ndarray, np.ndarray]:
    labels, predictions = as_binary(labels, "labels"), as_binary(predictions, "predictions")
    if len(labels) != len(predictions):
        raise ValueError(f"{len(labels)} labels but {len(predictions)} predictions")
    return labels, predictions
