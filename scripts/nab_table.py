"""NAB table from finished NAB runs: each run's saved raw scores re-scored under every post-processing.

    python scripts/nab_table.py RUN_OR_SWEEP_DIR [...] [--postprocess none likelihood_spatial ...] [--fixed 0.4 0.5 ...]

A NAB run keeps its detector's raw score of every row (scores/test_steps.csv.gz, column raw_score). The
anomaly scores of any `postprocess=` are a function of those raw scores and the file's values alone, so one
run per model and seed gives the NAB scores of every post-processing, the same as running with it
(tests/test_nab_table.py checks that). Thresholds as in a run: label-free = the run's threshold policy for the
kind of post-processing it was run with, else the likelihood's red zone (fixed 0.5) with a likelihood and the
default policy (val_percentile on the probationary rows) without, each profile at the run's own threshold for it
(dataset.low_fp_threshold, dataset.low_fn_threshold) where the run set one; with --fixed, every profile at each
of the fixed values given, one row per value (the scores of runs with threshold=fixed threshold.value=VALUE);
oracle = NAB's label-optimised threshold per profile. Each part of the corpus is scored as a run on it
alone would be: the full corpus, half A (where settings are chosen) and half B (where they are reported).

Prints one markdown row per model (and --by settings) and post-processing: standard / low-FP / low-FN, the mean
over seeds (± the sample standard deviation of the standard profile where there are several seeds), the mean wall time.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tsad.cli import group_options
from tsad.data.registry import dataset_settings
from tsad.errors import UserError
from tsad.evaluation.nab_files import load_nab_profiles
from tsad.evaluation.thresholds import threshold_policy
from tsad.pipeline import Pipeline
from tsad.postprocess import PostProcess
from tsad.protocols.nab import as_rows, score_nab
from tsad.run_folder import RunFolder, find_run_folders
from tsad.table.rows import read_run

HALF_A = ("artificialNoAnomaly", "artificialWithAnomaly", "realAdExchange", "realAWSCloudwatch")
HALF_B = ("realKnownCause", "realTraffic", "realTweets")
PARTS = {"full": None, "half A": HALF_A, "half B": HALF_B}
PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
RED_ZONE_THRESHOLD = threshold_policy({"policy": "fixed", "value": 0.5})  # the likelihood's red zone


def packaged(group: str, name: str) -> dict:
    """The yaml of a shipped config option (conf/<group>/<name>.yaml)."""
    return yaml.safe_load(resources.files("tsad.conf").joinpath(group, f"{name}.yaml").read_text())


def default_option(group: str) -> str:
    """The option conf/config.yaml's defaults list picks for `group`."""
    defaults = packaged(".", "config")["defaults"]
    return next(entry[group] for entry in defaults if isinstance(entry, dict) and group in entry)


def thresholds_for(run_config: dict) -> dict:
    """{uses a likelihood: threshold policy}: the run's own policy serves the post-processing kind it was run with;
    the other kind gets the red zone or the default policy."""
    own = threshold_policy(run_config["threshold"])
    if PostProcess.parse(run_config.get("postprocess"), "postprocess").likelihood:
        return {True: own, False: threshold_policy(packaged("threshold", default_option("threshold")))}
    return {True: RED_ZONE_THRESHOLD, False: own}


def raw_scores_of(run_dir: Path, files: list) -> list[np.ndarray]:
    steps = pd.read_csv(RunFolder(run_dir).step_scores("test"))
    if "raw_score" not in steps:
        raise SystemExit(f"{run_dir}: its scores have no raw_score column (a run from before raw scores were "
                         "saved); run it again")
    by_file = {name: group["raw_score"].to_numpy(float) for name, group in steps.groupby("series", sort=False)}
    return [by_file[f.name] for f in files]


