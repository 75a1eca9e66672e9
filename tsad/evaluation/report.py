"""All metrics reported for one label level of a run."""

from __future__ import annotations

import numpy as np

from tsad.evaluation.metrics import binary_metrics


def evaluate_level(labels: np.ndarray, scores: np.ndarray, threshold: float, level: str) -> dict:
    """Metrics of test `scores` against `labels` at the chosen `threshold` for level 'series' or 'point'."""
    return binary_metrics(labels, scores, threshold)


def validation_metrics(detector, data, levels: list[str]) -> dict:
    """What a search may optimise without touching test: the best validation loss of training, if any."""
    losses = [h["val_loss"] for h in detector.history if "val_loss" in h]
    return {"val_loss": min(losses)} if losses else {}
