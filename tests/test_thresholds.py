"""Threshold policies: values from train / validation / labelled validation only, never from test."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tsad.data.registry import dataset_settings
from tsad.data.windows import make_windows, windows_to_steps
from tsad.errors import UserError
from tsad.evaluation.thresholds import POLICIES, threshold_policy
from tsad.models.base import build_detector
from tsad.pipeline import Pipeline
from tsad.protocols.offline import score_reference

SERIES = {"family": "synthetic", "name": "tiny", "seed": 3, "n_train": 30, "n_val": 10, "n_test": 30,
          "min_length": 40, "max_length": 80, "labelled_val": 0.5}
POINTS = {**SERIES, "name": "tiny_points", "level": "point", "max_length": 600, "n_train": 2, "n_val": 1,
          "n_test": 2, "n_anomalies": 4, "labelled_val": 1}
CONFIGS = [
    {"policy": "val_percentile"},
    {"policy": "val_percentile", "q": 90, "source": "train"},
    {"policy": "contamination", "rate": 0.1},
    {"policy": "sigma", "k": 2.0},
    {"policy": "val_best_f1"},
    {"policy": "fixed", "value": 1.5},
    {"policy": "fixed", "value": {"series": 2.0, "point": 1.0}},
]
LEVELS = ["series", "point"]


def build_dataset(config: dict):
    return dataset_settings(config).build()


def thresholds_for(config: dict, detector, data, levels: list[str]):
    """(thresholds, reference) as a run chooses them: the policy's reference split scored, never test."""
    policy, pipeline = threshold_policy(config), Pipeline(detector)
    reference = score_reference(policy, pipeline, data)
    return pipeline.choose_thresholds(policy, reference.data, reference.scores, levels), reference


def fitted(dataset: dict):
    data = build_dataset(dataset)
    detector = build_detector("zscore", {}).fit(data.train, data.val)
    return data, detector


@pytest.fixture(scope="module")
def series_run():
    return fitted(SERIES)


@pytest.fixture(scope="module")
def point_run():
    return fitted(POINTS)


def test_every_policy_has_a_config_and_is_tested():
    assert {c["policy"] for c in CONFIGS} == set(POLICIES)


def with_permuted_test_labels(data, seed: int):
    rng = np.random.default_rng(seed)
    test = data.test
    step_labels = [rng.permutation(labels) for labels in test.step_labels]
    permuted = dataclasses.replace(test, step_labels=step_labels, series_labels=rng.permutation(test.series_labels))
    return dataclasses.replace(data, test=permuted)


class Untouchable:
    """Stands in for the test split: any use of it fails the test."""

    def __getattr__(self, name):
        raise AssertionError(f"a threshold policy read test.{name}")

    def __len__(self):
        raise AssertionError("a threshold policy read the test split")


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(map(str, c.values())))
@pytest.mark.parametrize("run", ["series_run", "point_run"])
def test_permuting_test_labels_leaves_every_threshold_unchanged(config, run, request):
    data, detector = request.getfixturevalue(run)
    levels = LEVELS if data.level == "series" else ["point"]
    thresholds, _ = thresholds_for(config, detector, data, levels)
    for seed in range(3):
        permuted = with_permuted_test_labels(data, seed)
        assert not all(np.array_equal(a, b) for a, b in zip(permuted.test.step_labels, data.test.step_labels))
        assert thresholds_for(config, detector, permuted, levels)[0] == thresholds
    no_test = dataclasses.replace(data, test=Untouchable())
    assert thresholds_for(config, detector, no_test, levels)[0] == thresholds


def test_score_based_policies_use_the_named_split(series_run):
    data, detector = series_run
    val_steps = np.concatenate(detector.score(data.val).steps)
    train_series = detector.score(data.train).series
    thresholds, reference = thresholds_for({"policy": "val_percentile", "q": 95}, detector, data, LEVELS)
    assert reference.split == "val"
    assert thresholds["point"] == pytest.approx(np.percentile(val_steps, 95))
    thresholds, reference = thresholds_for({"policy": "sigma", "k": 2, "source": "train"}, detector, data, LEVELS)
    assert reference.split == "train"
    assert thresholds["series"] == pytest.approx(train_series.mean() + 2 * train_series.std())
    thresholds, _ = thresholds_for({"policy": "contamination", "rate": 0.2}, detector, data, LEVELS)
    assert np.mean(val_steps > thresholds["point"]) == pytest.approx(0.2, abs=0.01)


