"""Score a folder of NAB detector results with the NAB scorer.

    python scripts/nab_score.py --nab-root ROOT --detector-dir DIR [--thresholds published|optimize]
                                [--detector-name NAME]

Prints a per-profile summary and, as its last line, the normalised scores as a JSON object.
Both published and optimize thresholds were optimised on the corpus labels (NAB's scoreboard
procedure), so these are oracle scores: what tsad's NAB protocol reports as `oracle_nab`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tsad.errors import UserError
from tsad.evaluation.nab_files import score_detector_dir

EXIT_BAD_INPUT = 2


class _OneLineErrorParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see --help)\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = _OneLineErrorParser(prog="nab_score.py", description=__doc__.splitlines()[0])
    parser.add_argument("--nab-root", required=True, help="NAB copy with data/, labels/ and config/")
    parser.add_argument("--detector-dir", required=True, help="folder of <category>/<detector>_<name>.csv results")
    parser.add_argument("--thresholds", choices=("published", "optimize"), default="published",
                        help="published: ROOT/config/thresholds.json; optimize: the best threshold per profile; "
                             "both are optimised on the corpus labels (oracle scores, as NAB's scoreboard)")
    parser.add_argument("--detector-name", help="detector name for result files and published thresholds "
                                                "(default: the folder's name)")
    return parser.parse_args(argv)


LABEL_OPTIMISED = ("published", "optimize")  # threshold sources chosen on the corpus labels


def summary_lines(result: dict) -> list[str]:
    source = result["threshold_source"]
    oracle = ", oracle: optimised on the corpus labels" if source in LABEL_OPTIMISED else ""
    lines = [f"NAB scores of {result['detector']} ({source} thresholds{oracle}, "
             f"{len(next(iter(result['per_file'].values())))} files)",
             f"{'profile':<20} {'threshold':>12} {'raw score':>12} {'score':>9} {'windows hit':>12} "
             f"{'TP rows':>8} {'FP rows':>8}"]
    for profile, score in result["scores"].items():
        counts = result["counts"][profile]
        shown = "n/a" if score is None else f"{score:.4f}"
        lines.append(f"{profile:<20} {result['thresholds'][profile]:>12.6f} {result['raw_scores'][profile]:>12.4f} "
                     f"{shown:>9} {counts['windows_detected']:>5}/{counts['windows']:<6} "
                     f"{counts['tp']:>8} {counts['fp']:>8}")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = score_detector_dir(args.nab_root, args.detector_dir, args.detector_name, args.thresholds)
    except UserError as error:
        print(f"nab_score.py: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print("\n".join(summary_lines(result)))
    print(json.dumps(result["scores"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
