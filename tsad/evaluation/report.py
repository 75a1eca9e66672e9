"""All metrics reported for one label level of a run, and what a hyperparameter search may optimise.

Point level adds, to the binary metrics of metrics.py, VUS-PR / VUS-ROC and the range,
event, affiliation and point-adjusted metrics of range_metrics.py. Like TSB-AD, these are
computed per test series (one file of a corpus) and averaged over the series that hold
both normal and anomalous steps; the binary metrics pool every step. The thresholded ones
come twice: at the run's threshold, and under oracle_* names at the threshold with the
best point F1 on the test labels (a diagnostic, never a result to select on).
"""

from __future__ import annotations

import numpy as np

from tsad.evaluation.metrics import binary_metrics
from tsad.evaluation.range_metrics import range_event_metrics
from tsad.evaluation.vus import FALLBACK_WINDOW, default_window, vus_metrics
from tsad.run_warnings import RunWarnings

THRESHOLDED = ("range_precision", "range_recall", "range_f1", "event_f1", "affiliation_precision",
               "affiliation_recall", "affiliation_f1", "pa_f1")
RANGE_AWARE = ("vus_pr", "vus_roc", *THRESHOLDED, *(f"oracle_{name}" for name in THRESHOLDED))
# The metric names each level reports, for tables that look metrics up by name.
LEVEL_METRICS = {
    "series": ("roc_auc", "pr_auc", "precision", "recall", "f1", "accuracy", "oracle_best_f1"),
    "point": ("roc_auc", "pr_auc", "precision", "recall", "f1", "accuracy", "oracle_best_f1", *RANGE_AWARE),
}

WINDOW_RULES = {
    "given": "the configured window",
    "period": "the dominant period of each test series (first channel), else 125, as TSB-AD",
    "fallback": f"{FALLBACK_WINDOW} (no series values to derive a period from)",
}


NO_SCORED_SERIES = "no {split} series holds both normal and anomalous steps"


def evaluate_level(labels: np.ndarray, scores: np.ndarray, threshold: float, level: str, data=None,
                   vus_window: int | None = None, warnings: RunWarnings | None = None) -> dict:
    """Metrics of test `scores` against `labels` at the chosen `threshold` for level 'series' or 'point'.

    `data` is the test SeriesSet the concatenated point-level `labels` come from: it splits
    them into series and gives each its VUS window. Without it the steps are one series and
    the window is `vus_window`, else the fallback of 125. Undefined metrics are None, with the
    reason under `undefined`; `warnings` gets one warning per reason, and one when every score is the same.
    """
    metrics = binary_metrics(labels, scores, threshold)
    if level == "point":
        lengths = [len(labels)] if data is None else data.lengths
        values = None if data is None else data.values
        range_aware = range_aware_metrics(labels, scores, threshold, metrics.get("oracle_threshold"), lengths,
                                          values, vus_window)
        if not range_aware["series_scored"]:
            reason = NO_SCORED_SERIES.format(split="test")
            metrics.setdefault("undefined", {}).update(dict.fromkeys(RANGE_AWARE, reason))
        metrics.update(range_aware)
    if warnings is not None:
        warn_about(level, metrics, np.asarray(scores, dtype=np.float64).ravel(), warnings)
    return metrics


def warn_about(level: str, metrics: dict, scores: np.ndarray, warnings: RunWarnings, split: str = "test") -> None:
    """One warning per reason that leaves metrics of `split` undefined, and one when its scores rank nothing."""
    where = f"{level} level" if split == "test" else f"{split} {level} level"
    undefined = metrics.get("undefined", {})
    for reason in dict.fromkeys(undefined.values()):
        names = [name for name, why in undefined.items() if why == reason]
        if set(RANGE_AWARE) <= set(names):
            names = [name for name in names if name not in RANGE_AWARE] + ["the VUS, range, event, affiliation and "
                                                                           "PA metrics"]
        warnings.add("undefined_metrics", f"{where}: {', '.join(names)} undefined (null): {reason}")
    if len(scores) > 1 and scores.min() == scores.max():
        warnings.add("constant_scores", f"{where}: every {split} score is {scores[0]:.6g}, so the scores rank "
                                        "nothing (ROC-AUC 0.5 is chance); check the data for constant channels")


