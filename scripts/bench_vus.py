"""Time tsad's VUS on a long synthetic series and, optionally, compare with TSB-AD 1.5.

    PYTHONPATH=. python scripts/bench_vus.py [--reference-python /tmp/tsbad/bin/python]

The reference runs in its own interpreter, a separate virtual environment made with
`pip install --no-deps tsb-ad==1.5 numpy scikit-learn`; tsad never depends on it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from tsad.evaluation.vus import vus_metrics

REFERENCE_RUN = """
import json, sys, time
import numpy as np
from TSB_AD.evaluation.basic_metrics import generate_curve
data = np.load(sys.argv[1])
start = time.perf_counter()
result = generate_curve(data["labels"].astype(int), data["scores"], int(sys.argv[2]), "opt", int(sys.argv[3]))
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "vus_roc": float(result[6]), "vus_pr": float(result[7])}))
"""


def synthetic_series(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels with level-shift events in a noisy sine of period 50, and a late, noisy detector score."""
    rng = np.random.default_rng(seed)
    steps = np.arange(n)
    labels = np.zeros(n, dtype=np.int8)
    for start in rng.choice(n - 200, size=max(1, n // 3000), replace=False):
        labels[start:start + rng.integers(20, 150)] = 1
    series = np.sin(2 * np.pi * steps / 50) + 0.8 * rng.standard_normal(n) + 1.5 * labels
    expected = np.sin(2 * np.pi * steps / 50)
    scores = np.roll(np.abs(series - expected), 5) + 0.5 * rng.random(n)
    return labels, scores


def time_tsad(labels, scores, window: int, n_thresholds: int, repeats: int) -> tuple[float, dict]:
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        result = vus_metrics(labels, scores, window, n_thresholds)
        best = min(best, time.perf_counter() - start)
    return best, result


def run_reference(python: str, labels, scores, window: int, n_thresholds: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        data_path = Path(folder) / "series.npz"
        np.savez(data_path, labels=labels, scores=scores)
        completed = subprocess.run([python, "-c", REFERENCE_RUN, str(data_path), str(window), str(n_thresholds)],
                                   capture_output=True, text=True, check=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="series length")
    parser.add_argument("--window", type=int, default=100, help="largest VUS buffer window")
    parser.add_argument("--n-thresholds", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="tsad runs; the fastest is reported")
    parser.add_argument("--reference-python", help="python of a venv with tsb-ad==1.5 installed")
    args = parser.parse_args()

    labels, scores = synthetic_series(args.n, args.seed)
    print(f"series: n={args.n}, anomalous points={int(labels.sum())}, window={args.window}, "
          f"thresholds={args.n_thresholds}")
    seconds, result = time_tsad(labels, scores, args.window, args.n_thresholds, args.repeats)
    print(f"tsad:      {seconds:8.3f} s  VUS-PR={result['vus_pr']:.10f}  VUS-ROC={result['vus_roc']:.10f}")
    if not args.reference_python:
        print("speed ratio and differences need the reference: pass --reference-python PATH")
        return
    reference = run_reference(args.reference_python, labels, scores, args.window, args.n_thresholds)
    print(f"reference: {reference['seconds']:8.3f} s  VUS-PR={reference['vus_pr']:.10f}  "
          f"VUS-ROC={reference['vus_roc']:.10f}")
    difference = max(abs(result[key] - reference[key]) for key in ("vus_pr", "vus_roc"))
    print(f"speed ratio (reference / tsad): {reference['seconds'] / seconds:.0f}x")
    print(f"largest absolute difference: {difference:.3e}")


if __name__ == "__main__":
    main()