def test_fixed_value_for_all_levels_or_per_level(series_run):
    data, detector = series_run
    assert thresholds_for({"policy": "fixed", "value": 1.5}, detector, data, LEVELS)[0] == {"series": 1.5,
                                                                                              "point": 1.5}
    per_level = {"policy": "fixed", "value": {"series": 2, "point": 1}}
    assert thresholds_for(per_level, detector, data, LEVELS)[0] == {"series": 2.0, "point": 1.0}
    with pytest.raises(UserError, match="threshold.value.point"):
        thresholds_for({"policy": "fixed", "value": {"series": 2}}, detector, data, LEVELS)


@pytest.mark.parametrize("run", ["series_run", "point_run"])
def test_val_best_f1_is_the_best_f1_on_the_labelled_validation_split(run, request):
    data, detector = request.getfixturevalue(run)
    level = data.level
    thresholds, reference = thresholds_for({"policy": "val_best_f1"}, detector, data, [level])
    assert reference.split == "labelled_val" and reference.data is data.labelled_val
    scores = detector.score(data.labelled_val)
    if level == "series":
        labels, level_scores = data.labelled_val.series_labels, scores.series
    else:
        labels, level_scores = np.concatenate(data.labelled_val.step_labels), np.concatenate(scores.steps)
    chosen = f1_at(labels, level_scores, thresholds[level])
    every_cut = [f1_at(labels, level_scores, t) for t in np.unique(level_scores)]
    assert chosen >= max(every_cut) - 1e-12


def f1_at(labels, scores, threshold) -> float:
    predicted = scores > threshold
    true_positives = np.sum(predicted & (labels == 1))
    return 2 * true_positives / (predicted.sum() + labels.sum())


def test_val_best_f1_without_a_labelled_split_names_the_dataset_option():
    data, detector = fitted({**SERIES, "labelled_val": 0})
    with pytest.raises(UserError, match=r"dataset.labelled_val=") as error:
        thresholds_for({"policy": "val_best_f1"}, detector, data, LEVELS)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("config, message", [
    ({"policy": "oracle"}, "threshold.policy must be one of"),
    ({"policy": "fixed"}, "threshold.value=<number>"),
    ({"policy": "fixed", "value": "high"}, "threshold.value=high has the wrong type: expected a number or a mapping"),
    ({"policy": "val_best_f1", "q": 3}, "unknown key 'threshold.q'"),
    ({"policy": "sigma", "source": "test"}, "threshold.source=test is not allowed: choose one of val, train"),
    ({"policy": "contamination", "rate": 1.5}, "threshold.rate=1.5 is out of range"),
    ({"policy": "sigma", "k": float("nan")}, "threshold.k=nan is out of range"),
])
def test_bad_threshold_configs_fail_in_one_line(config, message):
    with pytest.raises(UserError, match=message) as error:
        threshold_policy(config)
    assert "\n" not in str(error.value)


def test_labelled_val_is_drawn_after_test_and_leaves_the_other_splits_alone():
    without = build_dataset({**SERIES, "labelled_val": 0})
    fraction = build_dataset({**SERIES, "labelled_val": 0.5})
    count = build_dataset({**SERIES, "labelled_val": 4})
    assert without.labelled_val is None
    assert len(fraction.labelled_val) == 15 and len(count.labelled_val) == 4
    assert 0 < fraction.labelled_val.series_labels.sum() < 15
    for split in ("train", "val", "test"):
        for a, b in zip(getattr(without, split).values, getattr(fraction, split).values):
            np.testing.assert_array_equal(a, b)
    test_values = {v.tobytes() for v in fraction.test.values}
    assert not any(v.tobytes() in test_values for v in fraction.labelled_val.values)
    with pytest.raises(UserError, match="dataset.labelled_val"):
        build_dataset({**SERIES, "labelled_val": 2.5})


TRAIN_PERCENTILE = {"policy": "val_percentile", "q": 99, "source": "train"}


def clean_points():
    """Point-level data with clean train series (no anomalies) and a detector's window settings."""
    return build_dataset({**POINTS, "labelled_val": 0, "max_length": 300})


