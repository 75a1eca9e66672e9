"""NAB scores of two NAB runs' detectors used together: their saved raw scores combined row by row, then the first
run's post-processing and label-free thresholds, as a run of the combined detector would score.

    python scripts/nab_ensemble.py FIRST_RUN SECOND_RUN [--combine mean max scaled_mean] [--parts "half A"]

Both runs must cover the same NAB files. Under the NAB protocol each file's detector is fitted alone, so a file's
raw scores are the same in any run over it, and combining two runs' raw scores is combining the two detectors.
Combinations: `mean` and `max` of the two raw scores; `scaled_mean`, their mean after dividing each by the mean of
its file's probationary (out-of-sample) scores, a label-free per-file scale. Where only one detector scores a row
(the longer window's warm-up), that score is used. Prints one markdown row per combination: standard / low-FP /
low-FN per part of the corpus (as scripts/nab_table.py), label-free, then the full corpus' oracle.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nab_table import PARTS, PROFILES, raw_scores_of, score_parts, thresholds_for

from tsad.data.registry import dataset_settings
from tsad.errors import UserError
from tsad.evaluation.nab_files import load_nab_profiles
from tsad.pipeline import Pipeline
from tsad.postprocess import PostProcess
from tsad.protocols.nab import as_rows
from tsad.run_folder import RunFolder

COMBINATIONS = ("mean", "max", "scaled_mean")


def combine(first: np.ndarray, second: np.ndarray, probation: int, how: str) -> np.ndarray:
    """One file's combined raw scores [T] (NaN = unscored) from two detectors' raw scores [T]."""
    if how == "scaled_mean":
        first, second = first / probationary_scale(first, probation), second / probationary_scale(second, probation)
    if how == "max":
        joined = np.maximum(first, second)
    else:
        joined = (first + second) / 2
    return np.where(np.isnan(first), second, np.where(np.isnan(second), first, joined))


def probationary_scale(raw: np.ndarray, probation: int) -> float:
    """The mean of a file's scored probationary rows, or 1 where they are all 0 (a flat file)."""
    scored = raw[:probation][~np.isnan(raw[:probation])]
    mean = float(scored.mean()) if len(scored) else 0.0
    return mean if mean > 0 else 1.0


def score_pair(first_run: Path, second_run: Path, combinations: list[str]) -> dict:
    """{(combination, part): {"label_free": {profile: score}, "oracle": {...}}} of the two runs' detectors."""
    config = RunFolder(first_run).config()
    dataset = dataset_settings(config["dataset"])
    corpus = dataset.load()
    second_corpus = dataset_settings(RunFolder(second_run).config()["dataset"]).load()
    if [f.name for f in second_corpus.files] != [f.name for f in corpus.files]:
        raise UserError(f"{second_run} ran over other NAB files than {first_run}; combine runs over the same files")
    first_raw, second_raw = raw_scores_of(first_run, corpus.files), raw_scores_of(second_run, corpus.files)
    postprocess = PostProcess.parse(config.get("postprocess"), "postprocess")
    pipeline = Pipeline(None, postprocess, ranks=True)
    threshold = thresholds_for(config)[postprocess.likelihood]
    profiles = load_nab_profiles(corpus.folder)
    results = {}
    for how in combinations:
        raw = [combine(a, b, f.probation, how) for f, a, b in zip(corpus.files, first_raw, second_raw)]
        anomaly = [pipeline.step_scores(as_rows(f.values), r) for f, r in zip(corpus.files, raw)]
        for part, scores in score_parts(corpus.files, raw, anomaly, threshold, profiles,
                                        dataset.profile_thresholds()).items():
            results[how, part] = scores
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", type=Path, help="a finished NAB run folder (its post-processing is used)")
    parser.add_argument("second", type=Path, help="a finished NAB run folder over the same files")
    parser.add_argument("--combine", nargs="+", choices=COMBINATIONS, default=list(COMBINATIONS))
    parser.add_argument("--parts", nargs="+", choices=list(PARTS), default=list(PARTS),
                        help="parts of the corpus to print (the full corpus' oracle comes with 'full')")
    parser.add_argument("--digits", type=int, default=2, help="decimals of the scores")
    args = parser.parse_args(argv)
    try:
        results = score_pair(args.first, args.second, args.combine)
    except UserError as error:
        parser.exit(2, f"nab_ensemble.py: error: {error}\n")
    columns = [(part, "label_free") for part in args.parts] + ([("full", "oracle")] if "full" in args.parts else [])
    print("| combination | " + " | ".join(f"{part}: {kind.replace('_', '-')}" for part, kind in columns) + " |")
    print("|---|" + "---|" * len(columns))
    for how in args.combine:
        cells = [" / ".join(f"{results[how, part][kind][p]:.{args.digits}f}" for p in PROFILES)
                 if (how, part) in results else "" for part, kind in columns]
        print(f"| {how} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
