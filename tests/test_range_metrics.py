"""Range-based, event-based, affiliation and point-adjusted metrics on hand-worked examples."""

import numpy as np
import pytest

from tsad.evaluation import range_event_metrics
from tsad.evaluation.range_metrics import (
    affiliation_f1,
    affiliation_precision_recall,
    contiguous_segments,
    event_f1,
    pa_f1,
    range_f1,
    range_precision_recall,
)


def binary(length, *spans):
    """A 0/1 vector with 1s on the half-open spans (start, stop)."""
    vector = np.zeros(length, dtype=int)
    for start, stop in spans:
        vector[start:stop] = 1
    return vector


def test_contiguous_segments_have_inclusive_ends():
    starts, ends = contiguous_segments([1, 1, 0, 0, 1, 0, 1])
    assert starts.tolist() == [0, 4, 6]
    assert ends.tolist() == [1, 4, 6]


def test_range_metrics_of_a_shifted_prediction():
    labels, predictions = binary(10, (1, 5)), binary(10, (3, 6))
    precision, recall = range_precision_recall(labels, predictions)
    assert recall == pytest.approx(0.2 * 1 + 0.8 * 2 / 4)  # existence + half the range covered
    assert precision == pytest.approx(2 / 3)  # two of the three predicted steps are anomalous
    assert range_f1(labels, predictions) == pytest.approx(12 / 19)


def test_range_recall_divides_overlap_by_the_number_of_predicted_ranges():
    labels, predictions = binary(12, (0, 10)), binary(12, (1, 3), (5, 7))
    precision, recall = range_precision_recall(labels, predictions)
    assert recall == pytest.approx(0.2 + 0.8 * (4 / 10) / 2)
    assert precision == pytest.approx(1.0)


def test_range_metrics_average_over_ranges():
    labels, predictions = binary(20, (2, 4), (10, 14)), binary(20, (2, 4), (16, 18))
    precision, recall = range_precision_recall(labels, predictions)
    assert recall == pytest.approx((1.0 + 0.0) / 2)
    assert precision == pytest.approx((1.0 + 0.0) / 2)


def test_event_f1_uses_event_recall_and_point_precision():
    labels, predictions = binary(15, (2, 5), (10, 12)), binary(15, (3, 4), (7, 8))
    assert event_f1(labels, predictions) == pytest.approx(0.5)  # recall 1/2 events, precision 1/2 points


def test_event_at_the_end_of_the_series_counts_when_hit_on_its_last_step():
    labels, predictions = binary(10, (8, 10)), binary(10, (9, 10))
    assert event_f1(labels, predictions) == pytest.approx(1.0)


def test_pa_f1_marks_a_whole_segment_once_any_step_is_hit():
    labels, predictions = binary(15, (2, 6), (10, 12)), binary(15, (3, 4), (7, 8))
    # After adjustment: 4 true positives, 1 false positive, 2 missed steps.
    assert pa_f1(labels, predictions) == pytest.approx(8 / 11)


def test_pa_f1_adjusts_a_segment_starting_at_the_first_step():
    labels, predictions = binary(10, (0, 4)), binary(10, (2, 3))
    assert pa_f1(labels, predictions) == pytest.approx(1.0)


def test_affiliation_of_a_perfect_prediction_is_one():
    labels = binary(30, (4, 6), (15, 22))
    assert affiliation_precision_recall(labels, labels) == pytest.approx((1.0, 1.0))


def test_affiliation_of_a_prediction_just_after_the_event():
    # Event [4, 6) in the zone [0, 10); prediction [7, 8).
    labels, predictions = binary(10, (4, 6)), binary(10, (7, 8))
    precision, recall = affiliation_precision_recall(labels, predictions)
    # At distance d in [1, 2), a share 2 * (4 - d) / 10 of the zone is farther: mean 0.5.
    assert precision == pytest.approx(0.5)
    # A true instant y in [4, 6) is 7 - y from the prediction; the share of the zone farther
    # from y is (2y - 7) + 3, whose mean over [4, 6) divided by 10 is 0.6.
    assert recall == pytest.approx(0.6)
    assert affiliation_f1(labels, predictions) == pytest.approx(2 * 0.5 * 0.6 / 1.1)


