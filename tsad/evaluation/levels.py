"""Label levels: which of series / point labels a test split has, and the label and score arrays of each."""

from __future__ import annotations

import numpy as np


def label_levels(data) -> list[str]:
    """Label levels present in test: the dataset's natural level first."""
    levels = []
    if data.test.series_labels is not None and data.level == "series":
        levels.append("series")
    if data.test.step_labels is not None:
        levels.append("point")
    return levels


def level_arrays(data, scores, level: str) -> tuple[np.ndarray | None, np.ndarray]:
    """Labels and scores of one split at one level: one per series, or every step of every series pooled.

    Labels are None where the split has none at that level (unlabelled data still gets thresholds from its scores).
    """
    if level == "series":
        labels = None if data.series_labels is None else np.asarray(data.series_labels)
        return labels, np.asarray(scores.series)
    labels = None if data.step_labels is None else np.concatenate(data.step_labels)
    return labels, np.concatenate(scores.steps)
