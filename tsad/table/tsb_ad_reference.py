"""TSB-AD's leaderboard as data: every published method's VUS-PR on every file of the Eva lists, read from the tables
shipped in tsb_ad_leaderboard/ (TSB-AD's merged per-file tables, unchanged; source, commit and licence in its
README.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.resources import files

DATA_FOLDER = "tsb_ad_leaderboard"
# benchmark -> (shipped table, the file list its rows are)
TABLES = {"U": ("uni_vus_pr.csv", "TSB-AD-U-Eva"), "M": ("multi_vus_pr.csv", "TSB-AD-M-Eva")}
# Columns of the tables that describe the series, not a method's score.
SERIES_COLUMNS = ("ts_len", "anomaly_len", "num_anomaly", "avg_anomaly_len", "anomaly_ratio", "point_anomaly",
                  "seq_anomaly")


@dataclass(frozen=True)
class Leaderboard:
    """One benchmark's leaderboard: `vus_pr` has one row per file (index: the file name) and one column per method."""

    benchmark: str
    file_list: str
    vus_pr: object  # pandas.DataFrame

    @property
    def methods(self) -> list[str]:
        return list(self.vus_pr.columns)


@cache
def load_leaderboard(benchmark: str) -> Leaderboard:
    """The shipped leaderboard of TSB-AD-`benchmark` (U or M)."""
    import pandas as pd

    name, file_list = TABLES[benchmark]
    with (files("tsad.table") / DATA_FOLDER / name).open("rb") as handle:
        table = pd.read_csv(handle)
    scores = table.drop(columns=list(SERIES_COLUMNS)).set_index("file").astype(float)
    return Leaderboard(benchmark, file_list, scores)
