"""Every figure of a run folder: loss curves, score distributions, ROC/PR, example series, reconstructions."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tsad.evaluation.levels import level_arrays

NORMAL_COLOR, ANOMALY_COLOR, THRESHOLD_COLOR = "#4477aa", "#cc3311", "#222222"


def plot_run(directory: Path, detector, data, scores, thresholds: dict, levels: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    plt.rcParams.update({"figure.dpi": 110, "axes.spines.top": False, "axes.spines.right": False})
    if detector.history:
        save(plot_losses(detector.history), directory / "loss.png")
    for level in levels:
        labels, level_scores = level_arrays(data.test, scores, level)
        save(plot_score_distribution(labels, level_scores, thresholds[level], level), directory / f"scores_{level}.png")
        if labels.min() != labels.max():
            save(plot_roc_pr(labels, level_scores, level), directory / f"roc_pr_{level}.png")
    save(plot_examples(data.test, scores, thresholds), directory / "examples.png")
    if getattr(detector, "can_reconstruct", False):
        save(plot_reconstructions(detector, data.test), directory / "reconstructions.png")


def save(figure, path: Path) -> None:
    import matplotlib.pyplot as plt

    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def plot_losses(history: list[dict]):
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.5))
    stages = list(dict.fromkeys(h["stage"] for h in history))
    x = np.arange(1, len(history) + 1)
    axis.plot(x, [h.get("train_loss", np.nan) for h in history], label="train", color=NORMAL_COLOR)
    for key, label in (("val_loss", "validation"), ("train_eval_loss", "train, eval mode")):
        if any(key in h for h in history):
            axis.plot(x, [h.get(key, np.nan) for h in history], label=label, color=ANOMALY_COLOR)
    # The loss early stopping followed (history records name it; older ones had val_loss or nothing).
    best = int(np.nanargmin([h.get(h.get("monitor", "val_loss"), h.get("train_loss")) for h in history]))
    axis.axvline(best + 1, color="grey", ls=":", label="best epoch")
    axis.set(xlabel="epoch" + (f" (stages: {', '.join(stages)})" if len(stages) > 1 else ""), ylabel="loss",
             title="Training and validation loss")
    axis.legend()
    return figure


def plot_score_distribution(labels, scores, threshold, level):
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.5))
    finite = np.isfinite(scores)
    bins = np.histogram_bin_edges(scores[finite], bins=50)
    axis.hist(scores[finite & (labels == 0)], bins=bins, alpha=0.6, density=True, color=NORMAL_COLOR,
              label=f"normal (n={int((labels == 0).sum())})")
    axis.hist(scores[finite & (labels == 1)], bins=bins, alpha=0.6, density=True, color=ANOMALY_COLOR,
              label=f"anomalous (n={int((labels == 1).sum())})")
    axis.axvline(threshold, color=THRESHOLD_COLOR, ls="--", label=f"threshold {threshold:.3g}")
    axis.set(xlabel="anomaly score", ylabel="density", title=f"Test score distribution ({level} level)")
    axis.legend()
    return figure


def plot_roc_pr(labels, scores, level):
    import matplotlib.pyplot as plt
    from sklearn.metrics import auc, precision_recall_curve, roc_curve

    figure, (roc_axis, pr_axis) = plt.subplots(1, 2, figsize=(9, 3.8))
    fpr, tpr, _ = roc_curve(labels, scores)
    roc_axis.plot(fpr, tpr, color=NORMAL_COLOR, label=f"AUC {auc(fpr, tpr):.3f}")
    roc_axis.plot([0, 1], [0, 1], color="grey", ls=":")
    roc_axis.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC ({level} level)")
    roc_axis.legend(loc="lower right")
    precision, recall, _ = precision_recall_curve(labels, scores)
    pr_axis.plot(recall, precision, color=ANOMALY_COLOR)
    pr_axis.axhline(labels.mean(), color="grey", ls=":", label=f"random ({labels.mean():.3f})")
    pr_axis.set(xlabel="recall", ylabel="precision", title=f"Precision-recall ({level} level)", ylim=(0, 1.02))
    pr_axis.legend(loc="upper right")
    return figure


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


def plot_examples(data, scores, thresholds):
    import matplotlib.pyplot as plt

    examples = pick_examples(data, scores, thresholds) or [(0, "series")]
    figure, axes = plt.subplots(2, len(examples), figsize=(4.2 * len(examples), 5), squeeze=False,
                                gridspec_kw={"height_ratios": [2, 1]})
    step_threshold = thresholds.get("point")
    for column, (index, title) in enumerate(examples):
        values, step_scores = data.values[index], scores.steps[index]
        labels = data.step_labels[index] if data.step_labels is not None else np.zeros(len(values), int)
        t = np.arange(len(values))
        signal_axis, score_axis = axes[0, column], axes[1, column]
        for channel in range(min(3, values.shape[1])):
            signal_axis.plot(t, values[:, channel], lw=0.8)
        shade(signal_axis, labels == 1, ANOMALY_COLOR, "true anomaly")
        signal_axis.set_title(f"{title}: {data.names[index]}", fontsize=9)
        score_axis.plot(t, step_scores, color="black", lw=0.8)
        if step_threshold is not None:
            predicted = step_scores > step_threshold
            score_axis.axhline(step_threshold, color=THRESHOLD_COLOR, ls="--", lw=0.8)
            shade(score_axis, predicted & (labels == 1), "#228833", "TP (detected)")
            shade(score_axis, predicted & (labels == 0), "#ee7733", "FP (false alarm)")
            shade(score_axis, ~predicted & (labels == 1), "#aa3377", "FN (missed)")
        score_axis.set(xlabel="step", ylabel="score")
    handles = {}
    for axis in axes.ravel():
        for handle, label in zip(*axis.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    figure.legend(handles.values(), handles.keys(), loc="upper right", fontsize=8, ncol=4)
    figure.suptitle("Example test series (top: first channels; bottom: step scores and threshold)", fontsize=10)
    return figure


def shade(axis, mask: np.ndarray, color: str, label: str) -> None:
    """Shade the contiguous runs of True in mask."""
    edges = np.diff(np.r_[0, mask.astype(int), 0])
    for k, (start, stop) in enumerate(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1))):
        axis.axvspan(start - 0.5, stop - 0.5, color=color, alpha=0.25, lw=0, label=label if k == 0 else None)


def plot_reconstructions(detector, data):
    import matplotlib.pyplot as plt

    index = [int(np.argmax(data.series_labels))] if data.series_labels is not None and data.series_labels.any() else []
    index = (index + [i for i in range(len(data)) if i not in index])[:2]
    subset = data.subset(index)
    reconstructions = detector.reconstruct(subset)
    figure, axes = plt.subplots(len(index), 1, figsize=(9, 2.6 * len(index)), squeeze=False)
    for row, axis in enumerate(axes[:, 0]):
        axis.plot(subset.values[row][:, 0], color=NORMAL_COLOR, lw=0.9, label="input (channel 0)")
        axis.plot(reconstructions[row][:, 0], color=ANOMALY_COLOR, lw=0.9, ls="--", label="reconstruction")
        if subset.step_labels is not None:
            shade(axis, subset.step_labels[row] == 1, "grey", "true anomaly")
        axis.set_title(subset.names[row], fontsize=9)
        axis.legend(fontsize=8, loc="upper right")
    return figure