def test_affiliation_recall_is_zero_for_an_event_whose_zone_has_no_prediction():
    labels, predictions = binary(40, (5, 8), (30, 33)), binary(40, (5, 8))
    precision, recall = affiliation_precision_recall(labels, predictions)
    assert precision == pytest.approx(1.0)  # only the first zone holds a prediction
    assert recall == pytest.approx(0.5)


def affiliation_on_a_grid(labels, predictions, steps_per_point=40):
    """Affiliation precision and recall by brute force on a fine grid of instants."""
    n = len(labels)
    instants = (np.arange(n * steps_per_point) + 0.5) / steps_per_point
    true, predicted = labels[instants.astype(int)] == 1, predictions[instants.astype(int)] == 1
    starts, ends = contiguous_segments(labels)
    edges = np.concatenate([[0.0], (ends[:-1] + 1 + starts[1:]) / 2, [float(n)]])
    precisions, recalls = [], []
    for start, stop, zone_start, zone_end in zip(starts, ends + 1, edges[:-1], edges[1:]):
        in_zone = (instants >= zone_start) & (instants < zone_end)
        zone = instants[in_zone]
        to_event = np.maximum(0, np.maximum(start - zone, zone - stop))
        predicted_in_zone = predicted & in_zone
        if predicted_in_zone.any():
            x_distance = np.maximum(0, np.maximum(start - instants[predicted_in_zone],
                                                  instants[predicted_in_zone] - stop))
            shares = (to_event[None, :] > x_distance[:, None]).mean(axis=1)
            precisions.append(np.where(x_distance == 0, 1.0, shares).mean())
            y = instants[true & in_zone]
            y_distance = np.abs(y[:, None] - instants[predicted_in_zone][None, :]).min(axis=1)
            y_shares = (np.abs(zone[None, :] - y[:, None]) > y_distance[:, None]).mean(axis=1)
            recalls.append(np.where(predicted[true & in_zone], 1.0, y_shares).mean())
        else:
            recalls.append(0.0)
    return float(np.mean(precisions)) if precisions else 0.0, float(np.mean(recalls))


@pytest.mark.parametrize("seed", range(8))
def test_affiliation_matches_a_brute_force_grid(seed):
    rng = np.random.default_rng(seed)
    labels = np.zeros(30, dtype=int)
    for _ in range(rng.integers(1, 4)):
        start = rng.integers(0, 28)
        labels[start:start + rng.integers(1, 5)] = 1
    predictions = (rng.random(30) < 0.15).astype(int)
    predictions[rng.integers(0, 30)] = 1
    expected = affiliation_on_a_grid(labels, predictions)
    assert affiliation_precision_recall(labels, predictions) == pytest.approx(expected, abs=0.01)


def test_nothing_predicted_scores_zero_everywhere():
    labels = binary(20, (5, 9))
    result = range_event_metrics(labels, np.zeros(20), threshold=0.5)
    assert all(value == 0.0 for value in result.values())


def test_range_event_metrics_flags_scores_above_the_threshold():
    labels = binary(20, (2, 5), (12, 16))
    scores = np.linspace(0, 1, 20)
    result = range_event_metrics(labels, scores, threshold=scores[12])
    predictions = (scores > scores[12]).astype(int)
    assert result["range_f1"] == pytest.approx(range_f1(labels, predictions))
    assert result["event_f1"] == pytest.approx(event_f1(labels, predictions))
    assert result["affiliation_f1"] == pytest.approx(affiliation_f1(labels, predictions))
    assert result["pa_f1"] == pytest.approx(pa_f1(labels, predictions))
    assert set(result) == {"range_precision", "range_recall", "range_f1", "event_f1", "affiliation_precision",
                           "affiliation_recall", "affiliation_f1", "pa_f1"}


