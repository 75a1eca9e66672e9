"""The scoring pipeline: a detector with its post-processing and thresholds, fitted, saved and loaded as one, and
the one alarm rule every part of tsad applies."""

from __future__ import annotations

import numpy as np
import pytest

from tsad.data.series import SeriesSet
from tsad.errors import UserError
from tsad.evaluation.alarms import alarms, at_or_above
from tsad.evaluation.thresholds import threshold_policy
from tsad.model_inputs import ModelInputs
from tsad.models.base import build_detector
from tsad.pipeline import Pipeline
from tsad.postprocess import PostProcess


def point_data(seed: int, spike: int | None = None) -> SeriesSet:
    rng = np.random.default_rng(seed)
    values = np.sin(np.arange(500) / 7)[:, None] + 0.1 * rng.normal(size=(500, 1))
    labels = np.zeros(500, dtype=int)
    if spike is not None:
        values[spike:spike + 5] += 4.0
        labels[spike:spike + 5] = 1
    return SeriesSet([values.astype(np.float32)], step_labels=[labels], names=["s"])


def test_a_score_raises_an_alarm_only_above_its_threshold():
    np.testing.assert_array_equal(alarms(np.array([0.4, 0.5, 0.6, np.nan]), 0.5), [False, False, True, False])
    np.testing.assert_array_equal(alarms(np.array([0.4, 0.5, 0.6]), at_or_above(0.5)), [False, True, True])


def test_a_fitted_pipeline_saves_and_loads_with_its_post_processing_and_thresholds(tmp_path):
    postprocess = PostProcess(name="likelihood", likelihood=True)
    pipeline = Pipeline(build_detector("zscore", {}), postprocess).fit(point_data(0))
    val, test = point_data(1), point_data(2, spike=400)
    pipeline.choose_thresholds(threshold_policy({"policy": "fixed", "value": 0.5}), val, pipeline.score(val),
                               ["point"])
    scores = pipeline.score(test)
    assert not np.allclose(scores.steps[0], pipeline.detector.score(test).steps[0]), "post-processed"
    pipeline.save(tmp_path, ModelInputs("point", ["ch0"]))

    loaded, inputs = Pipeline.load(tmp_path)
    assert loaded.postprocess == postprocess and loaded.thresholds == {"point": 0.5} and inputs.channels == ["ch0"]
    np.testing.assert_array_equal(loaded.score(test).steps[0], scores.steps[0])
    raised = loaded.alarms(scores.steps[0], "point")
    np.testing.assert_array_equal(raised, scores.steps[0] > 0.5)
    assert raised[400:405].any() and not raised[:75].any(), "the learning phase (75 of 500 rows) raises none"
    with pytest.raises(UserError, match="no series-level threshold"):
        loaded.alarms(scores.series, "series")


def test_an_online_pipeline_ranks_raw_scores_and_an_offline_one_keeps_them():
    data = point_data(3)
    detector = build_detector("zscore", {}).fit(point_data(0))
    raw = detector.score(data).steps[0]
    np.testing.assert_array_equal(Pipeline(detector).score(data).steps[0], raw)
    ranked = Pipeline(detector, ranks=True).score(data).steps[0]
    records = np.array([t == 0 or raw[t] > raw[:t].max() for t in range(len(raw))])
    assert (0 < ranked).all()
    np.testing.assert_array_equal(ranked == 1.0, records)  # a new record high ranks 1, every other score below it
