"""Causal score post-processing: anomaly likelihood, spatial override, alarm rest."""

import numpy as np
import pandas as pd
import pytest

from tsad.data.nab_format import probationary_length
from tsad.errors import UserError
from tsad.evaluation.thresholds import threshold_policy
from tsad.pipeline import Pipeline
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
    with pytest.raises(UserError, match=r"unknown key 'postprocess.windw'"):
        PostProcess.parse({"windw": 3}, "postprocess")
    with pytest.raises(UserError, match="postprocess.refit_every=0 is out of range: allowed an integer >= 1"):
        PostProcess.parse({"refit_every": 0}, "postprocess")
    assert not PostProcess.parse(None, "postprocess").active


def test_the_likelihood_needs_a_fixed_threshold_under_nab():
    with pytest.raises(UserError, match="threshold=fixed threshold.value=0.5"):
        check_threshold_for(PostProcess(name="likelihood", likelihood=True), threshold_policy({"policy": "sigma"}))
    check_threshold_for(PostProcess(name="likelihood", likelihood=True),
                        threshold_policy({"policy": "fixed", "value": 0.5}))


def test_series_level_runs_refuse_post_processing_instead_of_ignoring_it(tmp_path):
    from tsad.config import compose
    from tsad.protocols.offline import Offline
    from tsad.settings.run import RunConfig

    with pytest.raises(UserError, match="postprocess=likelihood transforms step scores in time order"):
        Offline().check(RunConfig.parse(compose(["model=zscore", "postprocess=likelihood"])))


@pytest.mark.parametrize("row", [30, 200, 399])
def test_an_offline_series_score_never_changes_when_later_rows_change(row):
    values, scores = noisy()
    pipeline = Pipeline(None, EVERYTHING)
    before = pipeline.step_scores(values, scores)
    values[row:] += 50.0
    scores[row:] = 9.0
    after = pipeline.step_scores(values, scores)
    np.testing.assert_array_equal(after[:row], before[:row])


@pytest.mark.parametrize("length", [120, 400, 2000, 6000])
def test_an_offline_series_learns_on_its_own_probationary_share(length):
    """The likelihood's learning phase is NAB's probationary period of each series: 15 % of its rows, at most 750."""
    values, scores = noisy(length, seed=length)
    scores[-10:] = 1.0
    out = Pipeline(None, PostProcess(name="likelihood", likelihood=True)).step_scores(values, scores)
    probation = probationary_length(length)
    assert probation == min(int(0.15 * length), 750)
    np.testing.assert_allclose(out[:probation], LEARNING_SCORE)
    assert not np.allclose(out[probation:], LEARNING_SCORE), "rows after the learning phase are scored"


def test_offline_point_runs_post_process_every_split_and_save_it_for_prediction(tmp_path):
    from tsad.config import compose
    from tsad.models.base import Detector
    from tsad.protocols.offline import Offline
    from tsad.run_folder import RunFolder
    from tsad.settings.run import RunConfig

    overrides = ["model=zscore", "dataset=synthetic_points", "dataset.n_test=3", "postprocess=likelihood_spatial",
                 "threshold=fixed", "threshold.value=0.5", "plots=false"]
    settings = RunConfig.parse(compose(overrides))
    result = Offline().run(settings, RunFolder(tmp_path))

    data = settings.dataset.build()
    raw = Detector.load(tmp_path / "model").score(data.test)
    expected = Pipeline(None, settings.postprocess).processed(data.test, raw)
    written = pd.read_csv(tmp_path / "scores" / "test_steps.csv.gz")
    np.testing.assert_allclose(written["score"], np.concatenate(expected.steps))
    assert not np.allclose(np.concatenate(expected.steps), np.concatenate(raw.steps))
    assert 0 <= written["score"].min() and written["score"].max() <= 1
    assert result["threshold"]["values"]["point"] == 0.5
    assert Pipeline.load(tmp_path / "model")[0].postprocess == settings.postprocess
