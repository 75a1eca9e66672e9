"""The run folder's figures: what they show (channels, time axis, thresholds, operating points) and that a CSV
run with timestamps writes them all."""

from pathlib import Path

import matplotlib
import numpy as np
import pytest
from conftest import read_metrics, run_folders, run_tsad

from tsad.data.registry import dataset_settings
from tsad.evaluation.metrics import binary_metrics
from tsad.models.base import Scores
from tsad.plotting.curves import plot_roc_pr
from tsad.plotting.series import plot_examples
from tsad.plotting.style import time_axis

matplotlib.use("Agg")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "my_sensor.csv"


@pytest.fixture(autouse=True)
def close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def sensor_data():
    """examples/my_sensor.csv: timestamps, a channel near 60 beside two near 1, labelled anomalies in test."""
    data = dataset_settings({"family": "csv", "path": str(EXAMPLE)}).build()
    scores = Scores([np.abs(series - series.mean(axis=0)).sum(axis=1) for series in data.test.values], np.zeros(1))
    return data, scores


def legend_and_axes_boxes(figure):
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    (legend,) = figure.legends
    return legend.get_window_extent(renderer), [axis.get_window_extent(renderer) for axis in figure.axes]


def test_time_axis_uses_timestamps_only_when_they_parse_and_never_go_back():
    x, label = time_axis(np.array(["2024-01-01 00:00", "2024-01-01 01:00"], dtype=object), 2, "when")
    assert np.issubdtype(x.dtype, np.datetime64) and label == "when"
    x, label = time_axis(np.array([10.0, 20.0, 30.0]), 3, None)
    assert list(x) == [10, 20, 30] and label == "time"
    for unusable in (["2024-01-02", "2024-01-01"], ["soon", "later"]):
        x, label = time_axis(np.array(unusable, dtype=object), 2, "when")
        assert list(x) == [0, 1] and label == "step", unusable
    assert time_axis(None, 3, None)[1] == "step"


def test_examples_of_a_csv_run_are_on_its_time_axis_with_channels_scaled_and_named():
    data, scores = sensor_data()
    figure = plot_examples(data, scores, {"point": float(np.quantile(scores.steps[0], 0.9))})
    signal_axis, score_axis = figure.axes[0], figure.axes[1]
    lines = signal_axis.get_lines()
    assert [line.get_label().split(" (")[0] for line in lines] == ["temperature", "vibration", "pressure"]
    train = np.concatenate(data.train.values)
    expected = (data.test.values[0][:, 0] - train[:, 0].mean()) / train[:, 0].std()
    np.testing.assert_allclose(lines[0].get_ydata(), expected, rtol=1e-4, atol=1e-4)
    assert all(abs(np.mean(line.get_ydata())) < 5 for line in lines), "the channel near 60 is scaled like the others"
    assert np.issubdtype(np.asarray(lines[0].get_xdata()).dtype, np.datetime64)
    assert score_axis.get_xlabel() == "timestamp"
    legend, axes = legend_and_axes_boxes(figure)
    assert legend.y1 <= min(box.y0 for box in axes), "the legend sits below every panel"
    assert figure._suptitle.get_window_extent().y0 >= max(box.y1 for box in axes) - 1, "and never on the title"
    labels = [text.get_text() for text in figure.legends[0].get_texts()]
    assert {"true anomaly", "step threshold", "detected (true positive)"} <= set(labels)


