"""Numenta HTM's NAB scores on the full corpus and on each half, from the results folder NAB ships.

    python scripts/nab_htm_halves.py PATH/TO/NAB [--detector numenta]

NAB's results/<detector>/ holds the detector's anomaly score of every row, and config/thresholds.json the
threshold NAB's optimiser chose for it per profile on the whole corpus (labels read: an oracle threshold). Each
part is scored with tsad's NAB scorer at those thresholds, normalised over the part's own files, as a run on
that part alone is (halves as in scripts/nab_table.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.nab_table import PARTS, PROFILES
from tsad.data.nab_format import load_nab_windows
from tsad.evaluation.nab_files import load_nab_profiles
from tsad.evaluation.nab_scoring import score_corpus


def part_scores(root: Path, detector: str) -> dict[str, dict[str, float]]:
    """{part: {profile: normalised score}} of a NAB detector's shipped results at its shipped thresholds."""
    windows = load_nab_windows(root)
    thresholds = {profile: entry["threshold"]
                  for profile, entry in json.loads((root / "config" / "thresholds.json").read_text())[detector].items()}
    scored = {}
    for name in windows:
        category, file_name = name.split("/")
        rows = pd.read_csv(root / "results" / detector / category / f"{detector}_{file_name}")
        scored[name] = (rows["timestamp"].to_numpy(), rows["anomaly_score"].to_numpy())
    return {part: score_corpus({name: value for name, value in scored.items()
                                if categories is None or name.split("/")[0] in categories},
                               windows, load_nab_profiles(root), thresholds)["scores"]
            for part, categories in PARTS.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path)
    parser.add_argument("--detector", default="numenta")
    args = parser.parse_args()
    for part, scores in part_scores(args.root, args.detector).items():
        print(f"| {args.detector} | {part} | " + " / ".join(f"{scores[profile]:.2f}" for profile in PROFILES) + " |")


if __name__ == "__main__":
    main()
