"""The alarm rule, in one place: a score raises an alarm when it is above its level's threshold.

NAB detects scores at or above its threshold; `at_or_above` turns such a threshold into the one under which this
rule detects the same scores, so that every part of tsad applies one rule.
"""

from __future__ import annotations

import numpy as np

ALARM_RULE = "score > threshold"


def alarms(scores, threshold: float) -> np.ndarray:
    """True where a score raises an alarm (NaN, an unscored step, never does)."""
    return np.asarray(scores) > threshold


def at_or_above(threshold: float) -> float:
    """The threshold under which `alarms` detects exactly the scores >= `threshold`."""
    return float(np.nextafter(threshold, -np.inf))
