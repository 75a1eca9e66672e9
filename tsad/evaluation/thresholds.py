"""Threshold policies: each turns scores of non-test data (or a given number) into one threshold per level.

- val_percentile: the q-th percentile of validation (or train) scores
- contamination:  the (1 - rate) quantile of validation (or train) scores
- sigma:          mean + k * std of validation (or train) scores
- val_best_f1:    the threshold with the best F1 on the dataset's labelled validation split
- fixed:          a given value

No policy ever sees test data; numbers that use test labels live in metrics.py and
report.py under oracle_* names. With source=train, the scores come from the detector's
score_train (score_split): out of sample for detectors that memorise their train windows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tsad.errors import UserError

POLICIES = {
    "val_percentile": {"q": 99.0, "source": "val"},
    "contamination": {"rate": 0.05, "source": "val"},
    "sigma": {"k": 3.0, "source": "val"},
    "val_best_f1": {},
    "fixed": {"value": None},
}
SOURCES = ("val", "train")
LEVELS = ("series", "point")
LABELLED_VAL_HINT = ("set the dataset option dataset.labelled_val=<fraction or count of series> (synthetic: of n_test; "
                     "ECG: of the normal TRAIN beats)")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


def validate_threshold_config(config: dict) -> dict:
    """The threshold config with defaults filled in; a one-line UserError on anything wrong."""
    policy = config.get("policy")
    if policy not in POLICIES:
        raise UserError(f"threshold.policy must be one of {', '.join(POLICIES)}, got {policy!r}")
    params = {k: v for k, v in config.items() if k != "policy"}
    unknown = set(params) - set(POLICIES[policy])
    if unknown:
        known = ", ".join(POLICIES[policy]) or "none"
        raise UserError(f"threshold={policy} has no keys {sorted(unknown)}; known: {known}")
    params = {**POLICIES[policy], **params}
    if "source" in params and params["source"] not in SOURCES:
        raise UserError(f"threshold.source must be one of {', '.join(SOURCES)}, got {params['source']!r}")
    if policy == "val_percentile" and not (_is_number(params["q"]) and 0 <= params["q"] <= 100):
        raise UserError(f"threshold.q must be a percentile between 0 and 100, got {params['q']!r}")
    if policy == "contamination" and not (_is_number(params["rate"]) and 0 < params["rate"] < 1):
        raise UserError(f"threshold.rate must be a fraction between 0 and 1, got {params['rate']!r}")
    if policy == "sigma" and not _is_number(params["k"]):
        raise UserError(f"threshold.k must be a number, got {params['k']!r}")
    if policy == "fixed":
        params["value"] = _fixed_values(params["value"])
    return {"policy": policy, **params}


def _fixed_values(value):
    """A number for every level, or a mapping {series: number, point: number}."""
    if _is_number(value):
        return float(value)
    if isinstance(value, dict) and value and set(value) <= set(LEVELS) and all(_is_number(v) for v in value.values()):
        return {level: float(v) for level, v in value.items()}
    raise UserError(f"threshold=fixed needs threshold.value=<number> (or a mapping {{series: x, point: y}}), "
                    f"got {value!r}")


def choose_threshold(config: dict, scores: np.ndarray) -> float:
    """The threshold for the scores of the source split under a score-based policy."""
    config = validate_threshold_config(config)
    if "source" not in config:
        raise ValueError(f"threshold={config['policy']} is not set from the scores of one split")
    scores = _finite(scores)
    if config["policy"] == "val_percentile":
        return float(np.percentile(scores, config["q"]))
    if config["policy"] == "contamination":
        return float(np.quantile(scores, 1 - config["rate"]))
    return float(scores.mean() + config["k"] * scores.std())


def best_f1_threshold(labels: np.ndarray, scores: np.ndarray, level: str) -> float:
    """The threshold with the best F1 of `scores > threshold` on the labelled validation split."""
    from tsad.evaluation.metrics import best_f1

    labels = np.asarray(labels).astype(int).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    finite = np.isfinite(scores)
    labels, scores = labels[finite], scores[finite]
    if len(scores) == 0:
        raise UserError("no finite scores on the labelled validation split to choose a threshold from")
    if labels.min() == labels.max():
        kind = "anomalous" if labels.max() == 1 else "normal"
        raise UserError(f"threshold=val_best_f1: every {level} label of the labelled validation split is {kind}; "
                        "make dataset.labelled_val larger")
    return best_f1(labels, scores)[1]


def _finite(scores) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64).ravel()
    scores = scores[np.isfinite(scores)]
    if len(scores) == 0:
        raise UserError("no finite scores to choose a threshold from; check the validation split")
    return scores


@dataclass
class ReferenceScores:
    """The split whose scores set the thresholds (written to the run folder as scores/<split>_*.csv)."""

    split: str
    data: object
    scores: object


def check_threshold_data(config: dict, data) -> None:
    """Fail before training when the policy needs a split the dataset does not have."""
    if config["policy"] == "val_best_f1" and data.labelled_val is None:
        raise UserError(f"threshold=val_best_f1 needs a labelled validation split, and dataset {data.name!r} "
                        f"has none: {LABELLED_VAL_HINT}")


def choose_thresholds(config: dict, detector, data, levels: list[str]) -> tuple[dict, ReferenceScores]:
    """One threshold per label level, from train, validation or labelled validation data (never test)."""
    config = validate_threshold_config(config)
    check_threshold_data(config, data)
    policy = config["policy"]
    split = {"val_best_f1": "labelled_val", "fixed": "val"}.get(policy, config.get("source"))
    source = getattr(data, split)
    scores = score_split(detector, source, split)  # fixed scores val only to record its scores in the run folder
    thresholds = {}
    for level in levels:
        reference = scores.series if level == "series" else np.concatenate(scores.steps)
        if policy == "fixed":
            value = config["value"]
            if isinstance(value, dict) and level not in value:
                raise UserError(f"threshold=fixed has no value for the {level} level; add threshold.value.{level}")
            thresholds[level] = value[level] if isinstance(value, dict) else value
        elif policy == "val_best_f1":
            labels = _labels(source, level)
            thresholds[level] = best_f1_threshold(labels, reference, level)
        else:
            thresholds[level] = choose_threshold(config, reference)
    return thresholds, ReferenceScores(split, source, scores)


def score_split(detector, source, split: str):
    """Scores of one non-test split. The train split is the one the detector was fitted on, so it is
    scored through detector.score_train (out of sample for detectors that memorise their train data,
    e.g. kNN, whose train windows would otherwise be their own nearest neighbours)."""
    return detector.score_train(source) if split == "train" else detector.score(source)


def _labels(split, level: str) -> np.ndarray:
    labels = split.series_labels if level == "series" else split.step_labels
    if labels is None:
        raise UserError(f"threshold=val_best_f1: the labelled validation split has no {level} labels")
    return labels if level == "series" else np.concatenate(labels)
