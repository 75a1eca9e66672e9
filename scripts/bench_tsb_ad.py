"""Seconds per file of one model under the TSB-AD protocol, and what that makes for TSB-AD-U's Eva list.

    python scripts/bench_tsb_ad.py --root /tmp/tsb_ad_u
    python scripts/bench_tsb_ad.py --root /tmp/tsb_ad_u model=knn dataset.window_from_period=1 --cores 2
    python scripts/bench_tsb_ad.py --root /tmp/tsb_ad_u experiment=tsb_ad_u dataset.list=TSB-AD-U-Tuning

Every file of the folder (or of the overrides' selection) goes through the protocol's own per-file step
(tsad.protocols.tsb_ad.run_file) in this process with one torch and one BLAS thread, as one pool worker runs it.
One line per file: rows, fit, score, and the rest of the step (TSB-AD's sliding window and its nine metrics).

Extrapolation: a least-squares line seconds = a + b * rows through the measured files, summed over the series
lengths of TSB-AD-U's 350 Eva files (`ts_len` of TSB-AD's merged results table, shipped with tsad's leaderboard),
then divided by --cores (files run in parallel, one per core). A line is exact for a model whose cost grows with
the rows scored (kNN and PCA with their capped training windows, IForest); Eva files far longer than the measured
ones make it a rough guide. On a shared machine every figure is an upper bound.
"""

from __future__ import annotations

import argparse
import sys
import time
from importlib.resources import files
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tsad.config import run_settings
from tsad.errors import UserError
from tsad.protocols.tsb_ad import TSBAD, one_thread_each, run_file
from tsad.runtime import resolve_device
from tsad.table.tsb_ad_reference import DATA_FOLDER, TABLES

EXIT_BAD_INPUT = 2


def eva_lengths() -> np.ndarray:
    """Rows of every TSB-AD-U Eva-list file, from the shipped merged results table."""
    with (files("tsad.table") / DATA_FOLDER / TABLES["U"][0]).open("rb") as handle:
        return pd.read_csv(handle, usecols=["ts_len"])["ts_len"].to_numpy(dtype=float)


def measure(root: str, overrides: list[str]) -> pd.DataFrame:
    settings = run_settings(["dataset=tsb_ad_u", "dataset.list=null", *overrides, f"dataset.root={root}"])
    TSBAD().check(settings)
    device = resolve_device(settings.device)
    one_thread_each()
    rows = []
    for tsb_file in settings.dataset.load().files:
        started = time.perf_counter()
        result = run_file(settings, device, tsb_file)
        total = time.perf_counter() - started
        rows.append({"file": result.file, "rows": result.rows, "fit_s": result.fit_seconds,
                     "score_s": result.score_seconds, "metrics_s": total - result.fit_seconds - result.score_seconds,
                     "total_s": total, "vus_pr": result.metrics.get("vus_pr"), "error": result.error})
        print(f"{result.file:60s} {result.rows:7d} rows  fit {result.fit_seconds:7.2f} s  score "
              f"{result.score_seconds:7.2f} s  window+metrics {rows[-1]['metrics_s']:7.2f} s  {result.error}",
              flush=True)
    return pd.DataFrame(rows)


def extrapolate(measured: pd.DataFrame, cores: int) -> str:
    lengths = eva_lengths()
    if measured["rows"].nunique() < 2:
        per_row = measured["total_s"].sum() / measured["rows"].sum()
        intercept, slope = 0.0, per_row
    else:
        slope, intercept = np.polyfit(measured["rows"], measured["total_s"], 1)
        slope, intercept = max(slope, 0.0), max(intercept, 0.0)
    total = float(np.sum(intercept + slope * lengths))
    return (f"TSB-AD-U Eva list: {len(lengths)} files, {int(lengths.sum())} rows (longest {int(lengths.max())}; "
            f"measured files up to {int(measured['rows'].max())}); per file {intercept:.2f} s + "
            f"{slope * 1000:.3f} s per 1000 rows -> {total / 60:.1f} min on one core, {total / 60 / cores:.1f} min "
            f"on {cores} core(s) (an upper bound on a shared machine)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="a folder of TSB-AD-U files")
    parser.add_argument("--cores", type=int, default=2, help="cores the Eva-list extrapolation runs on (default 2)")
    parser.add_argument("overrides", nargs="*", help="tsad-run overrides, e.g. model=pca dataset.train=unsupervised")
    args = parser.parse_args(argv)
    if args.cores < 1:
        print(f"error: --cores={args.cores}: give at least 1", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        measured = measure(args.root, args.overrides)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    ran = measured[measured["error"] == ""]
    if ran.empty:
        print("error: every file failed; see the lines above", file=sys.stderr)
        return EXIT_BAD_INPUT
    means = ran[["fit_s", "score_s", "metrics_s", "total_s"]].mean()
    print(f"mean per file over {len(ran)} file(s) ({ran['rows'].mean():.0f} rows): fit {means['fit_s']:.2f} s, "
          f"score {means['score_s']:.2f} s, window+metrics {means['metrics_s']:.2f} s, total {means['total_s']:.2f} s")
    print(extrapolate(ran, args.cores))
    return 0


if __name__ == "__main__":
    sys.exit(main())
