"""The offline protocol: fit on train (val for early stopping), score test, threshold on non-test data.

Every split is scored once: test, the threshold policy's reference split (train, val or labelled_val), and the
labelled validation split when there is one (for what a search may optimise). Evaluation takes those scores;
only the scoring pipeline (tsad/pipeline.py: detector, post-processing, thresholds) touches the detector.

With `postprocess=` (point-level data only) every split's step scores go through the same causal
post-processing before thresholds and metrics, series by series: the threshold is then chosen on post-processed
reference scores, and tsad-predict applies it to new data as well.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from tsad.data.series import DatasetSplits, SeriesSet
from tsad.errors import UserError
from tsad.evaluation.levels import label_levels, level_arrays
from tsad.evaluation.report import evaluate_level, headline, validation_metrics
from tsad.evaluation.thresholds import Fixed, ThresholdPolicy, ValBestF1, check_threshold_data
from tsad.model_inputs import ModelInputs
from tsad.models.base import Scores, detector_from_settings
from tsad.models.window_scoring import WindowScorer
from tsad.pipeline import Pipeline
from tsad.postprocess import PostProcess
from tsad.protocols import PROTOCOLS, Protocol
from tsad.run_folder import RunFolder
from tsad.runtime import resolve_device, seed_everything

log = logging.getLogger(__name__)


@PROTOCOLS.register("offline")
class Offline(Protocol):
    def check(self, settings) -> None:
        check_postprocess(settings.postprocess, settings.dataset.level)
        super().check(settings)

    def run(self, settings, folder: RunFolder, epoch_callbacks: tuple = ()) -> dict:
        device = resolve_device(settings.device)
        seed_everything(settings.seed)

        # The detector first: its settings are checked before any data is read or generated.
        # history.csv after every epoch as well, so that a long run shows how far it got; rewritten at the end
        detector = detector_from_settings(settings, device, checkpoint_dir=folder.checkpoints,
                                          epoch_callbacks=(folder.write_history, *epoch_callbacks))
        pipeline = Pipeline(detector, settings.postprocess)
        data = settings.dataset.build()
        data.note_constant_channels()
        data.note_padding(detector.window if isinstance(detector, WindowScorer) else None)
        warnings = data.warnings  # what the data did on its own and its flat channels; evaluation adds its own
        policy = settings.threshold
        check_threshold_data(policy, data)
        log.info("data %s: %d train / %d val / %d test series, %d channels, %s level", data.name, len(data.train),
                 len(data.val), len(data.test), data.n_channels, data.level)

        started = time.perf_counter()
        pipeline.fit(data.train, data.val)
        fit_seconds = time.perf_counter() - started
        log.info("fitted %s in %.1f s", detector.name, fit_seconds)

        started = time.perf_counter()
        test_scores = pipeline.score(data.test)
        score_seconds = time.perf_counter() - started

        levels = label_levels(data)
        reference = score_reference(policy, pipeline, data)
        thresholds = pipeline.choose_thresholds(policy, reference.data, reference.scores,
                                                threshold_levels(policy, data, levels))
        metrics = {}
        for level in levels:
            labels, level_scores = level_arrays(data.test, test_scores, level)
            metrics[level] = evaluate_level(labels, level_scores, thresholds[level], level, data=data.test,
                                            warnings=warnings)
        labelled_val_scores = reference.scores if reference.split == "labelled_val" else None
        if data.labelled_val is not None and labelled_val_scores is None:
            labelled_val_scores = pipeline.score(data.labelled_val)
        validation = validation_metrics(detector.history, data.labelled_val, labelled_val_scores, levels, warnings)

        pipeline.save(folder.model, ModelInputs.of(data))
        folder.write_scores("test", data.test, test_scores, thresholds)
        folder.write_scores(reference.split, reference.data, reference.scores, thresholds)
        folder.write_history(detector.history)
        if settings.plots:
            from tsad.plotting import plot_run

            plot_run(folder.plots, detector, data, test_scores, thresholds, levels)

        return {
            "level": data.level,
            "metrics": metrics,
            "validation": validation,
            "headline": headline(metrics, data.level),
            "threshold": {**policy.record(), "values": thresholds},
            "timing": {"fit_seconds": round(fit_seconds, 3), "score_seconds": round(score_seconds, 3)},
            "n_parameters": detector.n_parameters,
            "device": device,
            "data": {"n_train": len(data.train), "n_val": len(data.val), "n_test": len(data.test),
                     "n_channels": data.n_channels, **data.info},
            "epochs_trained": len(detector.history),
            "warnings": warnings.entries,
        }


def threshold_levels(policy: ThresholdPolicy, data: DatasetSplits, levels: list[str]) -> list[str]:
    """The levels to choose a threshold for: those test has labels of, and the data's own level, whose threshold
    a saved model needs to raise alarms on new data even when test has no labels (unless the policy cannot set
    it: val_best_f1 needs labels, a fixed mapping may leave the level out)."""
    if data.level in levels or isinstance(policy, ValBestF1) or (
            isinstance(policy, Fixed) and not policy.sets(data.level)):
        return levels
    return [*levels, data.level]


@dataclass
class Reference:
    """The split whose scores set the thresholds (written to the run folder as scores/<split>_*.csv)."""

    split: str
    data: SeriesSet
    scores: Scores


def score_reference(policy: ThresholdPolicy, pipeline: Pipeline, data: DatasetSplits) -> Reference:
    """The scores of the threshold policy's reference split (never test).

    The train split is the one the detector was fitted on, so it is scored through score_train (out of
    sample for detectors that memorise their train data, e.g. kNN, whose train windows would otherwise
    be their own nearest neighbours).
    """
    check_threshold_data(policy, data)
    split = policy.reference
    source = getattr(data, split)
    scores = pipeline.score_train(source) if split == "train" else pipeline.score(source)
    return Reference(split, source, scores)


def check_postprocess(postprocess: PostProcess, level: str | None) -> None:
    """Post-processing transforms step scores in time order: point-level data only."""
    if postprocess.active and level != "point":
        raise UserError(f"postprocess={postprocess.name} transforms step scores in time order, so it needs "
                        f"point-level data (dataset.level=point, e.g. dataset=synthetic_points, csv or nab), "
                        f"got dataset.level={level}; or set postprocess=none")
