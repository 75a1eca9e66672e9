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
