"""VUS-PR / VUS-ROC: golden values from TSB-AD 1.5 and a slow transcription of its algorithm."""

import tracemalloc

import numpy as np
import pytest

from tsad.evaluation import vus_metrics
from tsad.evaluation.vus import default_window


def slow_vus(labels, scores, window, n_thresholds=250):
    """The algorithm written out step by step: every window, every threshold, every point."""
    labels = np.asarray(labels, dtype=int)
    n = len(labels)
    events = []
    for i in range(n):
        if labels[i] == 1 and (i == 0 or labels[i - 1] == 0):
            events.append([i, i])
        if labels[i] == 1:
            events[-1][1] = i
    ranks = np.linspace(0, n - 1, n_thresholds).astype(int)
    thresholds = np.sort(scores)[::-1][ranks]
    roc_areas, pr_areas = [], []
    for w in range(window + 1):
        reach = w // 2
        soft = labels.astype(float)
        for start, end in events:
            for x in range(end + 1, min(end + reach, n - 1) + 1):
                soft[x] += np.sqrt(1 - (x - end) / w)
            for x in range(max(start - reach, 0), start):
                soft[x] += np.sqrt(1 - (start - x) / w)
        soft = np.minimum(soft, 1.0)
        regions = [[max(events[0][0] - reach, 0), events[0][1] + reach]]
        for (_, previous_end), (start, end) in zip(events[:-1], events[1:]):
            if previous_end + reach >= start - reach:
                regions[-1][1] = end + reach
            else:
                regions.append([start - reach, end + reach])
        regions[-1][1] = min(regions[-1][1], n - 1)
        tprs, fprs, precisions = [], [], []
        for threshold in thresholds:
            flagged = (scores >= threshold).astype(float)
            credited = soft * flagged
            for start, end in events:
                credited[start:end + 1] = 1.0
            true_positive = float(np.sum(credited * flagged))
            positives = (labels.sum() + credited.sum()) / 2
            detected = sum(flagged[start:end + 1].any() for start, end in regions)
            tprs.append(min(true_positive / positives, 1) * detected / len(regions))
            fprs.append((flagged.sum() - true_positive) / (n - positives))
            precisions.append(true_positive / flagged.sum())
        tpr_path, fpr_path = [0.0] + tprs + [1.0], [0.0] + fprs + [1.0]
        roc_areas.append(sum((fpr_path[k + 1] - fpr_path[k]) * (tpr_path[k + 1] + tpr_path[k]) / 2
                             for k in range(len(fpr_path) - 1)))
        pr_areas.append(sum((tpr_path[k + 1] - tpr_path[k]) * precisions[k] for k in range(len(precisions))))
    return {"vus_pr": float(np.mean(pr_areas)), "vus_roc": float(np.mean(roc_areas))}


def golden_inputs(case):
    if case in "ABCD":
        labels = np.zeros(100, dtype=int)
        labels[40:50] = 1
        scores = {"A": labels.astype(float), "B": np.roll(labels, 5).astype(float),
                  "C": np.arange(100) / 100, "D": np.ones(100)}[case]
        return labels, scores
    steps = np.arange(1000)
    labels = np.zeros(1000, dtype=int)
    labels[200:230] = labels[700:705] = labels[995:] = 1
    scores = (steps % 37) / 37 + 0.8 * np.roll(labels, 3) + 0.3 * ((steps % 11) == 0)
    if case == "F":
        labels[:4] = 1
    return labels, scores


@pytest.mark.parametrize("case, window, vus_pr, vus_roc", [
    ("A", 0, 1.0, 1.0),
    ("A", 10, 1.0, 1.0),
    ("B", 0, 0.3000000000, 0.7222222222),
    ("B", 5, 0.3759779977, 0.7562764967),
    ("B", 10, 0.4889844011, 0.7974230816),
    ("C", 0, 0.0966746269, 0.4444444444),
    ("C", 10, 0.1070335812, 0.4607959084),
    ("D", 10, 0.1374114648, 0.5107320184),
    ("E", 0, 0.5303206998, 0.9050130208),
    ("E", 25, 0.5823083498, 0.9468998540),
    ("E", 100, 0.6389394379, 0.9637878465),
    ("F", 25, 0.5238100525, 0.9361360540),
])
def test_golden_values_of_tsb_ad(case, window, vus_pr, vus_roc):
    labels, scores = golden_inputs(case)
    result = vus_metrics(labels, scores, window)
    assert result["vus_pr"] == pytest.approx(vus_pr, abs=1e-9)
    assert result["vus_roc"] == pytest.approx(vus_roc, abs=1e-9)