def test_series_level_examples_draw_the_series_threshold_and_score():
    data = dataset_settings({"family": "synthetic", "name": "tiny", "level": "series", "n_train": 10, "n_val": 4,
                             "n_test": 12, "min_length": 40, "max_length": 60, "seed": 0}).build()
    rng = np.random.default_rng(0)
    steps = [rng.random(len(series)) + label for series, label in zip(data.test.values, data.test.series_labels)]
    scores = Scores(steps, np.array([s.max() for s in steps]))
    thresholds = {"series": float(np.median(scores.series)), "point": 1.2}
    figure = plot_examples(data, scores, thresholds)
    score_axes = figure.axes[len(figure.axes) // 2:]          # panels are row-major: signals, then scores
    for axis in score_axes:
        heights = {line.get_label(): line.get_ydata()[0] for line in axis.get_lines()}
        assert heights["series threshold"] == thresholds["series"] and heights["step threshold"] == 1.2
        assert "series score" in heights and "threshold" in axis.get_title()
    assert [axis.get_xlabel() for axis in score_axes] == ["step"] * len(score_axes)


def test_roc_and_pr_curves_show_their_areas_and_the_runs_operating_point():
    rng = np.random.default_rng(1)
    labels = (rng.random(300) < 0.2).astype(int)
    scores = rng.normal(size=300) + 1.5 * labels
    threshold = 1.0
    metrics = binary_metrics(labels, scores, threshold)
    roc_axis, pr_axis = plot_roc_pr(labels, scores, "point", threshold).axes
    texts = {axis: [text.get_text() for text in axis.get_legend().get_texts()] for axis in (roc_axis, pr_axis)}
    assert f"ROC-AUC {metrics['roc_auc']:.3f}" in texts[roc_axis]
    assert f"PR-AUC (average precision) {metrics['pr_auc']:.3f}" in texts[pr_axis]
    (pr_point,) = [line for line in pr_axis.get_lines() if line.get_label().startswith("threshold")]
    assert pr_point.get_xdata()[0] == pytest.approx(metrics["recall"])
    assert pr_point.get_ydata()[0] == pytest.approx(metrics["precision"])
    (roc_point,) = [line for line in roc_axis.get_lines() if line.get_label().startswith("threshold")]
    confusion = metrics["confusion"]
    assert roc_point.get_xdata()[0] == pytest.approx(confusion["fp"] / (confusion["fp"] + confusion["tn"]))
    assert roc_point.get_ydata()[0] == pytest.approx(metrics["recall"])


def test_a_csv_run_with_timestamps_writes_every_figure(tmp_path):
    result = run_tsad(["model=pca", "model.window=10", "dataset=csv", f"dataset.path={EXAMPLE}", "plots=true"],
                      tmp_path)
    (folder,) = run_folders(tmp_path)
    assert read_metrics(folder)["status"] == "OK" and "Traceback" not in result.stderr
    for name in ("examples.png", "roc_pr_point.png", "scores_point.png", "reconstructions.png"):
        assert (folder / "plots" / name).stat().st_size > 10_000, name


def test_the_loss_plot_ticks_whole_epochs():
    from tsad.plotting.curves import plot_losses

    history = [{"stage": "train", "epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "monitor": "val_loss"}
               for e in range(1, 4)]
    figure = plot_losses(history)
    ticks = figure.axes[0].get_xticks()
    assert len(ticks) and all(float(t).is_integer() for t in ticks)


def shaded(axis, label: str) -> bool:
    return any(patch.get_label() == label for patch in axis.patches)


def test_series_level_examples_shade_false_alarms_only_on_normal_series_that_raised_an_alarm():
    from tsad.plotting.series import FALSE_ALARM, pick_examples

    data = dataset_settings({"family": "synthetic", "name": "tiny", "level": "series", "n_train": 10, "n_val": 4,
                             "n_test": 12, "min_length": 40, "max_length": 60, "seed": 0}).build()
    normal = np.flatnonzero(data.test.series_labels == 0)
    steps = [np.full(len(series), 0.5) for series in data.test.values]
    for index in normal:
        steps[index][5:8] = 2.0                       # every normal series has steps above the step threshold
    series_scores = np.array([1.0 if label else 0.0 for label in data.test.series_labels])
    series_scores[normal[0]] = 1.0                    # and one of them raises a series alarm
    scores = Scores(steps, series_scores)
    thresholds = {"series": 0.5, "point": 1.2}
    figure = plot_examples(data, scores, thresholds)
    examples = pick_examples(data.test, scores, thresholds)
    score_axes = dict(zip((title for _, title in examples), figure.axes[len(figure.axes) // 2:]))
    assert shaded(score_axes["false alarm"], FALSE_ALARM)
    assert not shaded(score_axes["normal"], FALSE_ALARM), "a normal series classified correctly has no false alarm"


def test_reconstructions_are_z_scored_like_the_examples_and_say_so():
    from tsad.plotting.series import channel_scales, plot_reconstructions

    data, _ = sensor_data()

    class Echo:
        def reconstruct(self, subset):
            return [series + 1.0 for series in subset.values]

    figure = plot_reconstructions(Echo(), data)
    (mean,), (std,) = channel_scales(data.train, 1)
    for axis in figure.axes:
        assert axis.get_ylabel() == figure.axes[0].get_ylabel() == "value (z-scored per channel)"
        given, rebuilt = axis.get_lines()[:2]
        np.testing.assert_allclose(rebuilt.get_ydata() - given.get_ydata(), 1.0 / std, rtol=1e-4)
        assert abs(np.mean(given.get_ydata())) < 5, "in train standard deviations, not raw units near 60"
