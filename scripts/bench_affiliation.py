"""Time the affiliation metric over TSB-AD's threshold search: the loop version (the tests' oracle) against tsad's.

    PYTHONPATH=. python scripts/bench_affiliation.py

For 100,000 rows of noisy scores with 20 and then 300 anomalies, each implementation scores the flags of
TSB-AD's 100 evenly spaced thresholds (what tsad.evaluation.tsb_ad_metrics asks of it per file); the script
prints the seconds of each and checks that both give the same values.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import numpy as np

from tsad.evaluation.range_metrics import affiliation_precision_recall

ROWS = 100_000
ANOMALY_COUNTS = (20, 300)
N_THRESHOLDS = 100
TESTS = Path(__file__).resolve().parents[1] / "tests" / "test_range_metrics.py"


def slow_affiliation():
    spec = importlib.util.spec_from_file_location("test_range_metrics", TESTS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.slow_affiliation_precision_recall


def noisy_file(n_anomalies: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels with `n_anomalies` events of 10..200 rows and uniform noise scores raised by 0.5 inside them."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(ROWS, dtype=np.int8)
    slots = rng.choice(ROWS // 300, size=n_anomalies, replace=False) * 300
    for start in slots:
        labels[start:start + rng.integers(10, 201)] = 1
    return labels, rng.random(ROWS) + 0.5 * labels


def sweep_seconds(metric, labels: np.ndarray, scores: np.ndarray) -> tuple[float, list]:
    flags = [(scores > threshold).astype(np.int8)
             for threshold in np.linspace(scores.min(), scores.max(), N_THRESHOLDS)]
    start = time.perf_counter()
    values = [metric(labels, flagged) for flagged in flags]
    return time.perf_counter() - start, values


def main() -> None:
    slow = slow_affiliation()
    print(f"affiliation precision / recall at {N_THRESHOLDS} thresholds, {ROWS:,} rows")
    for n_anomalies in ANOMALY_COUNTS:
        labels, scores = noisy_file(n_anomalies)
        before, expected = sweep_seconds(slow, labels, scores)
        after, values = sweep_seconds(affiliation_precision_recall, labels, scores)
        worst = max(abs(a - b) / abs(a) for pair, ours in zip(expected, values) for a, b in zip(pair, ours) if a)
        print(f"{n_anomalies:>4} anomalies: before {before:8.3f} s  after {after:7.3f} s  "
              f"({before / after:,.0f}x)  largest relative difference {worst:.1e}")


if __name__ == "__main__":
    main()
