"""Two tsad-run processes at once against one after another, on this machine: the ratio a user pays for running
experiments side by side.

    python scripts/bench_side_by_side.py [--repeats 2] [--env OMP_NUM_THREADS=1] [-- tsad-run overrides...]

Prints the seconds of one run alone, of two started together, and their ratio to two run one after another
(1.0: side by side costs nothing extra; 2.0: no gain; above 2: the processes slow each other down). `--env` sets
variables for both processes (thread counts, OpenMP's wait policy) to compare the options; medians over repeats.
Nothing else should run while it measures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_OVERRIDES = ["trainer.max_epochs=5", "plots=false"]


def timed(commands: list[list[str]], env: dict) -> float:
    started = time.perf_counter()
    processes = [subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for command in commands]
    if any(process.wait() != 0 for process in processes):
        raise SystemExit(f"a run failed: {commands[0]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for both processes")
    parser.add_argument("overrides", nargs="*", default=DEFAULT_OVERRIDES, help="tsad-run overrides")
    args = parser.parse_args()
    env = {**os.environ, **dict(item.split("=", 1) for item in args.env)}
    tsad_run = str(Path(sys.executable).with_name("tsad-run"))
    with tempfile.TemporaryDirectory() as folder:
        def run(name: str) -> list[str]:
            return [tsad_run, *args.overrides, f"hydra.run.dir={folder}/{name}_{time.monotonic_ns()}"]

        alone = [timed([run("alone")], env) for _ in range(args.repeats)]
        together = [timed([run("a"), run("b")], env) for _ in range(args.repeats)]
    one, two = statistics.median(alone), statistics.median(together)
    print(f"env {' '.join(args.env) or '(as set)'}: one run {one:.1f} s, two at once {two:.1f} s, "
          f"two at once / two one after another = {two / (2 * one):.2f}")


if __name__ == "__main__":
    main()