def score_run(run_dir: Path, postprocesses: list[str], fixed: float | None = None) -> dict:
    """{(postprocess, part): {"label_free": {profile: score}, "oracle": {...}}} for one finished NAB run; label-free
    at the run's own thresholds, or with `fixed` every profile at that threshold."""
    config = RunFolder(run_dir).config()
    dataset = dataset_settings(config["dataset"])
    corpus = dataset.load()
    raw = raw_scores_of(run_dir, corpus.files)
    thresholds = thresholds_for(config)
    own_kind = PostProcess.parse(config.get("postprocess"), "postprocess").likelihood
    profiles = load_nab_profiles(corpus.folder)
    results = {}
    for name in postprocesses:
        pipeline = Pipeline(None, PostProcess.parse(packaged("postprocess", name), "postprocess"), ranks=True)
        anomaly = [pipeline.step_scores(as_rows(f.values), r) for f, r in zip(corpus.files, raw)]
        threshold = thresholds[pipeline.postprocess.likelihood]
        profile_thresholds = dataset.profile_thresholds() if pipeline.postprocess.likelihood == own_kind else {}
        if fixed is not None:
            threshold, profile_thresholds = threshold_policy({"policy": "fixed", "value": fixed}), {}
        for part, scores in score_parts(corpus.files, raw, anomaly, threshold, profiles, profile_thresholds).items():
            results[name, part] = scores
    return results


def score_parts(files, raw, anomaly, threshold, profiles, profile_thresholds) -> dict:
    """NAB's label-free and oracle scores of the files of each part (full corpus, half A, half B) that has any."""
    results = {}
    for part, categories in PARTS.items():
        chosen = [i for i, f in enumerate(files) if categories is None or f.category in categories]
        if not chosen:
            continue
        label_free, oracle, _ = score_nab([files[i] for i in chosen], [raw[i] for i in chosen],
                                          [anomaly[i] for i in chosen], threshold, profiles, profile_thresholds)
        results[part] = {"label_free": label_free["scores"], "oracle": oracle["scores"]}
    return results


def cell(runs: list[dict], kind: str, digits: int = 1) -> str:
    means = [np.mean([r[kind][p] for r in runs]) for p in PROFILES]
    text = " / ".join(f"{m:.{digits}f}" for m in means)
    if len(runs) > 1:
        text += f" (± {np.std([r[kind]['standard'] for r in runs], ddof=1):.1f})"
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="finished NAB run folders, or folders holding them")
    options = group_options("postprocess")
    parser.add_argument("--postprocess", nargs="+", choices=options,
                        default=sorted(options, key=lambda name: (name != "none", name)))
    parser.add_argument("--by", nargs="*", default=[], metavar="KEY",
                        help="config keys besides the model that tell rows apart (e.g. dataset.retrain_every)")
    parser.add_argument("--fixed", nargs="+", type=float, default=[None], metavar="VALUE",
                        help="score every profile label-free at each of these fixed thresholds, a row each")
    parser.add_argument("--digits", type=int, default=1, help="decimals of the scores")
    args = parser.parse_args(argv)
    grouped, seeds, walls = defaultdict(list), defaultdict(set), defaultdict(list)
    try:
        folders = find_run_folders(args.runs)
    except UserError as error:
        parser.exit(2, f"nab_table.py: error: {error}\n")
    for folder in folders:
        run = read_run(folder)
        if run["status"] != "OK" or run.get("config.dataset.protocol") != "nab":
            continue
        for fixed in args.fixed:
            model = " ".join([run["model"]] + [f"{key}={run.get('config.' + key)}" for key in args.by]
                             + ([] if fixed is None else [f"fixed={fixed:g}"]))
            for (name, part), scores in score_run(folder, args.postprocess, fixed).items():
                grouped[model, name, part].append(scores)
            seeds[model].add(run["seed"])
            walls[model].append(run["total_seconds"])
    print("| model | postprocess | seeds | " + " | ".join(f"{part}: label-free" for part in PARTS)
          + " | full: oracle | wall time |")
    print("|---|---|---|" + "---|" * len(PARTS) + "---|---:|")
    for model in sorted(seeds):
        for name in args.postprocess:
            cells = [cell(grouped[model, name, part], "label_free", args.digits) if grouped[model, name, part] else ""
                     for part in PARTS]
            print(f"| {model} | {name} | {','.join(map(str, sorted(seeds[model])))} | " + " | ".join(cells)
                  + f" | {cell(grouped[model, name, 'full'], 'oracle', args.digits)} | {np.mean(walls[model]):.0f} s |")


if __name__ == "__main__":
    main()
