"""Reference values of TSB-AD's `get_metrics` and `find_length_rank` for tests/test_tsb_ad_metrics.py.

Run it with a Python that has TSB-AD installed, in a venv outside the project:

    python3 -m venv /tmp/tsbref
    /tmp/tsbref/bin/pip install TSB-AD==1.5 --no-deps
    /tmp/tsbref/bin/pip install "numpy<2" scikit-learn scipy pandas statsmodels
    /tmp/tsbref/bin/python scripts/tsb_ad_reference_values.py

It writes tests/data/tsb_ad_reference.json. The inputs are generated from seeds by `metric_inputs` and
`window_inputs` (numpy only), which the test imports as well; the json keeps a fingerprint of every input
so that a change in numpy's random streams shows up as a changed input, not as a metric mismatch.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np

OUTPUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "tsb_ad_reference.json"

# events: [start, length] of each anomaly; detected: the events whose scores rise (by index);
# scores: how the noisy scores are finally turned (as is, rounded to create ties, binary, constant).
METRIC_CASES = [
    {"name": "one_event", "n": 500, "seed": 1, "events": [[200, 30]], "detected": [0], "false_alarms": 3,
     "scores": "noisy", "windows": [0, 7, 50]},
    {"name": "several_events", "n": 3000, "seed": 2,
     "events": [[100, 40], [700, 5], [1200, 120], [1900, 1], [2400, 60], [2800, 15]],
     "detected": [0, 2, 3, 4], "false_alarms": 10, "scores": "noisy", "windows": [24, 125]},
    {"name": "events_at_both_edges", "n": 800, "seed": 3, "events": [[0, 25], [380, 30], [780, 20]],
     "detected": [0, 1, 2], "false_alarms": 2, "scores": "noisy", "windows": [10]},
    {"name": "one_row_events_at_edges", "n": 600, "seed": 4, "events": [[0, 1], [300, 1], [599, 1]],
     "detected": [0, 1, 2], "false_alarms": 4, "scores": "noisy", "windows": [0, 12]},
    {"name": "late_hit_in_first_event", "n": 400, "seed": 5, "events": [[0, 30], [200, 10]],
     "detected": [0, 1], "shift": 10, "false_alarms": 1, "scores": "noisy", "windows": [20]},
    {"name": "last_row_event_missed_by_others", "n": 300, "seed": 6, "events": [[100, 10], [297, 3]],
     "detected": [1], "false_alarms": 0, "scores": "noisy", "windows": [6]},
    {"name": "tied_scores", "n": 1500, "seed": 7, "events": [[300, 50], [900, 20], [1400, 8]],
     "detected": [0, 2], "false_alarms": 5, "scores": "rounded", "windows": [30]},
    {"name": "binary_scores", "n": 1000, "seed": 8, "events": [[100, 20], [500, 40], [950, 50]],
     "detected": [0, 1, 2], "false_alarms": 6, "scores": "binary", "windows": [16]},
    {"name": "constant_scores", "n": 400, "seed": 9, "events": [[150, 20]], "detected": [], "false_alarms": 0,
     "scores": "constant", "windows": [0, 25]},
    {"name": "tiny", "n": 7, "seed": 10, "events": [[2, 2]], "detected": [0], "false_alarms": 0,
     "scores": "noisy", "windows": [0, 3]},
    {"name": "single_anomalous_row", "n": 1200, "seed": 11, "events": [[611, 1]], "detected": [0],
     "false_alarms": 8, "scores": "noisy", "windows": [40]},
    {"name": "many_events_noisy", "n": 5000, "seed": 12,
     "events": [[k * 250 + 60, 5 + (k * 7) % 40] for k in range(19)], "detected": list(range(0, 19, 2)),
     "false_alarms": 30, "noise": 1.0, "scores": "noisy", "windows": [100]},
    {"name": "mostly_anomalous", "n": 200, "seed": 13, "events": [[0, 90], [95, 100]], "detected": [1],
     "false_alarms": 2, "scores": "noisy", "windows": [5]},
]

# Inputs TSB-AD refuses; the json records its error and the test expects a ValueError.
INVALID_METRIC_CASES = [
    {"name": "no_anomaly", "n": 300, "seed": 20, "events": [], "detected": [], "false_alarms": 3,
     "scores": "noisy", "windows": [10]},
    {"name": "all_anomalous", "n": 300, "seed": 21, "events": [[0, 300]], "detected": [0], "false_alarms": 0,
     "scores": "noisy", "windows": [10]},
    {"name": "nan_score", "n": 300, "seed": 22, "events": [[100, 10]], "detected": [0], "false_alarms": 0,
     "scores": "one_nan", "windows": [10]},
]

# pieces: [rows, period] stretches of a noisy sine, one after another (period 0: noise only);
# kind: "sine" as described, "random_walk", "trend" or "constant"; channels > 1 adds noise channels.
WINDOW_CASES = [
    {"name": "period_50", "seed": 31, "kind": "sine", "pieces": [[5000, 50]], "noise": 0.3},
    {"name": "period_24_two_channels", "seed": 32, "kind": "sine", "pieces": [[3000, 24]], "noise": 0.5,
     "channels": 2},
    {"name": "period_7", "seed": 33, "kind": "sine", "pieces": [[2000, 7]], "noise": 0.2},
    {"name": "period_4_too_short", "seed": 34, "kind": "sine", "pieces": [[2000, 4]], "noise": 0.1},
    {"name": "period_303", "seed": 35, "kind": "sine", "pieces": [[6000, 303]], "noise": 0.1},
    {"name": "period_350_too_long", "seed": 36, "kind": "sine", "pieces": [[8000, 350]], "noise": 0.1},
    {"name": "period_changes_after_20000_rows", "seed": 37, "kind": "sine", "pieces": [[20000, 40], [6000, 90]],
     "noise": 0.3},
    {"name": "white_noise", "seed": 38, "kind": "sine", "pieces": [[3000, 0]], "noise": 1.0},
    {"name": "random_walk", "seed": 39, "kind": "random_walk", "rows": 3000},
    {"name": "trend", "seed": 40, "kind": "trend", "rows": 1000},
    {"name": "constant", "seed": 41, "kind": "constant", "rows": 500},
    {"name": "short_period_9_rows_60", "seed": 42, "kind": "sine", "pieces": [[60, 9]], "noise": 0.05},
    {"name": "five_rows", "seed": 43, "kind": "sine", "pieces": [[5, 3]], "noise": 0.1},
]


def metric_inputs(case: dict) -> tuple[np.ndarray, np.ndarray]:
    """Labels (int) and scores (float) of a metric case."""
    rng = np.random.default_rng(case["seed"])
    n = case["n"]
    labels = np.zeros(n, dtype=int)
    for start, length in case["events"]:
        labels[start:start + length] = 1
    scores = case.get("noise", 0.4) * rng.standard_normal(n)
    shift = case.get("shift", 0)
    for index in case["detected"]:
        start, length = case["events"][index]
        scores[start + shift:start + length] += 1.5 + rng.random()
    scores[rng.integers(0, n, case["false_alarms"])] += 2.0
    if case["scores"] == "rounded":
        scores = np.round(scores, 1)
    elif case["scores"] == "binary":
        scores = (scores > 1.2).astype(float)
    elif case["scores"] == "constant":
        scores = np.full(n, 0.25)
    elif case["scores"] == "one_nan":
        scores[n // 2] = np.nan
    return labels, scores


def window_inputs(case: dict) -> np.ndarray:
    """The series of a window case: (rows,) or (rows, channels)."""
    rng = np.random.default_rng(case["seed"])
    if case["kind"] == "random_walk":
        return np.cumsum(rng.standard_normal(case["rows"]))
    if case["kind"] == "trend":
        return np.arange(case["rows"]) * 0.01 + 0.001 * rng.standard_normal(case["rows"])
    if case["kind"] == "constant":
        return np.full(case["rows"], 3.0)
    pieces = []
    for rows, period in case["pieces"]:
        steps = np.arange(rows)
        wave = np.sin(2 * np.pi * steps / period) if period else np.zeros(rows)
        pieces.append(wave + case["noise"] * rng.standard_normal(rows))
    series = np.concatenate(pieces)
    channels = case.get("channels", 1)
    if channels == 1:
        return series
    return np.column_stack([series, *rng.standard_normal((channels - 1, len(series)))])


def fingerprint(*arrays: np.ndarray) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array, dtype="<f8").tobytes())
    return digest.hexdigest()[:16]


TSB_AD_KEYS = {"AUC-PR": "auc_pr", "AUC-ROC": "auc_roc", "VUS-PR": "vus_pr", "VUS-ROC": "vus_roc",
               "Standard-F1": "standard_f1", "PA-F1": "pa_f1", "Event-based-F1": "event_based_f1",
               "R-based-F1": "r_based_f1", "Affiliation-F": "affiliation_f"}


def reference_values() -> dict:
    import warnings
    from importlib.metadata import version

    from TSB_AD.evaluation.metrics import get_metrics
    from TSB_AD.utils.slidingWindows import find_length_rank

    warnings.simplefilter("ignore")
    metrics = []
    for case in METRIC_CASES:
        labels, scores = metric_inputs(case)
        for window in case["windows"]:
            values = get_metrics(scores, labels, slidingWindow=window)
            metrics.append({"case": case["name"], "window": window, "inputs": fingerprint(labels, scores),
                            "values": {ours: _json_float(values[theirs]) for theirs, ours in TSB_AD_KEYS.items()}})
    refused = []
    for case in INVALID_METRIC_CASES:
        labels, scores = metric_inputs(case)
        try:
            get_metrics(scores, labels, slidingWindow=case["windows"][0])
        except Exception as error:  # noqa: BLE001 - what TSB-AD raises is the record
            refused.append({"case": case["name"], "tsb_ad_error": f"{type(error).__name__}: {error}"})
        else:
            raise SystemExit(f"TSB-AD accepted the invalid case {case['name']}")
    windows = []
    for case in WINDOW_CASES:
        series = window_inputs(case)
        first_channel = series if series.ndim == 1 else series[:, 0]
        windows.append({"case": case["name"], "inputs": fingerprint(series),
                        "window": int(find_length_rank(first_channel.reshape(-1, 1), rank=1))})
    return {
        "about": "TSB-AD's get_metrics(score, label, slidingWindow) and find_length_rank(rank=1) on the inputs "
                 "of scripts/tsb_ad_reference_values.py; NaN is written as null",
        "versions": {name: version(name) for name in ("TSB_AD", "numpy", "scikit-learn", "scipy", "statsmodels")},
        "metrics": metrics,
        "refused": refused,
        "windows": windows,
    }


def _json_float(value) -> float | None:
    value = float(value)
    return None if np.isnan(value) else value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=OUTPUT)
    arguments = parser.parse_args()
    arguments.output.write_text(json.dumps(reference_values(), indent=1) + "\n")
    print(f"wrote {arguments.output}")


if __name__ == "__main__":
    main()