def test_pa_f1_of_random_scores_on_long_segments_is_inflated():
    rng = np.random.default_rng(0)
    labels = np.zeros(20_000, dtype=int)
    for start in range(1000, 20_000, 2000):
        labels[start:start + 300] = 1
    scores = rng.random(len(labels))
    threshold = np.quantile(scores, 0.99)
    predictions = (scores > threshold).astype(int)
    hits = int(np.sum(labels & predictions))
    point_f1 = 2 * hits / (labels.sum() + predictions.sum())
    assert point_f1 < 0.05
    assert pa_f1(labels, predictions) > 0.6
    assert range_event_metrics(labels, scores, threshold)["pa_f1"] > 10 * point_f1


@pytest.mark.parametrize("metric", [range_f1, event_f1, pa_f1, affiliation_f1])
def test_inputs_must_be_binary_and_aligned(metric):
    with pytest.raises(ValueError, match="only 0 and 1"):
        metric([0, 1, 2], [0, 1, 0])
    with pytest.raises(ValueError, match="3 labels but 2 predictions"):
        metric([0, 1, 0], [0, 1])


# The affiliation metric as first written, one zone and one piece at a time: the oracle for the
# vectorised version (scripts/bench_affiliation.py imports it to time both).

def slow_affiliation_precision_recall(labels, predictions) -> tuple[float, float]:
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    true_starts, true_ends = contiguous_segments(labels)
    if len(true_starts) == 0:
        return 0.0, 0.0
    true_events = np.stack([true_starts, true_ends + 1], axis=1).astype(np.float64)
    predicted_starts, predicted_ends = contiguous_segments(predictions)
    predicted_events = np.stack([predicted_starts, predicted_ends + 1], axis=1).astype(np.float64)
    precisions, recalls = [], []
    for event, zone in zip(true_events, _slow_affiliation_zones(true_events, len(labels))):
        pieces = _slow_clip_to_zone(predicted_events, zone)
        if len(pieces):
            precisions.append(_slow_zone_precision(pieces, event, zone))
        recalls.append(_slow_zone_recall(pieces, event, zone))
    precision = float(np.mean(precisions)) if precisions else 0.0
    return precision, float(np.mean(recalls))


def _slow_affiliation_zones(events, length):
    midpoints = (events[:-1, 1] + events[1:, 0]) / 2
    edges = np.concatenate([[0.0], midpoints, [float(length)]])
    return np.stack([edges[:-1], edges[1:]], axis=1)


def _slow_clip_to_zone(intervals, zone):
    clipped = np.stack([np.maximum(intervals[:, 0], zone[0]), np.minimum(intervals[:, 1], zone[1])], axis=1)
    return clipped[clipped[:, 0] < clipped[:, 1]]


def _slow_ramp_integral(low, high, knee):
    return (max(high, knee) - knee) ** 2 / 2 - (max(low, knee) - knee) ** 2 / 2


def _slow_falling_ramp_integral(low, high, knee):
    return _slow_ramp_integral(-high, -low, -knee)


def _slow_zone_precision(pieces, event, zone):
    (zone_start, zone_end), (event_start, event_end) = zone, event
    zone_length = zone_end - zone_start
    room_before, room_after = event_start - zone_start, zone_end - event_end
    total = 0.0
    for low, high in pieces:
        total += max(0.0, min(high, event_end) - max(low, event_start))
        before_high = min(high, event_start)
        if low < before_high:
            total += (_slow_ramp_integral(low, before_high, zone_start)
                      + _slow_ramp_integral(low, before_high, event_start - room_after)) / zone_length
        after_low = max(low, event_end)
        if after_low < high:
            total += (_slow_falling_ramp_integral(after_low, high, zone_end)
                      + _slow_falling_ramp_integral(after_low, high, event_end + room_before)) / zone_length
    return total / float(np.sum(pieces[:, 1] - pieces[:, 0]))


