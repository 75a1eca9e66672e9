"""Causal score post-processing: anomaly likelihood, spatial override, alarm rest."""

import numpy as np
import pandas as pd
import pytest

from tsad.errors import UserError
from tsad.postprocess import LOG_FLOOR, RED_ZONE, PostProcess, anomaly_likelihood, outside_seen_range, rest_after_alarms
from tsad.protocols.nab import check_threshold_for

EVERYTHING = PostProcess(name="all", likelihood=True, spatial=True, rest=True, refit_every=7)
LEARNING_SCORE = np.log(0.5 + LOG_FLOOR) / np.log(LOG_FLOOR)


def noisy(n=400, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=n), rng.uniform(size=n)


@pytest.mark.parametrize("row", [60, 151, 299, 399])
def test_a_score_never_changes_when_later_rows_change(row):
    values, scores = noisy()
    raw = scores * 7.0
    before = EVERYTHING.apply(values, raw, scores, probation=60)
    values[row:] += 50.0
    scores[row:] = 1.0
    raw[row:] = 100.0
    after = EVERYTHING.apply(values, raw, scores, probation=60)
    np.testing.assert_array_equal(after[:row], before[:row])
    assert not np.array_equal(after, before)


def test_the_learning_phase_scores_one_half_and_a_burst_after_it_raises_one_alarm():
    values, scores = noisy()
    scores[300:320] = 1.0                               # an event: the detector's highest scores for 20 rows
    out = anomaly_likelihood(values, scores, probation=100)
    np.testing.assert_allclose(out[:100], LEARNING_SCORE)
    assert out[:300].max() < 0.5 <= out[300:320].max()
    extreme = np.flatnonzero(out >= np.log(RED_ZONE + LOG_FLOOR) / np.log(LOG_FLOOR))
    assert len(extreme) == 1, "only the first row of a run of extreme rows keeps its extreme likelihood"


def test_constant_inputs_get_a_flat_distribution_and_no_alarm():
    values = np.full(300, 3.0)
    scores = np.random.default_rng(1).uniform(size=300)
    np.testing.assert_allclose(anomaly_likelihood(values, scores, probation=50), LEARNING_SCORE, atol=1e-5)


def test_the_spatial_override_fires_outside_the_range_seen_before():
    values = np.array([0.0, 1.0, 0.5, 1.04, 1.2, -0.3, 0.0])
    np.testing.assert_array_equal(outside_seen_range(values, 0.05), [False, False, False, False, True, True, False])
    assert not outside_seen_range(np.array([2.0, 2.0, 9.0]), 0.05)[2], "a constant history has no range to leave"
    two_channels = np.array([[0.0, 0.0], [1.0, 1.0], [0.5, 3.0]])
    assert outside_seen_range(two_channels, 0.05).tolist() == [False, False, True]


def test_a_rest_period_keeps_only_the_first_alarm_of_an_event():
    scores = np.array([0.1, 0.9, 0.8, 0.95, 0.2, 0.1, 0.7, 0.1])
    np.testing.assert_array_equal(rest_after_alarms(scores, 0.75, rest=3), [0.1, 0.9, 0, 0, 0, 0.1, 0.7, 0.1])


def test_settings_are_checked_in_one_line():
    with pytest.raises(UserError, match="postprocess.windw is not a postprocess setting"):
        PostProcess.from_config({"windw": 3})
    with pytest.raises(UserError, match="postprocess.refit_every must be a positive whole number"):
        PostProcess.from_config({"refit_every": 0})
    assert not PostProcess.from_config(None).active


def test_the_likelihood_needs_a_fixed_threshold_under_nab():
    with pytest.raises(UserError, match="threshold=fixed threshold.value=0.5"):
        check_threshold_for(PostProcess(name="likelihood", likelihood=True), {"policy": "val_percentile"})
    check_threshold_for(PostProcess(name="likelihood", likelihood=True), {"policy": "fixed", "value": 0.5})


def test_series_level_runs_refuse_post_processing_instead_of_ignoring_it(tmp_path):
    from tsad.config import compose
    from tsad.protocols.offline import run_offline

    with pytest.raises(UserError, match="postprocess=likelihood transforms step scores in time order"):
        run_offline(compose(["model=zscore", "postprocess=likelihood"]), tmp_path)


@pytest.mark.parametrize("row", [30, 200, 399])
def test_an_offline_series_score_never_changes_when_later_rows_change(row):
    values, scores = noisy()
    before = EVERYTHING.score_series(values, scores)
    values[row:] += 50.0
    scores[row:] = 9.0
    after = EVERYTHING.score_series(values, scores)
    np.testing.assert_array_equal(after[:row], before[:row])


def test_offline_point_runs_post_process_every_split_and_save_it_for_prediction(tmp_path):
    from tsad.config import compose
    from tsad.data.registry import build_dataset
    from tsad.model_inputs import ModelInputs
    from tsad.models.base import Detector
    from tsad.postprocess import post_processed
    from tsad.protocols.offline import run_offline

    overrides = ["model=zscore", "dataset=synthetic_points", "dataset.n_test=3", "postprocess=likelihood_spatial",
                 "threshold=fixed", "threshold.value=0.5", "plots=false"]
    result = run_offline(compose(overrides), tmp_path)

    data = build_dataset(compose(overrides)["dataset"])
    raw = Detector.load(tmp_path / "model").score(data.test)
    expected = post_processed(PostProcess.from_config(compose(overrides)["postprocess"]), data.test, raw)
    written = pd.read_csv(tmp_path / "scores" / "test_steps.csv.gz")
    np.testing.assert_allclose(written["score"], np.concatenate(expected.steps))
    assert not np.allclose(np.concatenate(expected.steps), np.concatenate(raw.steps))
    assert 0 <= written["score"].min() and written["score"].max() <= 1
    assert result["threshold"]["values"]["point"] == 0.5
    assert ModelInputs.load(tmp_path / "model").postprocess["name"] == "likelihood_spatial"
