"""False alarms of NAB runs by where they fall: in the first rows after each file's probationary period or later.

    python scripts/nab_after_probation.py RUN_DIR [...] [--rows 100]

A false alarm is a row after the probationary period whose anomaly score reaches the run's label-free threshold
outside every labelled anomaly window (NAB's count `fp`). Prints, per run, the false alarms in the `--rows` rows
right after the probationary period and after them. The anomaly likelihood's first fit reads the probationary
rows' raw scores, so scores there that are not like the later ones show as false alarms in the first rows.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tsad.data.nab_format import probationary_length


def false_alarms(run: Path, rows: int) -> dict:
    """Counts of a run's false alarms in the first `rows` rows after probation and later."""
    record = json.loads((run / "metrics.json").read_text())
    threshold = record["nab_detail"]["label_free_threshold"]
    steps = pd.read_csv(run / "scores" / "test_steps.csv.gz")
    early = later = 0
    for _, series in steps.groupby("series", sort=False):
        probation = probationary_length(len(series))
        after = series.iloc[probation:]
        alarm = (after["score"].to_numpy() >= threshold) & (after["label"].to_numpy() == 0)
        early += int(alarm[:rows].sum())
        later += int(alarm[rows:].sum())
    return {f"first {rows} rows": early, "later": later}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--rows", type=int, default=100)
    args = parser.parse_args()
    for run in args.runs:
        print(run, false_alarms(run, args.rows))


if __name__ == "__main__":
    main()
