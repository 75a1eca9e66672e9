"""Test-time augmentation: its effect on ROC-AUC / PR-AUC and its cost, for window models.

    python scripts/bench_tta.py carla patchad --datasets synthetic synthetic_points --seeds 0 1 2
    python scripts/bench_tta.py tracegpt --tta 8 -o trainer.max_epochs=5 --results outputs/tta.jsonl

Each (model, data set, seed) is fitted once with the default config (plus -o overrides) and
scored twice on the test split: without augmentation (tta.n=1) and with tta.n=--tta. Every
finished job is appended to --results as one JSON line and skipped when the script runs
again, so a long benchmark can be stopped and resumed. Prints mean ± sample std over seeds.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np


def run_job(model: str, dataset: str, seed: int, tta_n: int, overrides: list[str]) -> dict:
    from sklearn.metrics import average_precision_score, roc_auc_score

    from tsad.config import run_settings
    from tsad.evaluation.levels import level_arrays
    from tsad.models.base import detector_from_settings
    from tsad.runtime import resolve_device, seed_everything

    settings = run_settings([f"model={model}", f"dataset={dataset}", f"seed={seed}", "trainer.progress=false",
                             *overrides])
    seed_everything(seed)
    data = settings.dataset.build()
    detector = detector_from_settings(settings, resolve_device(settings.device))
    started = time.perf_counter()
    detector.fit(data.train, data.val)
    result = {"model": model, "dataset": dataset, "seed": seed, "level": data.level,
              "fit_s": time.perf_counter() - started, "epochs": len(detector.history)}
    for n in (1, tta_n):
        detector.runtime.tta = dataclasses.replace(settings.tta, n=n)  # the same fitted model, rescored
        started = time.perf_counter()
        scores = detector.score(data.test)
        seconds = time.perf_counter() - started
        labels, values = level_arrays(data.test, scores, data.level)
        finite = np.isfinite(values)
        result[f"tta{n}"] = {"roc_auc": float(roc_auc_score(labels[finite], values[finite])),
                             "pr_auc": float(average_precision_score(labels[finite], values[finite])),
                             "score_s": seconds}
    return result


def summary(results: list[dict], tta_n: int) -> str:
    lines = [f"{'model':<10} {'dataset':<17} {'seeds':>5}  {'ROC-AUC':>13} {'PR-AUC':>13}  "
             f"{'ROC-AUC tta' + str(tta_n):>15} {'PR-AUC tta' + str(tta_n):>15}  {'fit s':>6} {'score s':>8} "
             f"{'tta score s':>11}"]
    keys = sorted({(r["model"], r["dataset"]) for r in results})
    for model, dataset in keys:
        rows = [r for r in results if (r["model"], r["dataset"]) == (model, dataset)]

        def cell(n, metric, rows=rows):
            values = np.array([r[f"tta{n}"][metric] for r in rows])
            return f"{values.mean():.3f} ± {values.std(ddof=1) if len(values) > 1 else 0.0:.3f}"

        lines.append(f"{model:<10} {dataset:<17} {len(rows):>5}  {cell(1, 'roc_auc'):>13} {cell(1, 'pr_auc'):>13}  "
                     f"{cell(tta_n, 'roc_auc'):>15} {cell(tta_n, 'pr_auc'):>15}  "
                     f"{np.mean([r['fit_s'] for r in rows]):>6.1f} "
                     f"{np.mean([r['tta1']['score_s'] for r in rows]):>8.2f} "
                     f"{np.mean([r[f'tta{tta_n}']['score_s'] for r in rows]):>11.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+", help="registered window models")
    parser.add_argument("--datasets", nargs="+", default=["synthetic", "synthetic_points"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--tta", type=int, default=8, help="augmented copies to average (tta.n)")
    parser.add_argument("--results", type=Path, default=Path("outputs/bench_tta.jsonl"),
                        help="JSON lines, one per finished job; jobs found here are not rerun")
    parser.add_argument("-o", "--override", action="append", default=[],
                        help="config override, e.g. -o trainer.batch_size=128")
    args = parser.parse_args()
    if args.tta < 2:
        parser.error("--tta must be at least 2 (1 is the run without augmentation)")
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    done = [json.loads(line) for line in args.results.read_text().splitlines()] if args.results.exists() else []
    done = [r for r in done if f"tta{args.tta}" in r and r.get("overrides", []) == args.override]
    args.results.parent.mkdir(parents=True, exist_ok=True)
    for model in args.models:
        for dataset in args.datasets:
            for seed in args.seeds:
                if any((r["model"], r["dataset"], r["seed"]) == (model, dataset, seed) for r in done):
                    continue
                result = {**run_job(model, dataset, seed, args.tta, args.override), "overrides": args.override}
                with args.results.open("a") as handle:
                    handle.write(json.dumps(result) + "\n")
                done.append(result)
                print(f"{model} {dataset} seed {seed}: ROC-AUC {result['tta1']['roc_auc']:.3f} -> "
                      f"{result[f'tta{args.tta}']['roc_auc']:.3f} with tta, fit {result['fit_s']:.0f} s", flush=True)
    wanted = [r for r in done
              if r["model"] in args.models and r["dataset"] in args.datasets and r["seed"] in args.seeds]
    print(summary(wanted, args.tta))


if __name__ == "__main__":
    main()
