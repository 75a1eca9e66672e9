"""Figures of test series: examples (detected, missed, false alarm, normal) with their scores, and reconstructions.

Channels (and reconstructions) are drawn z-scored with the train split's mean and standard deviation per channel (the
legend gives both), so a channel near 60 does not flatten one near 0, and a shift away from
normal shows as a number of train standard deviations.
"""

from __future__ import annotations

import numpy as np

from tsad.plotting.style import (
    ANOMALY_COLOR,
    CHANNEL_COLORS,
    DETECTED_COLOR,
    FALSE_ALARM_COLOR,
    MISSED_COLOR,
    NORMAL_COLOR,
    SERIES_THRESHOLD_COLOR,
    THRESHOLD_COLOR,
    format_time_axis,
    shade,
    time_axis,
)

MAX_CHANNELS = len(CHANNEL_COLORS)
# Legend labels, in the legend's order after the channels.
TRUE_ANOMALY, STEP_THRESHOLD = "true anomaly", "step threshold"
SERIES_SCORE, SERIES_THRESHOLD = "series score", "series threshold"
DETECTED, FALSE_ALARM, MISSED = "detected (true positive)", "false alarm (false positive)", "missed (false negative)"
LEGEND_ORDER = (TRUE_ANOMALY, STEP_THRESHOLD, SERIES_SCORE, SERIES_THRESHOLD, DETECTED, FALSE_ALARM, MISSED)
Z_SCORED = "value (z-scored per channel)"  # the y axis of every figure of channels: (value - train mean) / train std
LEGEND_ENTRY_WIDTH = 2.8  # inches one legend entry takes, channel names with their train scales included


def pick_examples(data, scores, thresholds) -> list[tuple[int, str]]:
    """Up to four test series: a detected anomaly, a missed one, a false alarm and a quiet normal one."""
    if "series" in thresholds and data.series_labels is not None:
        labels, flagged = data.series_labels, scores.series > thresholds["series"]
    else:
        labels = np.array([int(y.any()) for y in data.step_labels]) if data.step_labels else np.zeros(len(data))
        flagged = np.array([(s > thresholds.get("point", np.inf)).any() for s in scores.steps])
    wanted = [("detected anomaly", (labels == 1) & flagged), ("missed anomaly", (labels == 1) & ~flagged),
              ("false alarm", (labels == 0) & flagged), ("normal", (labels == 0) & ~flagged)]
    return [(int(np.flatnonzero(mask)[0]), title) for title, mask in wanted if mask.any()]


