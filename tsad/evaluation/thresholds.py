"""Threshold policies: each turns scores of non-test data (or a given number) into one threshold per level.

- val_percentile: the q-th percentile of validation (or train) scores
- contamination:  the (1 - rate) quantile of validation (or train) scores
- sigma:          mean + k * std of validation (or train) scores
- val_best_f1:    the threshold with the best F1 on the dataset's labelled validation split
- fixed:          a given value

No policy ever sees test data; numbers that use test labels live in metrics.py and
report.py under oracle_* names. The protocol scores the reference split once (with source=train
through the detector's score_train: out of sample for detectors that memorise their train
windows) and hands the scores in.
"""

from __future__ import annotations

import numpy as np

from tsad.errors import UserError
from tsad.evaluation.levels import level_arrays

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


def check_threshold_data(config: dict, data) -> None:
    """Fail before training when the policy needs a split the dataset does not have."""
    if config["policy"] == "val_best_f1" and data.labelled_val is None:
        raise UserError(f"threshold=val_best_f1 needs a labelled validation split, and dataset {data.name!r} "
                        f"has none: {LABELLED_VAL_HINT}")


def reference_split(config: dict) -> str:
    """The split whose scores set the thresholds: labelled_val, val or train (fixed records val's scores)."""
    return {"val_best_f1": "labelled_val", "fixed": "val"}.get(config["policy"], config.get("source"))


def choose_thresholds(config: dict, split, scores, levels: list[str]) -> dict:
    """One threshold per label level from the `scores` of the reference split `split` (never test)."""
    config = validate_threshold_config(config)
    policy = config["policy"]
    thresholds = {}
    for level in levels:
        if policy == "fixed":
            value = config["value"]
            if isinstance(value, dict) and level not in value:
                raise UserError(f"threshold=fixed has no value for the {level} level; add threshold.value.{level}")
            thresholds[level] = value[level] if isinstance(value, dict) else value
        elif policy == "val_best_f1":
            if (split.series_labels if level == "series" else split.step_labels) is None:
                raise UserError(f"threshold=val_best_f1: the labelled validation split has no {level} labels")
            thresholds[level] = best_f1_threshold(*level_arrays(split, scores, level), level)
        else:
            thresholds[level] = choose_threshold(config, level_arrays(split, scores, level)[1])
    return thresholds

