"""Threshold policies (the `threshold` config group): each turns scores of non-test data, or a given number, into
one threshold per label level.

- val_percentile: the q-th percentile of validation (or train) scores
- contamination:  the (1 - rate) quantile of validation (or train) scores
- sigma:          mean + k * std of validation (or train) scores
- val_best_f1:    the threshold with the best F1 on the dataset's labelled validation split
- fixed:          a given value

Each policy is a typed section whose fields are its keys (conf/threshold/<policy>.yaml mirrors it), found by
`threshold.policy`. No policy ever sees test data; numbers that use test labels live in metrics.py and report.py
under oracle_* names. The protocol scores the policy's reference split once (train through the detector's
score_train: out of sample for detectors that memorise their train windows) and hands the scores in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from tsad.errors import UserError
from tsad.evaluation.levels import level_arrays
from tsad.settings.fields import Section, setting

SOURCES = ("val", "train")
LEVELS = ("series", "point")
LABELLED_VAL_HINT = ("set the dataset option dataset.labelled_val=<fraction or count of series> (synthetic: of n_test; "
                     "ECG: of the normal TRAIN beats)")
POLICIES: dict[str, type[ThresholdPolicy]] = {}


def policy(name: str):
    """Class decorator: make a threshold policy available as `threshold=<name>`."""

    def add(cls):
        cls.name = name
        POLICIES[name] = cls
        return cls

    return add


@dataclass(frozen=True)
class ThresholdPolicy(Section):
    """A threshold policy: `reference` names the split whose scores it reads (never test)."""

    name: ClassVar[str] = "policy"
    passthrough: ClassVar[tuple[str, ...]] = ("policy",)

    @property
    def reference(self) -> str:
        return self.source

    def needs_labelled_val(self) -> bool:
        return self.reference == "labelled_val"

    def threshold(self, split, scores, level: str) -> float:
        """The threshold of one level from the reference split `split` (a SeriesSet) and its `scores`."""
        return self.from_scores(level_arrays(split, scores, level)[1])

    def from_scores(self, scores: np.ndarray) -> float:
        """The threshold from unlabelled scores of non-test data (each policy but val_best_f1)."""
        raise UserError(f"threshold={self.name} needs labelled scores, not unlabelled ones")

    def record(self) -> dict:
        """The policy as metrics.json states it."""
        return {"policy": self.name, **self.as_dict()}


@policy("val_percentile")
@dataclass(frozen=True)
class ValPercentile(ThresholdPolicy):
    q: float = setting(99.0, at_least=0, at_most=100)
    source: str = setting("val", choices=SOURCES)

    def from_scores(self, scores: np.ndarray) -> float:
        return float(np.percentile(finite(scores), self.q))


@policy("contamination")
@dataclass(frozen=True)
class Contamination(ThresholdPolicy):
    rate: float = setting(0.05, above=0, below=1)
    source: str = setting("val", choices=SOURCES)

    def from_scores(self, scores: np.ndarray) -> float:
        return float(np.quantile(finite(scores), 1 - self.rate))


@policy("sigma")
@dataclass(frozen=True)
class Sigma(ThresholdPolicy):
    k: float = setting(3.0, finite=True)
    source: str = setting("val", choices=SOURCES)

    def from_scores(self, scores: np.ndarray) -> float:
        scores = finite(scores)
        return float(scores.mean() + self.k * scores.std())


@policy("val_best_f1")
@dataclass(frozen=True)
class ValBestF1(ThresholdPolicy):
    @property
    def reference(self) -> str:
        return "labelled_val"

    def threshold(self, split, scores, level: str) -> float:
        if (split.series_labels if level == "series" else split.step_labels) is None:
            raise UserError(f"threshold=val_best_f1: the labelled validation split has no {level} labels")
        return best_f1_threshold(*level_arrays(split, scores, level), level)


@policy("fixed")
@dataclass(frozen=True)
class Fixed(ThresholdPolicy):
    """A number for every level, or a mapping {series: number, point: number}."""

    value: float | dict[str, float] | None = setting(None, finite=True)

    def __post_init__(self) -> None:
        value = self.value
        if value is None or (isinstance(value, dict) and not (value and set(value) <= set(LEVELS))):
            raise UserError(f"threshold=fixed needs threshold.value=<number> (or a mapping {{series: x, point: y}}), "
                            f"got {value!r}")

    @property
    def reference(self) -> str:
        return "val"  # whose scores the run folder records beside test's

    def sets(self, level: str) -> bool:
        return not isinstance(self.value, dict) or level in self.value

    def threshold(self, split, scores, level: str) -> float:
        if not self.sets(level):
            raise UserError(f"threshold=fixed has no value for the {level} level; add threshold.value.{level}")
        return self.value[level] if isinstance(self.value, dict) else self.value

    def from_scores(self, scores: np.ndarray) -> float:
        return self.threshold(None, None, "point")


def threshold_policy(mapping: dict) -> ThresholdPolicy:
    """The threshold config group as its policy's section; a one-line UserError on anything wrong."""
    name = (mapping or {}).get("policy")
    if name not in POLICIES:
        raise UserError(f"threshold.policy must be one of {', '.join(POLICIES)}, got {name!r}")
    return POLICIES[name].parse(mapping, "threshold", f"threshold {name}")


def best_f1_threshold(labels: np.ndarray, scores: np.ndarray, level: str) -> float:
    """The threshold with the best F1 of `scores > threshold` on the labelled validation split."""
    from tsad.evaluation.metrics import best_f1

    labels = np.asarray(labels).astype(int).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    kept = np.isfinite(scores)
    labels, scores = labels[kept], scores[kept]
    if len(scores) == 0:
        raise UserError("no finite scores on the labelled validation split to choose a threshold from")
    if labels.min() == labels.max():
        kind = "anomalous" if labels.max() == 1 else "normal"
        raise UserError(f"threshold=val_best_f1: every {level} label of the labelled validation split is {kind}; "
                        "make dataset.labelled_val larger")
    return best_f1(labels, scores)[1]


def finite(scores) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64).ravel()
    scores = scores[np.isfinite(scores)]
    if len(scores) == 0:
        raise UserError("no finite scores to choose a threshold from; check the validation split")
    return scores


def check_threshold_data(threshold: ThresholdPolicy, data) -> None:
    """Fail before training when the policy needs a split the dataset does not have."""
    if threshold.needs_labelled_val() and data.labelled_val is None:
        raise UserError(f"threshold={threshold.name} needs a labelled validation split, and dataset {data.name!r} "
                        f"has none: {LABELLED_VAL_HINT}")
