"""The metrics report of one level, and what a hyperparameter search may optimise."""

from __future__ import annotations

import numpy as np
import pytest

from tsad.data.registry import dataset_settings
from tsad.data.series import SeriesSet
from tsad.evaluation.range_metrics import range_event_metrics
from tsad.evaluation.report import RANGE_AWARE, THRESHOLDED, evaluate_level, validation_metrics
from tsad.evaluation.vus import FALLBACK_WINDOW, default_window, vus_metrics
from tsad.models.base import build_detector

BINARY = ("roc_auc", "pr_auc", "precision", "recall", "f1", "oracle_best_f1", "oracle_threshold")


def periodic_corpus(seed: int = 0):
    """Three series with different periods; the middle one has no anomaly."""
    rng = np.random.default_rng(seed)
    values, labels, scores = [], [], []
    for length, period, segments in ((700, 20, [(100, 120), (400, 430)]), (300, 50, []), (900, 37, [(600, 650)])):
        t = np.arange(length)
        values.append(np.stack([np.sin(2 * np.pi * t / period), rng.normal(size=length)], axis=1))
        y = np.zeros(length, dtype=int)
        for start, stop in segments:
            y[start:stop] = 1
        labels.append(y)
        scores.append(rng.random(length) + 0.8 * np.roll(y, 3))
    return SeriesSet(values, labels, names=["a", "b", "c"]), np.concatenate(labels), np.concatenate(scores)


def test_point_level_reports_every_range_aware_metric_by_name():
    data, labels, scores = periodic_corpus()
    metrics = evaluate_level(labels, scores, 0.9, "point", data=data)
    for name in (*BINARY, *RANGE_AWARE, "vus_window", "vus_window_rule", "series_scored"):
        assert name in metrics, name
    assert {f"oracle_{name}" for name in THRESHOLDED} <= set(metrics)
    assert all(isinstance(metrics[name], float) for name in RANGE_AWARE)
    assert "pa_f1" in metrics and "oracle_pa_f1" in metrics


def test_series_level_reports_binary_metrics_only():
    labels = np.array([0, 1, 0, 1, 0, 0])
    metrics = evaluate_level(labels, np.array([0.1, 0.9, 0.2, 0.7, 0.3, 0.8]), 0.5, "series")
    assert set(BINARY) <= set(metrics)
    assert not set(RANGE_AWARE) & set(metrics)


def test_range_aware_metrics_are_means_over_series_with_anomalies_at_each_series_window():
    data, labels, scores = periodic_corpus()
    metrics = evaluate_level(labels, scores, 0.9, "point", data=data)
    bounds = np.cumsum(data.lengths)[:-1]
    parts = [(y, s, x) for y, s, x in zip(np.split(labels, bounds), np.split(scores, bounds), data.values)
             if y.any()]
    windows = [default_window(x) for _, _, x in parts]
    assert metrics["series_scored"] == 2
    assert metrics["vus_window"] == windows and len(set(windows)) == 2
    expected_vus = np.mean([vus_metrics(y, s, w)["vus_pr"] for (y, s, _), w in zip(parts, windows)])
    assert metrics["vus_pr"] == pytest.approx(expected_vus, abs=1e-12)
    at_run = [range_event_metrics(y, s, 0.9) for y, s, _ in parts]
    at_oracle = [range_event_metrics(y, s, metrics["oracle_threshold"]) for y, s, _ in parts]
    for name in THRESHOLDED:
        assert metrics[name] == pytest.approx(np.mean([m[name] for m in at_run]), abs=1e-12)
        assert metrics[f"oracle_{name}"] == pytest.approx(np.mean([m[name] for m in at_oracle]), abs=1e-12)


def test_without_the_series_the_steps_are_one_series_at_the_stated_window():
    _, labels, scores = periodic_corpus()
    fallback = evaluate_level(labels, scores, 0.9, "point")
    assert fallback["vus_window"] == FALLBACK_WINDOW and fallback["series_scored"] == 1
    assert fallback["vus_pr"] == pytest.approx(vus_metrics(labels, scores, FALLBACK_WINDOW)["vus_pr"])
    given = evaluate_level(labels, scores, 0.9, "point", vus_window=10)
    assert given["vus_window"] == 10 and "configured" in given["vus_window_rule"]


def test_all_normal_test_steps_give_empty_range_metrics_not_a_crash():
    labels = np.zeros(500, dtype=int)
    metrics = evaluate_level(labels, np.random.default_rng(0).random(500), 0.5, "point")
    assert metrics["roc_auc"] is None and metrics["series_scored"] == 0
    assert all(metrics[name] is None for name in RANGE_AWARE)


@pytest.mark.parametrize("level", ["series", "point"])
def test_validation_metrics_come_from_the_labelled_validation_split_only(level):
    config = {"family": "synthetic", "name": "tiny", "level": level, "n_train": 20, "n_val": 5, "n_test": 20,
              "min_length": 40, "max_length": 80 if level == "series" else 500, "labelled_val": 10}
    data = dataset_settings(config).build()
    detector = build_detector("zscore", {}).fit(data.train, data.val)
    detector.history = [{"val_loss": 0.5}, {"val_loss": 0.3}, {"val_loss": 0.4}]
    levels = ["series", "point"] if level == "series" else ["point"]
    scores = detector.score(data.labelled_val)
    result = validation_metrics(detector.history, data.labelled_val, scores, levels)
    assert result["val_loss"] == 0.3
    for each in levels:
        assert 0 <= result["labelled_val"][each]["roc_auc"] <= 1
        assert 0 <= result["labelled_val"][each]["pr_auc"] <= 1
    assert 0 <= result["labelled_val"]["point"]["vus_pr"] <= 1
    assert validation_metrics(detector.history, None, None, levels) == {"val_loss": 0.3}


def test_loss_plot_marks_the_epoch_of_the_loss_early_stopping_followed():
    from tsad.plotting import plot_losses

    history = [{"stage": "train", "epoch": e + 1, "train_loss": train, "train_eval_loss": monitored,
                "monitor": "train_eval_loss"}
               for e, (train, monitored) in enumerate([(1.0, 0.9), (1.2, 0.5), (1.4, 0.7)])]
    figure = plot_losses(history)
    axis = figure.axes[0]
    assert [line.get_label() for line in axis.lines] == ["train", "train, eval mode", "best epoch"]
    assert list(axis.lines[-1].get_xdata()) == [2, 2]
