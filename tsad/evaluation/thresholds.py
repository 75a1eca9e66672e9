"""Threshold policies: each turns scores of train or validation data into one threshold.

No policy ever sees test data; oracle numbers live in metrics.py under oracle_* names.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tsad.errors import UserError

POLICIES = {
    "val_percentile": {"q": 99.0, "source": "val"},
    "contamination": {"rate": 0.05, "source": "val"},
    "sigma": {"k": 3.0, "source": "val"},
}
SOURCES = ("val", "train")


def validate_threshold_config(config: dict) -> dict:
    policy = config.get("policy")
    if policy not in POLICIES:
        raise UserError(f"threshold.policy must be one of {', '.join(POLICIES)}, got {policy!r}")
    params = {k: v for k, v in config.items() if k != "policy"}
    unknown = set(params) - set(POLICIES[policy])
    if unknown:
        raise UserError(f"threshold={policy} has no keys {sorted(unknown)}; known: {', '.join(POLICIES[policy])}")
    params = {**POLICIES[policy], **params}
    if params["source"] not in SOURCES:
        raise UserError(f"threshold.source must be one of {', '.join(SOURCES)}, got {params['source']!r}")
    if policy == "val_percentile" and not (isinstance(params["q"], (int, float)) and 0 <= params["q"] <= 100):
        raise UserError(f"threshold.q must be a percentile between 0 and 100, got {params['q']!r}")
    if policy == "contamination" and not (isinstance(params["rate"], (int, float)) and 0 < params["rate"] < 1):
        raise UserError(f"threshold.rate must be a fraction between 0 and 1, got {params['rate']!r}")
    if policy == "sigma" and not isinstance(params["k"], (int, float)):
        raise UserError(f"threshold.k must be a number, got {params['k']!r}")
    return {"policy": policy, **params}


def choose_threshold(config: dict, scores: np.ndarray) -> float:
    """The threshold for `scores` (from the configured source split) under the configured policy."""
    config = validate_threshold_config(config)
    scores = np.asarray(scores, dtype=np.float64).ravel()
    scores = scores[np.isfinite(scores)]
    if len(scores) == 0:
        raise UserError("no finite scores to choose a threshold from; check the validation split")
    if config["policy"] == "val_percentile":
        return float(np.percentile(scores, config["q"]))
    if config["policy"] == "contamination":
        return float(np.quantile(scores, 1 - config["rate"]))
    return float(scores.mean() + config["k"] * scores.std())


@dataclass
class ReferenceScores:
    """The split whose scores set the thresholds (written to the run folder as scores/<split>_*.csv)."""

    split: str
    data: object
    scores: object


def choose_thresholds(config: dict, detector, data, levels: list[str]) -> tuple[dict, ReferenceScores]:
    """One threshold per label level from the configured source split's scores (never test)."""
    config = validate_threshold_config(config)
    split = config["source"]
    source = data.val if split == "val" else data.train
    scores = detector.score(source)
    thresholds = {}
    for level in levels:
        reference = scores.series if level == "series" else np.concatenate(scores.steps)
        thresholds[level] = choose_threshold(config, reference)
    return thresholds, ReferenceScores(split, source, scores)