def random_case(rng):
    n = int(rng.choice([7, 40, 120, 300]))
    if rng.random() < 0.4:
        labels = (rng.random(n) < rng.choice([0.05, 0.3])).astype(int)
    else:
        labels = np.zeros(n, dtype=int)
        for _ in range(rng.integers(1, 5)):
            start = rng.integers(0, n)
            labels[start:start + rng.integers(1, max(2, n // 8))] = 1
    anomalous, normal = rng.choice(n, size=2, replace=False)
    labels[anomalous], labels[normal] = 1, 0
    kind = rng.integers(3)
    if kind == 0:
        scores = rng.random(n)
    elif kind == 1:
        scores = rng.integers(0, 4, n).astype(float)  # many ties
    else:
        scores = np.roll(labels, rng.integers(-4, 5)) + 0.7 * rng.random(n)
    return labels, scores, int(rng.choice([0, 1, 2, 3, 8, 21])), int(rng.choice([250, 30, 2, 1]))


@pytest.mark.parametrize("seed", range(40))
def test_matches_slow_transcription_on_random_inputs(seed):
    labels, scores, window, n_thresholds = random_case(np.random.default_rng(seed))
    expected = slow_vus(labels, scores, window, n_thresholds)
    result = vus_metrics(labels, scores, window, n_thresholds)
    assert result["vus_pr"] == pytest.approx(expected["vus_pr"], abs=1e-12)
    assert result["vus_roc"] == pytest.approx(expected["vus_roc"], abs=1e-12)


def test_boolean_and_float_labels_give_the_same_result_as_integers():
    labels, scores = golden_inputs("E")
    expected = vus_metrics(labels, scores, 25)
    assert vus_metrics(labels.astype(bool), scores, 25) == expected
    assert vus_metrics(labels.astype(float), scores, 25) == expected


def test_only_the_order_of_scores_matters():
    labels, scores = golden_inputs("E")
    assert vus_metrics(labels, scores * 1000 + 7, 25) == pytest.approx(vus_metrics(labels, scores, 25), abs=1e-12)


@pytest.mark.parametrize("labels, scores, window, message", [
    ([0, 0, 0], [0.1, 0.2, 0.3], 2, "both normal and anomalous"),
    ([1, 1, 1], [0.1, 0.2, 0.3], 2, "both normal and anomalous"),
    ([0, 1], [0.1, 0.2, 0.3], 2, "2 labels but 3 scores"),
    ([0, 1, 2], [0.1, 0.2, 0.3], 2, "only 0 and 1"),
    ([0, 1, 0], [0.1, np.nan, 0.3], 2, "finite"),
    ([0, 1, 0], [0.1, 0.2, 0.3], -1, "non-negative integer"),
])
def test_bad_inputs_are_refused_with_a_reason(labels, scores, window, message):
    with pytest.raises(ValueError, match=message):
        vus_metrics(labels, scores, window)


def long_case(n=100_000, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.zeros(n, dtype=int)
    for start in rng.choice(n - 200, size=40, replace=False):
        labels[start:start + rng.integers(20, 150)] = 1
    return labels, np.roll(labels, 5) + rng.random(n)


def test_long_series_needs_no_memory_of_size_n_times_window():
    """Speed is measured by scripts/bench_vus.py; a timed assertion would pass or fail with the machine."""
    labels, scores = long_case()
    tracemalloc.start()
    vus_metrics(labels, scores, 100)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 40e6  # bytes: a handful of length-n arrays, nothing of size n x window


def test_default_window_is_the_dominant_period():
    rng = np.random.default_rng(0)
    steps = np.arange(5000)
    series = np.sin(2 * np.pi * steps / 50) + 0.3 * rng.standard_normal(5000)
    assert default_window(series) == 50
    assert default_window(np.stack([series, rng.standard_normal(5000)], axis=1)) == 50


@pytest.mark.parametrize("series", [
    np.ones(1000),  # constant
    np.sin(2 * np.pi * np.arange(5000) / 500),  # period beyond the searched lags
    np.arange(10.0),  # too short to have a local maximum
])
def test_default_window_falls_back_to_125(series):
    assert default_window(series) == 125