def _slow_zone_recall(pieces, event, zone):
    if len(pieces) == 0:
        return 0.0
    (zone_start, zone_end), (event_start, event_end) = zone, event
    zone_length = zone_end - zone_start
    total = 0.0
    for low, high in pieces:
        total += max(0.0, min(high, event_end) - max(low, event_start))
    for low, high, pivot, pivot_is_left in _slow_gaps_with_nearest_edge(pieces):
        low, high = max(low, event_start), min(high, event_end)
        if low >= high:
            continue
        if pivot_is_left:
            total += ((pivot - zone_start) * (high - low)
                      + 2 * _slow_falling_ramp_integral(low, high, (zone_end + pivot) / 2)) / zone_length
        else:
            total += ((zone_end - pivot) * (high - low)
                      + 2 * _slow_ramp_integral(low, high, (zone_start + pivot) / 2)) / zone_length
    return total / (event_end - event_start)


def _slow_gaps_with_nearest_edge(pieces):
    yield -np.inf, pieces[0, 0], pieces[0, 0], False
    for (_, left_end), (right_start, _) in zip(pieces[:-1], pieces[1:]):
        middle = (left_end + right_start) / 2
        yield left_end, middle, left_end, True
        yield middle, right_start, right_start, False
    yield pieces[-1, 1], np.inf, pieces[-1, 1], True


def random_events(rng, length, n_events, longest):
    """A 0/1 vector of `n_events` runs at random places, lengths 1..longest (overlapping runs merge)."""
    vector = np.zeros(length, dtype=np.int8)
    for _ in range(n_events):
        start = rng.integers(0, length)
        vector[start:start + rng.integers(1, longest + 1)] = 1
    return vector


def random_affiliation_case(rng):
    """Labels and predictions of a random layout: sparse or dense events, noise or runs, edges forced at times."""
    length = int(rng.integers(1, 2001))
    labels = random_events(rng, length, int(rng.integers(0, 30)), int(rng.choice([1, 5, 50, 400])))
    if rng.random() < 0.2:
        labels[0] = 1
    if rng.random() < 0.2:
        labels[-1] = 1
    kind = rng.choice(["noise", "runs", "labels_shifted", "none", "all"])
    if kind == "noise":
        predictions = (rng.random(length) < rng.choice([0.001, 0.01, 0.1, 0.5, 0.9])).astype(np.int8)
    elif kind == "runs":
        predictions = random_events(rng, length, int(rng.integers(1, 40)), int(rng.choice([1, 10, 200])))
    elif kind == "labels_shifted":
        predictions = np.roll(labels, int(rng.integers(-20, 21)))
    else:
        predictions = np.full(length, int(kind == "all"), dtype=np.int8)
    return labels, predictions


def test_affiliation_equals_the_slow_transcription_on_random_layouts():
    rng = np.random.default_rng(20220814)
    for case in range(400):
        labels, predictions = random_affiliation_case(rng)
        expected = slow_affiliation_precision_recall(labels, predictions)
        ours = affiliation_precision_recall(labels, predictions)
        assert ours == pytest.approx(expected, rel=1e-12, abs=0), f"random case {case}"


@pytest.mark.parametrize("labels, predictions", [
    (binary(10, (0, 10)), binary(10, (0, 10))),        # one event filling the series
    (binary(10, (0, 1), (9, 10)), binary(10, (4, 6))),  # events at both edges, prediction between them
    (binary(10, (3, 4)), binary(10, (0, 1), (9, 10))),  # predictions at both edges, far from the event
    (binary(1, (0, 1)), binary(1)),                     # one row, nothing predicted
    (binary(8), binary(8, (2, 5))),                     # no true event
])
def test_affiliation_equals_the_slow_transcription_on_edge_cases(labels, predictions):
    assert affiliation_precision_recall(labels, predictions) == slow_affiliation_precision_recall(labels, predictions)
