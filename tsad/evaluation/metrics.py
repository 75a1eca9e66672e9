"""Threshold-free and thresholded metrics for one label level.

Anything computed with test labels beyond the chosen threshold is named oracle_*.
"""

from __future__ import annotations

import numpy as np

from tsad.evaluation.alarms import alarms


def binary_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    """ROC-AUC, PR-AUC, and P/R/F1/accuracy/confusion at `threshold`, plus the oracle best F1.

    A metric that the labels or alarms leave undefined is None (never 0 or 0.5), and `undefined` says why:
    with one class only in `labels` the ranking metrics and the oracle F1; without anomalous labels recall
    and F1; without alarms (no score above `threshold`) precision.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    labels = np.asarray(labels).astype(int).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if len(labels) != len(scores):
        raise ValueError(f"{len(labels)} labels but {len(scores)} scores")
    predicted = alarms(scores, threshold)
    tp = int(np.sum(predicted & (labels == 1)))
    fp = int(np.sum(predicted & (labels == 0)))
    fn = int(np.sum(~predicted & (labels == 1)))
    tn = int(np.sum(~predicted & (labels == 0)))
    result = {
        "n": int(len(labels)),
        "n_anomalous": int(labels.sum()),
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / (tp + fn) if tp + fn else None,
        # 2PR / (P + R) written with counts: defined (0) without alarms as long as there are anomalies to miss
        "f1": 2 * tp / (2 * tp + fp + fn) if tp + fn else None,
        "accuracy": (tp + tn) / max(len(labels), 1),
        "confusion": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
    }
    undefined = {}
    if labels.min() == labels.max():
        kind = "anomalous" if labels.max() == 1 else "normal"
        reason = f"all {len(labels)} test labels are {kind}"
        undefined.update(dict.fromkeys(("roc_auc", "pr_auc", "oracle_best_f1"), reason))
        result.update(roc_auc=None, pr_auc=None, oracle_best_f1=None, oracle_threshold=None)
    else:
        result["roc_auc"] = float(roc_auc_score(labels, scores))
        result["pr_auc"] = float(average_precision_score(labels, scores))
        result["oracle_best_f1"], result["oracle_threshold"] = best_f1(labels, scores)
    if tp + fn == 0:
        undefined.update(dict.fromkeys(("recall", "f1"), "no test label is anomalous"))
    if tp + fp == 0:
        undefined["precision"] = f"no test score is above the threshold {threshold:.6g}"
    if undefined:
        result["undefined"] = undefined
    return result


def best_f1(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """The best F1 over all thresholds "score > t" and the threshold reaching it."""
    order = np.argsort(-scores, kind="stable")
    sorted_scores, sorted_labels = scores[order], labels[order]
    # Only the last index of each run of equal scores is a reachable cut.
    distinct = np.r_[np.flatnonzero(np.diff(sorted_scores)), len(sorted_scores) - 1]
    tp = np.cumsum(sorted_labels)[distinct]
    predicted = distinct + 1
    precision = tp / predicted
    recall = tp / max(labels.sum(), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    best = int(np.argmax(f1))
    cut = distinct[best]
    below = sorted_scores[cut + 1] if cut + 1 < len(sorted_scores) else sorted_scores[cut] - 1.0
    return float(f1[best]), float((sorted_scores[cut] + below) / 2)
