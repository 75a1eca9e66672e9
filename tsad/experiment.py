"""The one pipeline: build data -> build model -> fit -> score -> threshold -> evaluate -> plot -> save."""

from __future__ import annotations

import logging
import random
import time
import traceback
from pathlib import Path

import numpy as np

from tsad.errors import UserError

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str) -> str:
    import torch

    if device not in DEVICES and not str(device).startswith("cuda:"):
        raise UserError(f"device must be one of {', '.join(DEVICES)} (or cuda:N), got {device!r}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device={device} but CUDA is not available here; use device=cpu or device=auto")
    return device


def seed_everything(seed: int) -> None:
    import torch

    if not isinstance(seed, int):
        raise UserError(f"seed must be an integer, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def run(config: dict, run_dir: Path) -> dict:
    """Run one experiment from a resolved config into `run_dir`; returns the metrics record.

    The record (metrics.json) is written even when the run fails, with status ERROR/OOM/NAN
    and the message, and the exception is re-raised.
    """
    from tsad.results import environment, write_json_atomic

    run_dir = Path(run_dir)
    record = {"status": "RUNNING", "model": config["model"]["name"], "dataset": config["dataset"]["name"],
              "seed": config["seed"], "tags": list(config.get("tags") or []), "run_dir": str(run_dir)}
    started = time.perf_counter()
    try:
        record.update(_run(config, run_dir))
        record["status"] = "OK"
    except BaseException as error:
        record["status"] = failure_status(error)
        record["error"] = f"{type(error).__name__}: {error}"
        if not isinstance(error, UserError):
            record["traceback"] = traceback.format_exc()
        raise
    finally:
        record["timing"] = {**record.get("timing", {}), "total_seconds": round(time.perf_counter() - started, 3)}
        try:
            record["environment"] = environment()
        except Exception:  # never let bookkeeping hide the real outcome
            pass
        write_json_atomic(run_dir / "metrics.json", record)
    return record


def failure_status(error: BaseException) -> str:
    from tsad.training.trainer import NaNLossError

    if isinstance(error, NaNLossError):
        return "NAN"
    if isinstance(error, MemoryError) or "out of memory" in str(error).lower():
        return "OOM"
    if isinstance(error, KeyboardInterrupt):
        return "INTERRUPTED"
    return "ERROR"


def _run(config: dict, run_dir: Path) -> dict:
    if config["dataset"].get("protocol") == "nab":
        from tsad.data.nab import run_nab_protocol

        return run_nab_protocol(config, run_dir)
    from tsad.data.registry import build_dataset
    from tsad.evaluation.report import evaluate_level, validation_metrics
    from tsad.evaluation.thresholds import check_threshold_data, choose_thresholds, validate_threshold_config
    from tsad.models.base import TorchDetector, build_detector
    from tsad.results import write_history, write_scores

    threshold_config = validate_threshold_config(dict(config["threshold"]))
    device = resolve_device(str(config["device"]))
    seed_everything(config["seed"])
    model_config = dict(config["model"])
    name = model_config.pop("name")

    data = build_dataset(config["dataset"])
    check_threshold_data(threshold_config, data)
    detector = build_detector(name, model_config, normalise=config["dataset"].get("normalise", "standard"),
                              trainer=config["trainer"], device=device, seed=config["seed"], tta=config.get("tta"))
    if isinstance(detector, TorchDetector):
        detector.checkpoint_dir = run_dir / "model" / "checkpoints"
    log.info("data %s: %d train / %d val / %d test series, %d channels, %s level", data.name, len(data.train),
             len(data.val), len(data.test), data.n_channels, data.level)

    started = time.perf_counter()
    detector.fit(data.train, data.val)
    fit_seconds = time.perf_counter() - started
    log.info("fitted %s in %.1f s", name, fit_seconds)

    started = time.perf_counter()
    test_scores = detector.score(data.test)
    score_seconds = time.perf_counter() - started

    levels = label_levels(data)
    thresholds, reference = choose_thresholds(threshold_config, detector, data, levels)
    metrics = {}
    for level in levels:
        labels, scores = level_arrays(data.test, test_scores, level)
        metrics[level] = evaluate_level(labels, scores, thresholds[level], level, data=data.test)
    validation = validation_metrics(detector, data, levels)

    detector.save(run_dir / "model")
    write_scores(run_dir / "scores", "test", data.test, test_scores)
    write_scores(run_dir / "scores", reference.split, reference.data, reference.scores)
    write_history(run_dir / "history.csv", detector.history)
    if config.get("plots", True):
        from tsad.plotting import plot_run

        plot_run(run_dir / "plots", detector, data, test_scores, thresholds, levels)

    return {
        "level": data.level,
        "metrics": metrics,
        "validation": validation,
        "headline": headline(metrics, data.level),
        "threshold": {**threshold_config, "values": thresholds},
        "timing": {"fit_seconds": round(fit_seconds, 3), "score_seconds": round(score_seconds, 3)},
        "n_parameters": count_parameters(detector),
        "device": device,
        "data": {"n_train": len(data.train), "n_val": len(data.val), "n_test": len(data.test),
                 "n_channels": data.n_channels, **data.info},
        "epochs_trained": len(detector.history),
    }


def label_levels(data) -> list[str]:
    """Label levels present in test: the dataset's natural level first."""
    levels = []
    if data.test.series_labels is not None and data.level == "series":
        levels.append("series")
    if data.test.step_labels is not None:
        levels.append("point")
    return levels


def level_arrays(data, scores, level: str) -> tuple[np.ndarray, np.ndarray]:
    if level == "series":
        return data.series_labels, scores.series
    return np.concatenate(data.step_labels), np.concatenate(scores.steps)


def headline(metrics: dict, level: str) -> dict:
    main = metrics.get(level) or next(iter(metrics.values()), {})
    return {k: main.get(k) for k in ("roc_auc", "pr_auc", "f1", "precision", "recall")}


def count_parameters(detector) -> int:
    module = getattr(detector, "module", None)
    if module is None:
        return 0
    return int(sum(p.numel() for p in module.parameters()))
