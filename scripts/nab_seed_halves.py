"""NAB scores of the full corpus from two runs of one setting, one on each half of the corpus.

    python scripts/nab_seed_halves.py HALF_A_RUN HALF_B_RUN

Under NAB's protocol every file gets a fresh detector, seeded alike, fitted on its own probationary rows, so a
file's raw scores do not depend on the other files of the run: the raw scores of a half-A run and a half-B run of
one setting are those a full-corpus run gets. This scores them (the runs' own post-processing and threshold) on
the full corpus, half A and half B (those it holds), as a run on each alone would be scored, and prints
standard / low-FP / low-FN, label-free and oracle. The two runs must agree on every setting but the files they ran.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from nab_table import PARTS, PROFILES, raw_scores_of, thresholds_for

from tsad.data.registry import dataset_settings
from tsad.evaluation.nab_files import load_nab_profiles
from tsad.pipeline import Pipeline
from tsad.postprocess import PostProcess
from tsad.protocols.nab import as_rows, score_nab
from tsad.run_folder import RunFolder

SCORE_SETTINGS = ("model", "trainer", "tta", "objective", "postprocess", "threshold", "seed")


def setting_without_files(config: dict) -> dict:
    """What sets a file's scores: every score setting, and the dataset's but the files it selects."""
    dataset = {key: value for key, value in config["dataset"].items() if key not in ("category", "files")}
    return {**{key: config.get(key) for key in SCORE_SETTINGS}, "dataset": dataset}


def full_corpus_scores(half_a: Path, half_b: Path) -> dict:
    """{part: {"label_free": {profile: score}, "oracle": {...}}} of the two runs' raw scores together."""
    config, other = RunFolder(half_a).config(), RunFolder(half_b).config()
    if setting_without_files(config) != setting_without_files(other):
        raise SystemExit(f"{half_a} and {half_b} differ in more than the files they ran")
    corpus = dataset_settings({**config["dataset"], "category": None, "files": None}).load()
    by_name = {f.name: f for f in corpus.files}
    raw = {}
    for run in (half_a, half_b):
        ran = dataset_settings(RunFolder(run).config()["dataset"]).load().files
        raw.update(zip([f.name for f in ran], raw_scores_of(run, ran)))
    missing = sorted(set(by_name) - set(raw))
    if missing:
        raise SystemExit(f"no raw scores for {len(missing)} file(s), e.g. {missing[0]}: the runs miss files")
    postprocess = PostProcess.parse(config.get("postprocess"), "postprocess")
    pipeline = Pipeline(None, postprocess, ranks=True)
    threshold = thresholds_for(config)[postprocess.likelihood]
    profiles = load_nab_profiles(corpus.folder)
    results = {}
    for part, categories in PARTS.items():
        files = [f for f in corpus.files if categories is None or f.category in categories]
        if not files:
            continue
        scores = [raw[f.name] for f in files]
        anomaly = [pipeline.step_scores(as_rows(f.values), r) for f, r in zip(files, scores)]
        label_free, oracle, _ = score_nab(files, scores, anomaly, threshold, profiles)
        results[part] = {"label_free": label_free["scores"], "oracle": oracle["scores"]}
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("half_a", type=Path, help="a finished NAB run on half A")
    parser.add_argument("half_b", type=Path, help="the same setting's finished NAB run on half B")
    args = parser.parse_args(argv)
    print("| part | label-free | oracle |")
    print("|---|---|---|")
    for part, scores in full_corpus_scores(args.half_a, args.half_b).items():
        cells = [" / ".join(f"{scores[kind][p]:.1f}" for p in PROFILES) for kind in ("label_free", "oracle")]
        print(f"| {part} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