def range_aware_metrics(labels, scores, threshold: float, oracle_threshold: float | None, lengths,
                        values=None, vus_window: int | None = None) -> dict:
    """VUS and range/event/affiliation/PA metrics, averaged over the series that hold both classes."""
    parts = list(_series_parts(labels, scores, lengths))
    scored = [i for i, (series_labels, _) in enumerate(parts) if 0 < series_labels.sum() < len(series_labels)]
    rule = "given" if vus_window is not None else "fallback" if values is None else "period"
    result = {name: None for name in RANGE_AWARE}
    result.update(series_scored=len(scored), vus_window=None, vus_window_rule=WINDOW_RULES[rule])
    if not scored:
        return result
    windows = [vus_window if rule == "given" else FALLBACK_WINDOW if rule == "fallback" else default_window(values[i])
               for i in scored]
    per_series = []
    for i, window in zip(scored, windows):
        series_labels, series_scores = parts[i]
        row = {**vus_metrics(series_labels, series_scores, window),
               **range_event_metrics(series_labels, series_scores, threshold)}
        if oracle_threshold is not None:
            oracle = range_event_metrics(series_labels, series_scores, oracle_threshold)
            row.update({f"oracle_{name}": value for name, value in oracle.items()})
        per_series.append(row)
    for name in per_series[0]:
        result[name] = float(np.mean([row[name] for row in per_series]))
    result["vus_window"] = int(windows[0]) if len(set(windows)) == 1 else [int(w) for w in windows]
    return result


def _series_parts(labels, scores, lengths):
    labels = np.asarray(labels).astype(np.int8).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if int(np.sum(lengths)) != len(labels):
        raise ValueError(f"series lengths add up to {int(np.sum(lengths))} but there are {len(labels)} labels")
    bounds = np.cumsum(lengths)[:-1]
    return zip(np.split(labels, bounds), np.split(scores, bounds))


def headline(metrics: dict, level: str) -> dict:
    """The few numbers printed after a run and shown first in tables: the natural level's ranking and F1."""
    main = metrics.get(level) or next(iter(metrics.values()), {})
    return {k: main.get(k) for k in ("roc_auc", "pr_auc", "f1", "precision", "recall")}


def validation_metrics(history: list[dict], labelled_val, scores, levels: list[str],
                       warnings: RunWarnings | None = None) -> dict:
    """What a search may optimise without touching test.

    The best validation loss of training (`history`), if any; with a labelled validation split and
    its `scores`, also its ROC-AUC and PR-AUC per level, and VUS-PR at the point level. Undefined ones are
    None with the reason under `undefined`, and a warning each, as for test.
    """
    result = {}
    losses = [h["val_loss"] for h in history if "val_loss" in h]
    if losses:
        result["val_loss"] = min(losses)
    if labelled_val is None:
        return result
    labelled = {}
    for level in levels:
        if level == "series" and labelled_val.series_labels is not None:
            level_scores = np.asarray(scores.series, dtype=np.float64)
            labelled[level] = _ranking_metrics(labelled_val.series_labels, level_scores)
        elif level == "point" and labelled_val.step_labels is not None:
            labels, level_scores = np.concatenate(labelled_val.step_labels), np.concatenate(scores.steps)
            labelled[level] = _ranking_metrics(labels, level_scores)
            parts = list(_series_parts(labels, level_scores, labelled_val.lengths))
            vus = [vus_metrics(y, s, default_window(x))["vus_pr"]
                   for (y, s), x in zip(parts, labelled_val.values) if 0 < y.sum() < len(y)]
            labelled[level]["vus_pr"] = float(np.mean(vus)) if vus else None
            if not vus:
                labelled[level].setdefault("undefined", {})["vus_pr"] = NO_SCORED_SERIES.format(split="labelled_val")
        else:
            continue
        if warnings is not None:
            warn_about(level, labelled[level], level_scores, warnings, split="labelled_val")
    result["labelled_val"] = labelled
    return result


def _ranking_metrics(labels, scores) -> dict:
    from sklearn.metrics import average_precision_score, roc_auc_score

    labels = np.asarray(labels).astype(int).ravel()
    if labels.min() == labels.max():
        reason = f"all {len(labels)} labelled_val labels are {'anomalous' if labels.max() == 1 else 'normal'}"
        return {"roc_auc": None, "pr_auc": None, "undefined": dict.fromkeys(("roc_auc", "pr_auc"), reason)}
    return {"roc_auc": float(roc_auc_score(labels, scores)), "pr_auc": float(average_precision_score(labels, scores))}
