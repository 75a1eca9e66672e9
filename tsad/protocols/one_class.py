"""The one-class protocol (`dataset.protocol: one_class`): every class of a classification data set is the normal
class in turn (Mauceri, Sweeney & McDermott, Pattern Recognition 2020).

For each class c (the dataset's `one_class_tasks()`, e.g. tsad/data/ecg.py): a fresh detector, seeded with the run's
seed, trains on class c's TRAIN rows only (they are its validation data as well) and scores every TEST row, whose
label is 1 when its class is not c. ROC-AUC and PR-AUC are taken per class; the headline
`one_class_roc_auc_mean` is their mean over classes. No threshold is chosen: the protocol's measures are
threshold-free.

`validation.one_class_train_roc_auc_mean` reads TRAIN only, for choosing settings: per class, the class's TRAIN
rows scored by the detector's score_train (out of sample where the detector memorises its training rows, e.g.
leave-one-out for knn and series_nn) against the other classes' TRAIN rows, ROC-AUC, mean over classes. Where a
detector cannot score its training rows out of sample (an isolation forest whose every tree saw every row), that
class's value is null with a warning, and so is the mean; the test measures are unaffected.

The run folder holds per_file.csv (one row per class), scores/test_class<c>_*.csv, model/class<c>/ (each class's
detector) and history.csv (with a `class` column).
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd

from tsad.errors import UserError
from tsad.models.base import detector_from_settings
from tsad.pipeline import Pipeline
from tsad.protocols import PROTOCOLS, Protocol
from tsad.protocols.offline import check_postprocess
from tsad.run_folder import RunFolder
from tsad.run_warnings import RunWarnings
from tsad.runtime import resolve_device, seed_everything

log = logging.getLogger(__name__)


@PROTOCOLS.register("one_class")
class OneClass(Protocol):
    def check(self, settings) -> None:
        check_postprocess(settings.postprocess, settings.dataset.level)
        super().check(settings)

    def run(self, settings, folder: RunFolder, epoch_callbacks: tuple = ()) -> dict:
        device = resolve_device(settings.device)
        tasks = settings.dataset.one_class_tasks()
        log.info("one-class protocol: %s on %d classes of %s", settings.model.name, len(tasks), settings.dataset.name)
        per_class, history, detector, warnings = [], [], None, RunWarnings()
        for task in tasks:
            seed_everything(settings.seed)
            detector = detector_from_settings(settings, device, epoch_callbacks=epoch_callbacks,
                                              checkpoint_dir=folder.checkpoints / f"class{task.normal_class}")
            pipeline = Pipeline(detector, settings.postprocess)
            started = time.perf_counter()
            pipeline.fit(task.train, task.train)
            fit_seconds = time.perf_counter() - started
            started = time.perf_counter()
            test_scores = pipeline.score(task.test)
            score_seconds = time.perf_counter() - started
            train_roc_auc = left_out_roc_auc(pipeline, task, warnings)
            labels = task.test.series_labels
            per_class.append({
                "class": task.normal_class, "train_rows": len(task.train),
                "test_normal": int((labels == 0).sum()), "test_anomalous": int(labels.sum()),
                "roc_auc": roc_auc(labels, test_scores.series), "pr_auc": pr_auc(labels, test_scores.series),
                "train_roc_auc": train_roc_auc,
                "fit_seconds": round(fit_seconds, 3), "score_seconds": round(score_seconds, 3)})
            log.info("class %d: ROC-AUC %.4f (train, left out: %s); fit %.1f s, score %.1f s", task.normal_class,
                     per_class[-1]["roc_auc"], train_roc_auc, fit_seconds, score_seconds)
            history += [{"class": task.normal_class, **record} for record in detector.history]
            detector.save(folder.model / f"class{task.normal_class}")
            folder.write_scores(f"test_class{task.normal_class}", task.test, test_scores)

        folder.per_file.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(per_class).to_csv(folder.per_file, index=False)
        folder.write_history(history)
        by_class = {str(row["class"]): {key: row[key] for key in ("roc_auc", "pr_auc", "train_rows", "test_normal",
                                                                  "test_anomalous")} for row in per_class}
        series = {"one_class_roc_auc_mean": mean_of(per_class, "roc_auc"),
                  "one_class_pr_auc_mean": mean_of(per_class, "pr_auc"),
                  "one_class_roc_auc_min": min(row["roc_auc"] for row in per_class), "per_class": by_class}
        return {
            "level": "series",
            "metrics": {"series": series},
            "validation": {"one_class_train_roc_auc_mean": mean_of(per_class, "train_roc_auc"),
                           "per_class": {str(row["class"]): row["train_roc_auc"] for row in per_class}},
            "headline": {key: series[key] for key in ("one_class_roc_auc_mean", "one_class_pr_auc_mean",
                                                      "one_class_roc_auc_min")},
            "threshold": {"applied": False, "rule": "none: the one-class protocol reports threshold-free measures"},
            "timing": {"fit_seconds": round(sum(row["fit_seconds"] for row in per_class), 3),
                       "score_seconds": round(sum(row["score_seconds"] for row in per_class), 3)},
            "n_parameters": detector.n_parameters,
            "device": device,
            "data": {"classes": [row["class"] for row in per_class], "n_train": sum(len(t.train) for t in tasks),
                     "n_test": len(tasks[0].test), "n_channels": tasks[0].test.n_channels},
            "epochs_trained": len([record for record in history if "epoch" in record]),
            "warnings": warnings.entries,
        }


def left_out_roc_auc(pipeline: Pipeline, task, warnings: RunWarnings) -> float | None:
    """ROC-AUC on TRAIN only: the class's rows scored out of sample (score_train) against the other classes' rows.
    None, with a warning, where the detector cannot score its training rows out of sample (e.g. too few of them)."""
    try:
        own = pipeline.score_train(task.train).series
    except UserError as error:
        warnings.add("one_class_validation", f"class {task.normal_class}: no TRAIN-only ROC-AUC: {error}")
        return None
    scores = np.concatenate([own, pipeline.score(task.other_train).series])
    return roc_auc(np.concatenate([task.train.series_labels, task.other_train.series_labels]), scores)


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores))


def pr_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(labels, scores))


def mean_of(rows: list[dict], key: str) -> float | None:
    """The mean over classes; None when a class has no value."""
    values = [row[key] for row in rows]
    return None if any(value is None for value in values) else float(np.mean(values))
