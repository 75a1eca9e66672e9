"""TSB-AD's metrics and window rule: equal to TSB-AD 1.5's own values (tests/data/tsb_ad_reference.json).

The json is written by scripts/tsb_ad_reference_values.py run with TSB-AD installed; the inputs come from that
script's seeded generators, imported here, so this test needs numpy and tsad only.
"""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import load_script

from tsad.evaluation.tsb_ad_metrics import METRIC_KEYS, sliding_window, tsb_ad_metrics

REPO = Path(__file__).resolve().parents[1]
REFERENCE = json.loads((REPO / "tests" / "data" / "tsb_ad_reference.json").read_text())


GENERATORS = load_script("tsb_ad_reference_values")
METRIC_CASES = {case["name"]: case for case in GENERATORS.METRIC_CASES + GENERATORS.INVALID_METRIC_CASES}
WINDOW_CASES = {case["name"]: case for case in GENERATORS.WINDOW_CASES}


def _metric_inputs(name, expected_fingerprint=None):
    labels, scores = GENERATORS.metric_inputs(METRIC_CASES[name])
    if expected_fingerprint is not None:
        assert GENERATORS.fingerprint(labels, scores) == expected_fingerprint, \
            f"the inputs of {name} are not those TSB-AD saw: numpy's random stream changed; rerun the script"
    return labels, scores


@pytest.mark.parametrize("row", REFERENCE["metrics"], ids=lambda row: f"{row['case']}-w{row['window']}")
def test_every_metric_equals_tsb_ad(row):
    labels, scores = _metric_inputs(row["case"], row["inputs"])
    ours = tsb_ad_metrics(labels, scores, row["window"])
    assert tuple(ours) == METRIC_KEYS
    for key, expected in row["values"].items():
        if expected is None:
            assert math.isnan(ours[key]), key
        else:
            assert ours[key] == pytest.approx(expected, abs=1e-9, rel=0), key


@pytest.mark.parametrize("row", REFERENCE["windows"], ids=lambda row: row["case"])
def test_sliding_window_equals_tsb_ad(row):
    series = GENERATORS.window_inputs(WINDOW_CASES[row["case"]])
    assert GENERATORS.fingerprint(series) == row["inputs"], "numpy's random stream changed; rerun the script"
    assert sliding_window(series) == row["window"]


def test_the_reference_covers_every_metric_and_the_cases_tsb_ad_refuses():
    assert REFERENCE["versions"]["TSB_AD"] == "1.5"
    assert all(tuple(row["values"]) == METRIC_KEYS for row in REFERENCE["metrics"])
    assert {row["case"] for row in REFERENCE["refused"]} == {"no_anomaly", "all_anomalous", "nan_score"}


@pytest.mark.parametrize("case, message", [
    ("no_anomaly", "all 300 labels are normal; TSB-AD's metrics need both classes"),
    ("all_anomalous", "all 300 labels are anomalous; TSB-AD's metrics need both classes"),
    ("nan_score", "1 of 300 scores are NaN or infinite"),
])
def test_inputs_tsb_ad_refuses_raise_a_clear_value_error(case, message):
    labels, scores = _metric_inputs(case)
    with pytest.raises(ValueError, match=message):
        tsb_ad_metrics(labels, scores, 10)


@pytest.mark.parametrize("labels, scores, window, message", [
    ([0, 1, 0], [0.1, 0.2], 1, "3 labels but 2 scores"),
    ([], [], 1, "at least one row"),
    ([0, 2, 0], [0.1, 0.2, 0.3], 1, "labels must contain only 0 and 1"),
    ([0, 1, 0], [0.1, np.inf, 0.3], 1, "NaN or infinite"),
    ([0, 1, 0], [0.1, 0.2, 0.3], -1, "sliding_window must be a non-negative integer"),
    ([0, 1, 0], [0.1, 0.2, 0.3], 2.5, "sliding_window must be a non-negative integer"),
])
def test_bad_metric_inputs_raise_value_error(labels, scores, window, message):
    with pytest.raises(ValueError, match=message):
        tsb_ad_metrics(labels, scores, window)


def test_sliding_window_reads_the_first_channel_only():
    series = GENERATORS.window_inputs(WINDOW_CASES["period_50"])
    noise = np.random.default_rng(0).standard_normal(len(series))
    assert sliding_window(np.column_stack([series, noise])) == sliding_window(series) == 50


@pytest.mark.parametrize("values, message", [
    (np.array([1.0, np.nan, 2.0, 3.0]), "must be finite"),
    (np.zeros((4, 2, 2)), r"must be \(rows,\) or \(rows, channels\)"),
    (np.zeros(0), r"must be \(rows,\) or \(rows, channels\)"),
])
def test_bad_window_series_raise_value_error(values, message):
    with pytest.raises(ValueError, match=message):
        sliding_window(values)