def channel_scales(train, n_channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation [n_channels] of the first channels over every train step (std 0 -> 1)."""
    values = np.concatenate([series[:, :n_channels] for series in train.values]).astype(np.float64)
    mean, std = np.nanmean(values, axis=0), np.nanstd(values, axis=0)
    return mean, np.where(std > 0, std, 1.0)


def scale_text(mean: float, std: float) -> str:
    """'60.70 ± 2.86': the mean to the precision its standard deviation gives it (no 1.66e-10 for a zero mean)."""
    decimals = max(0, 2 - int(np.floor(np.log10(std))))
    return f"{round(mean, decimals) + 0.0:.{decimals}f} ± {std:.3g}"


def plot_examples(data, scores, thresholds):
    """data: the run's DatasetSplits (test series, train scales, channel names, timestamp column)."""
    import matplotlib.pyplot as plt

    test = data.test
    examples = pick_examples(test, scores, thresholds) or [(0, "series")]
    shown = min(MAX_CHANNELS, data.n_channels)
    mean, std = channel_scales(data.train, shown)
    channel_labels = [f"{name} (train {scale_text(m, s)})" for name, m, s in zip(data.channels, mean, std)]
    width = max(9.0, 4.4 * len(examples))
    figure, axes = plt.subplots(2, len(examples), figsize=(width, 6.5), squeeze=False, sharex="col",
                                layout="constrained", gridspec_kw={"height_ratios": [2, 1]})
    for column, (index, title) in enumerate(examples):
        values = test.values[index]
        labels = test.step_labels[index] if test.step_labels is not None else np.zeros(len(values), int)
        x, x_label = time_axis(test.timestamps[index] if test.timestamps else None, len(values),
                               data.timestamp_column)
        signal_axis, score_axis = axes[0, column], axes[1, column]
        for channel in range(shown):
            signal_axis.plot(x, (values[:, channel] - mean[channel]) / std[channel], lw=0.8,
                             color=CHANNEL_COLORS[channel], label=channel_labels[channel])
        shade(signal_axis, labels == 1, ANOMALY_COLOR, TRUE_ANOMALY, x)
        signal_axis.set_title(f"{title}: {test.names[index]}", fontsize=9)
        outcome = None
        if "series" in thresholds and test.series_labels is not None:
            outcome = (bool(scores.series[index] > thresholds["series"]), bool(test.series_labels[index] == 0))
        draw_scores(score_axis, x, scores.steps[index], labels, thresholds.get("point"), outcome)
        if "series" in thresholds:
            series_score, series_threshold = scores.series[index], thresholds["series"]
            score_axis.axhline(series_score, color=SERIES_THRESHOLD_COLOR, ls=":", lw=1.2, label=SERIES_SCORE)
            score_axis.axhline(series_threshold, color=SERIES_THRESHOLD_COLOR, ls="-.", lw=1, label=SERIES_THRESHOLD)
            relation = ">" if series_score > series_threshold else "≤"
            score_axis.set_title(f"series score {series_score:.3g} {relation} threshold {series_threshold:.3g}",
                                 fontsize=8)
        score_axis.set_xlabel(x_label)
        format_time_axis(score_axis, x)
    axes[0, 0].set_ylabel(Z_SCORED)
    axes[1, 0].set_ylabel("anomaly score")
    handles = {}
    for axis in axes.ravel():
        for handle, label in zip(*axis.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    order = channel_labels + list(LEGEND_ORDER)
    handles = dict(sorted(handles.items(), key=lambda item: order.index(item[0])))
    figure.legend(handles.values(), handles.keys(), loc="outside lower center", fontsize=8,
                  ncol=min(len(handles), int(width // LEGEND_ENTRY_WIDTH)))
    channels = f"first {shown} of {data.n_channels} channels" if shown < data.n_channels else "channels"
    figure.suptitle(f"Example test series (top: {channels}; bottom: step scores, thresholds and outcomes)",
                    fontsize=10)
    return figure


def draw_scores(axis, x: np.ndarray, step_scores: np.ndarray, labels: np.ndarray, threshold: float | None,
                series_outcome: tuple[bool, bool] | None = None) -> None:
    """Step scores, and with a step threshold the detected, false-alarm and missed stretches.

    series_outcome: (the series raised an alarm, the series is normal) where series are classified whole: a series
    that raised no alarm detects nothing, and only a normal series that raised one shows false alarms."""
    axis.plot(x, step_scores, color="black", lw=0.8)
    if threshold is None:
        return
    flagged = step_scores > threshold
    false_alarms = flagged & (labels == 0)
    if series_outcome is not None:
        raised, normal = series_outcome
        flagged &= raised
        false_alarms &= raised and normal
    axis.axhline(threshold, color=THRESHOLD_COLOR, ls="--", lw=0.8, label=STEP_THRESHOLD)
    shade(axis, flagged & (labels == 1), DETECTED_COLOR, DETECTED, x, alpha=0.3)
    shade(axis, false_alarms, FALSE_ALARM_COLOR, FALSE_ALARM, x, alpha=0.4)
    shade(axis, ~flagged & (labels == 1), MISSED_COLOR, MISSED, x, alpha=0.3)


def plot_reconstructions(detector, data):
    """data: the run's DatasetSplits; the first channel of an anomalous test series and a normal one."""
    import matplotlib.pyplot as plt

    test = data.test
    index = [int(np.argmax(test.series_labels))] if test.series_labels is not None and test.series_labels.any() else []
    index = (index + [i for i in range(len(test)) if i not in index])[:2]
    subset = test.subset(index)
    reconstructions = detector.reconstruct(subset)
    (mean,), (std,) = channel_scales(data.train, 1)
    figure, axes = plt.subplots(len(index), 1, figsize=(9, 2.6 * len(index)), squeeze=False)
    for row, axis in enumerate(axes[:, 0]):
        x, x_label = time_axis(subset.timestamps[row] if subset.timestamps else None, len(subset.values[row]),
                               data.timestamp_column)
        axis.plot(x, (subset.values[row][:, 0] - mean) / std, color=NORMAL_COLOR, lw=0.9,
                  label=f"input ({data.channels[0]}, train {scale_text(mean, std)})")
        axis.plot(x, (reconstructions[row][:, 0] - mean) / std, color=ANOMALY_COLOR, lw=0.9, ls="--",
                  label="reconstruction")
        if subset.step_labels is not None:
            shade(axis, subset.step_labels[row] == 1, "grey", "true anomaly", x)
        axis.set(title=subset.names[row], xlabel=x_label, ylabel=Z_SCORED)
        axis.title.set_fontsize(9)
        format_time_axis(axis, x)
        axis.legend(fontsize=8, loc="upper right")
    return figure