def test_knn_train_threshold_leaves_out_the_windows_that_share_steps_with_the_scored_one():
    # k=1 and every train window fitted: in sample, each train window is its own nearest neighbour
    # (distance 0 up to round-off), so every train score and the threshold were ~0
    data = clean_points()
    detector = build_detector("knn", {"window": 8, "stride": 1, "score_stride": 1, "k": 1,
                                      "max_train_windows": 10**6}).fit(data.train, data.val)
    assert np.concatenate(detector.score(data.train).steps).max() < 1e-6
    thresholds, reference = thresholds_for(TRAIN_PERCENTILE, detector, data, ["point"])
    assert reference.split == "train" and thresholds["point"] > 0.1 * thresholds_for(
        {**TRAIN_PERCENTILE, "source": "val"}, detector, data, ["point"])[0]["point"]
    # brute force: the nearest train window of another series or sharing no step, per scored window
    normalised = detector._normalised(data.train).values
    windows = [make_windows(s, 8, 1) for s in normalised]
    flat = np.concatenate([w.reshape(len(w), -1) for w, _, _ in windows])
    series = np.concatenate([np.full(len(starts), i) for i, (_, starts, _) in enumerate(windows)])
    starts = np.concatenate([starts for _, starts, _ in windows])
    distances = np.sqrt(((flat[:, None, :] - flat[None, :, :]) ** 2).sum(-1))
    own = (series[:, None] == series[None, :]) & (np.abs(starts[:, None] - starts[None, :]) < 8)
    nearest = np.where(own, np.inf, distances).min(axis=1)
    expected = [windows_to_steps(np.repeat(nearest[series == i][:, None], 8, axis=1), starts[series == i],
                                 len(s), "mean", 0) for i, s in enumerate(normalised)]
    np.testing.assert_allclose(np.concatenate(reference.scores.steps), np.concatenate(expected), rtol=1e-4)
    assert thresholds["point"] == pytest.approx(np.percentile(np.concatenate(expected), 99), rel=1e-4)


def test_iforest_train_threshold_uses_out_of_bag_scores():
    data = clean_points()
    detector = build_detector("iforest", {"window": 8, "stride": 2, "n_estimators": 60, "max_samples": 64},
                              seed=0).fit(data.train, data.val)
    forest = detector.estimator
    normalised = detector._normalised(data.train).values
    windows, starts, _ = make_windows(normalised[0], 8, 1)
    flat = windows.reshape(len(windows), -1)
    lengths = forest.path_lengths(flat)                                              # [n_trees, N_w]
    c = 2 * (np.log(63) + np.euler_gamma) - 2 * 63 / 64                           # c(max_samples)
    np.testing.assert_allclose(2 ** (-lengths.mean(0) / c), -forest.score_samples(flat), rtol=1e-6)
    # out of bag: only the trees whose sample holds no fitted window sharing a step with the scored one
    positions = detector.train_positions
    in_bag = np.array([[((positions[bag, 0] == 0) & (np.abs(positions[bag, 1] - start) < 8)).any()
                        for start in starts] for bag in forest.bags])
    assert in_bag.any() and (~in_bag).any(axis=0).all()
    out_of_bag = 2 ** (-(lengths * ~in_bag).sum(0) / (~in_bag).sum(0) / c)
    expected = windows_to_steps(np.repeat(out_of_bag[:, None], 8, axis=1), starts, len(normalised[0]), "mean", 0)
    thresholds, reference = thresholds_for(TRAIN_PERCENTILE, detector, data, ["point"])
    np.testing.assert_allclose(reference.scores.steps[0], expected, rtol=1e-6)
    in_sample = np.concatenate(detector.score(data.train).steps)
    assert thresholds["point"] == pytest.approx(np.percentile(np.concatenate(reference.scores.steps), 99))
    assert not np.allclose(np.concatenate(reference.scores.steps), in_sample)


def test_score_train_refuses_other_data_and_survives_save_and_load(tmp_path):
    data = clean_points()
    detector = build_detector("knn", {"window": 8, "k": 2}).fit(data.train, data.val)
    with pytest.raises(ValueError, match="not the train split"):
        detector.score_train(data.val)
    detector.save(tmp_path / "model")
    loaded = type(detector).load(tmp_path / "model")
    np.testing.assert_array_equal(np.concatenate(loaded.score_train(data.train).steps),
                                  np.concatenate(detector.score_train(data.train).steps))
