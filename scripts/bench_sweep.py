"""How much faster a local sweep runs with more workers: the same sweep with 1 and with N workers.

    python scripts/bench_sweep.py [--workers 2] [--repeats 1] [-- extra tsad-run overrides]

Runs `tsad-run -m hydra/launcher=local hydra.launcher.n_jobs=W` over the default sweep (lstm_vae on the default
synthetic series, seeds 0-3, 5 epochs, no plots) for W = 1 and W = --workers, alternating, into temporary
folders, and prints each wall time and the speed-up (1-worker time / N-worker time). Every job must end OK.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TSAD_RUN = str(Path(sys.executable).with_name("tsad-run"))
DEFAULT_SWEEP = ["model=lstm_vae", "seed=0,1,2,3", "trainer.max_epochs=5", "plots=false"]


def run_sweep(workers: int, overrides: list[str], folder: Path) -> float:
    command = [TSAD_RUN, "-m", "hydra/launcher=local", f"hydra.launcher.n_jobs={workers}",
               f"hydra.sweep.dir={folder}", *overrides]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"bench_sweep.py: the sweep failed ({done.returncode}):\n{done.stderr[-2000:]}")
    statuses = [json.loads(p.read_text())["status"] for p in folder.glob("*/metrics.json")]
    if not statuses or any(status != "OK" for status in statuses):
        sys.exit(f"bench_sweep.py: not every job ended OK: {statuses}")
    return seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="the parallel worker count to compare with 1")
    parser.add_argument("--repeats", type=int, default=1, help="alternating runs of each; the median is printed")
    parser.add_argument("overrides", nargs="*", help="tsad-run overrides replacing the default sweep (after --)")
    args = parser.parse_args(argv)
    overrides = args.overrides or DEFAULT_SWEEP
    times: dict[int, list[float]] = {1: [], args.workers: []}
    with tempfile.TemporaryDirectory(prefix="tsad-bench-sweep-") as root:
        for repeat in range(args.repeats):
            for workers in times:
                seconds = run_sweep(workers, overrides, Path(root) / f"w{workers}_r{repeat}")
                times[workers].append(seconds)
                print(f"{workers} worker(s): {seconds:.1f} s", flush=True)
    one, many = (statistics.median(times[w]) for w in times)
    print(f"sweep: {' '.join(overrides)}")
    print(f"median wall time: 1 worker {one:.1f} s, {args.workers} workers {many:.1f} s; speed-up {one / many:.2f}x")


if __name__ == "__main__":
    main()
