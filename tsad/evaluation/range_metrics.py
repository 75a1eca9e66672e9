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
    # Runs open and close in turn: the even changes of value are starts, the odd ones ends + 1.
    changes = np.flatnonzero(padded[1:] != padded[:-1])
    return changes[::2], changes[1::2] - 1


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

    Every predicted event is cut at the zone edges into pieces, and each piece contributes
    closed-form integrals; a zone's terms are added in time order (np.bincount adds in input
    order), so the sums are those of a loop over the pieces.
    """
    labels, predictions = _pair(labels, predictions)
    true_starts, true_ends = contiguous_segments(labels)
    if len(true_starts) == 0:
        return 0.0, 0.0
    predicted_starts, predicted_ends = contiguous_segments(predictions)
    if len(predicted_starts) == 0:
        return 0.0, 0.0
    events = _AffiliationZones(true_starts.astype(np.float64), (true_ends + 1).astype(np.float64), len(labels))
    zone, low, high = events.pieces(predicted_starts.astype(np.float64), (predicted_ends + 1).astype(np.float64))
    n_zones = len(true_starts)
    has_prediction = np.bincount(zone, minlength=n_zones) > 0
    overlap = events.overlap(zone, low, high)
    precision_sums = np.bincount(np.repeat(zone, 3), minlength=n_zones, weights=np.column_stack(
        [overlap, *events.precision_outside_event(zone, low, high)]).ravel())
    predicted_lengths = np.bincount(zone, weights=high - low, minlength=n_zones)
    recall_sums = np.bincount(np.concatenate([zone, np.repeat(zone, 2)]), minlength=n_zones, weights=np.concatenate(
        [overlap, np.column_stack(events.recall_outside_predictions(zone, low, high)).ravel()]))
    precisions = precision_sums[has_prediction] / predicted_lengths[has_prediction]
    recalls = np.where(has_prediction, recall_sums / (events.stops - events.starts), 0.0)
    return float(np.mean(precisions)), float(np.mean(recalls))


def affiliation_f1(labels, predictions) -> float:
    return f1_from(*affiliation_precision_recall(labels, predictions))


class _AffiliationZones:
    """True events [starts, stops) and their zones [zone_starts, zone_ends); methods take arrays of pieces."""

    def __init__(self, starts: np.ndarray, stops: np.ndarray, length: int):
        self.starts, self.stops = starts, stops
        edges = np.concatenate([[0.0], (stops[:-1] + starts[1:]) / 2, [float(length)]])
        self.zone_starts, self.zone_ends = edges[:-1], edges[1:]

    def pieces(self, starts: np.ndarray, stops: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(zone, low, high) of the events [starts, stops) cut at the zone edges, sorted by time."""
        first_zone = np.searchsorted(self.zone_ends, starts, side="right")
        last_zone = np.searchsorted(self.zone_starts, stops, side="left") - 1
        counts = last_zone - first_zone + 1
        event = np.repeat(np.arange(len(starts)), counts)
        rank_in_event = np.arange(len(event)) - np.repeat(np.cumsum(counts) - counts, counts)
        zone = first_zone[event] + rank_in_event
        low = np.maximum(starts[event], self.zone_starts[zone])
        high = np.minimum(stops[event], self.zone_ends[zone])
        return zone, low, high

    def overlap(self, zone: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
        return np.maximum(0.0, np.minimum(high, self.stops[zone]) - np.maximum(low, self.starts[zone]))

    def precision_outside_event(self, zone, low, high) -> tuple[np.ndarray, np.ndarray]:
        """Each piece's integrals of a predicted instant's score before and after its zone's event."""
        zone_start, zone_end = self.zone_starts[zone], self.zone_ends[zone]
        event_start, event_end = self.starts[zone], self.stops[zone]
        zone_length = zone_end - zone_start
        room_before, room_after = event_start - zone_start, zone_end - event_end
        # Before the event, at distance d = event_start - x, the share of the zone farther
        # away is max(0, room_before - d) + max(0, room_after - d), i.e. ramps in x.
        before_high = np.minimum(high, event_start)
        before = (_ramp_integral(low, before_high, zone_start)
                  + _ramp_integral(low, before_high, event_start - room_after)) / zone_length
        after_low = np.maximum(low, event_end)
        after = (_falling_ramp_integral(after_low, high, zone_end)
                 + _falling_ramp_integral(after_low, high, event_end + room_before)) / zone_length
        return np.where(low < before_high, before, 0.0), np.where(after_low < high, after, 0.0)

    def recall_outside_predictions(self, zone, low, high) -> tuple[np.ndarray, np.ndarray]:
        """Each piece's integrals of a true instant's score over the gaps just before and just after it.

        `zone` is sorted and holds at least one piece.

        Each instant outside the predictions is judged against its nearest piece, whose near edge (the
        pivot) lies left or right of it: the gap before a piece reaches back to the midpoint with the
        previous piece of its zone (or without end), the gap after it forward to the next midpoint.
        """
        zone_start, zone_end = self.zone_starts[zone], self.zone_ends[zone]
        event_start, event_end = self.starts[zone], self.stops[zone]
        zone_length = zone_end - zone_start
        new_zone = np.concatenate([[True], zone[1:] != zone[:-1], [True]])
        middles = (high[:-1] + low[1:]) / 2
        gap_before_low = np.maximum(np.where(new_zone[:-1], -np.inf, np.concatenate([[-np.inf], middles])),
                                    event_start)
        gap_before_high = np.minimum(low, event_end)
        gap_after_low = np.maximum(high, event_start)
        gap_after_high = np.minimum(np.where(new_zone[1:], np.inf, np.concatenate([middles, [np.inf]])), event_end)
        # With distance d = |y - pivot|, the share of the zone farther than d from y is
        # max(0, y - zone_start - d) + max(0, zone_end - y - d); one term is constant here.
        before = ((zone_end - low) * (gap_before_high - gap_before_low)
                  + 2 * _ramp_integral(gap_before_low, gap_before_high, (zone_start + low) / 2)) / zone_length
        after = ((high - zone_start) * (gap_after_high - gap_after_low)
                 + 2 * _falling_ramp_integral(gap_after_low, gap_after_high, (zone_end + high) / 2)) / zone_length
        return (np.where(gap_before_low < gap_before_high, before, 0.0),
                np.where(gap_after_low < gap_after_high, after, 0.0))


def _ramp_integral(low: np.ndarray, high: np.ndarray, knee: np.ndarray) -> np.ndarray:
    """Integral of max(0, x - knee) for x from low to high."""
    return (np.maximum(high, knee) - knee) ** 2 / 2 - (np.maximum(low, knee) - knee) ** 2 / 2


def _falling_ramp_integral(low: np.ndarray, high: np.ndarray, knee: np.ndarray) -> np.ndarray:
    """Integral of max(0, knee - x) for x from low to high."""
    return _ramp_integral(-high, -low, -knee)


# Input checks ---------------------------------------------------------------------------

def as_binary(values, name: str) -> np.ndarray:
    """`values` as a flat int8 0/1 vector; anything other than 0, 1 or booleans is an error."""
    values = np.asarray(values).ravel()
    if values.dtype != bool and not _all_zero_or_one(values):
        raise ValueError(f"{name} must contain only 0 and 1")
    return values.astype(np.int8)


def _all_zero_or_one(values: np.ndarray) -> bool:
    if values.dtype.kind in "iu":  # a range check: metrics over many thresholds check long vectors often
        return len(values) == 0 or bool(values.min() >= 0 and values.max() <= 1)
    return bool(np.isin(values, (0, 1)).all())


def _pair(labels, predictions) -> tuple[np.ndarray, np.ndarray]:
    labels, predictions = as_binary(labels, "labels"), as_binary(predictions, "predictions")
    if len(labels) != len(predictions):
        raise ValueError(f"{len(labels)} labels but {len(predictions)} predictions")
    return labels, predictions
