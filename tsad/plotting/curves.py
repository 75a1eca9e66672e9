"""Figures of numbers over a run: loss curves, test score distributions, and ROC / PR curves with the run's
operating point (the chosen threshold)."""

from __future__ import annotations

import numpy as np

from tsad.plotting.style import ANOMALY_COLOR, NORMAL_COLOR, THRESHOLD_COLOR


def plot_losses(history: list[dict]):
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

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
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
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


def plot_roc_pr(labels, scores, level, threshold: float):
    """ROC and precision-recall curves with their areas (the run's roc_auc and pr_auc, i.e. average precision),
    each marking where the run's threshold puts it."""
    import matplotlib.pyplot as plt
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

    figure, (roc_axis, pr_axis) = plt.subplots(1, 2, figsize=(9, 4.4), layout="constrained")
    fpr, tpr, _ = roc_curve(labels, scores)
    roc_axis.plot(fpr, tpr, color=NORMAL_COLOR, label=f"ROC-AUC {roc_auc_score(labels, scores):.3f}")
    roc_axis.plot([0, 1], [0, 1], color="grey", ls=":", label="random")
    precision, recall, _ = precision_recall_curve(labels, scores)
    pr_axis.plot(recall, precision, color=ANOMALY_COLOR,
                 label=f"PR-AUC (average precision) {average_precision_score(labels, scores):.3f}")
    pr_axis.axhline(labels.mean(), color="grey", ls=":", label=f"random ({labels.mean():.3f})")

    flagged, anomalous = scores > threshold, labels == 1
    true_positives = int((flagged & anomalous).sum())
    at_recall = true_positives / max(int(anomalous.sum()), 1)
    at_false_positive_rate = int((flagged & ~anomalous).sum()) / max(int((~anomalous).sum()), 1)
    # With no alarm at all precision is undefined; the curve starts at (recall 0, precision 1) like sklearn's.
    at_precision = true_positives / flagged.sum() if flagged.any() else 1.0
    roc_axis.plot(at_false_positive_rate, at_recall, "o", color=THRESHOLD_COLOR, ms=6,
                  label=f"threshold {threshold:.3g}: TPR {at_recall:.2f}, FPR {at_false_positive_rate:.2f}")
    pr_axis.plot(at_recall, at_precision, "o", color=THRESHOLD_COLOR, ms=6,
                 label=f"threshold {threshold:.3g}: P {at_precision:.2f}, R {at_recall:.2f}")

    roc_axis.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC ({level} level)")
    pr_axis.set(xlabel="recall", ylabel="precision", title=f"Precision-recall ({level} level)", ylim=(0, 1.02))
    for axis in (roc_axis, pr_axis):  # below the axes: inside, a legend hides part of some curve
        axis.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), fontsize=8, frameon=False)
    return figure
