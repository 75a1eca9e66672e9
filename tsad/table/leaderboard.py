"""`tsad-table --leaderboard`: tsad's TSB-AD runs beside the methods of TSB-AD's leaderboard, on exactly the files the
runs scored.

A TSB-AD run is a run folder whose config's `dataset.family` starts with `tsb_ad`; its per_file.csv has one row per
file (`file`, `source`, `vus_pr`, ...). The comparison covers the files of the leaderboard's list (TSB-AD-U-Eva or
TSB-AD-M-Eva, tsb_ad_reference) that every finished TSB-AD run scored, and shows VUS-PR, the leaderboard's metric:
one row per tsad run (`tsad: <model>`, with its seed when several runs share a model) and per leaderboard method,
ranked by the mean over all covered files (1 = best; equal means share a rank); columns: that mean, then the mean per
source, each cell with the number of files it averages. Runs that are not TSB-AD runs are left out and counted,
TSB-AD runs that did not finish OK are left out and named; files a run scored that the leaderboard lacks (e.g.
Tuning-list files), and leaderboard files that only some runs scored, are counted and named in one line each.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tsad.errors import UserError
from tsad.results import OK
from tsad.run_folder import PER_FILE, RunFolder
from tsad.table.frame import read_runs
from tsad.table.render import plot_table, to_latex, to_markdown
from tsad.table.tsb_ad_reference import Leaderboard, load_leaderboard

FAMILY_PREFIX = "tsb_ad"
BENCHMARKS = ("U", "M")
METRIC = "vus_pr"
METRIC_NAMES = (METRIC, f"point.{METRIC}")
ALL_FILES = "all"
TSAD_PREFIX = "tsad: "
NAMED_AT_MOST = 10
STEM = f"leaderboard_{METRIC}"


@dataclass
class Comparison:
    """VUS-PR of every compared row (tsad runs, then leaderboard methods) on every covered file."""

    leaderboard: Leaderboard
    values: object  # pandas.DataFrame: index the covered files, one column per row of the table
    sources: object  # pandas.Series: the source of each covered file
    tsad_rows: list[str]
    notes: list[str]

    @property
    def coverage(self) -> str:
        listed = len(self.leaderboard.vus_pr)
        return f"{len(self.values)} of {listed} files of {self.leaderboard.file_list} covered"


def compare(paths) -> Comparison:
    """The TSB-AD runs under `paths` and the leaderboard of their benchmark, on the files every run scored."""
    frame = read_runs(paths)
    families = frame["config.dataset.family"] if "config.dataset.family" in frame else [None] * len(frame)
    is_tsb_ad = [isinstance(family, str) and family.startswith(FAMILY_PREFIX) for family in families]
    runs = frame[is_tsb_ad].to_dict("records")
    where = ", ".join(map(str, paths))
    if not runs:
        raise UserError(f"no TSB-AD run (dataset.family {FAMILY_PREFIX}_*) among the {len(frame)} runs under {where}; "
                        "run tsad-run dataset=tsb_ad_u (or tsb_ad_m) first, or leave out --leaderboard")
    notes = []
    if len(runs) < len(frame):
        notes.append(f"left out {len(frame) - len(runs)} run(s) that are not TSB-AD runs")
    leaderboard = load_leaderboard(_one_benchmark(runs))
    finished = [run for run in runs if run["status"] == OK and RunFolder(run["run_dir"]).per_file.exists()]
    if not finished:
        raise UserError(f"none of the {len(runs)} TSB-AD runs under {where} finished OK with a {PER_FILE}; "
                        "rerun them (tsad-run ... resume=true) or give the folders of finished runs")
    if len(finished) < len(runs):
        left_out = [_shown(run) for run in runs if run not in finished]
        notes.append(f"left out {len(left_out)} TSB-AD run(s) that did not finish OK or have no {PER_FILE}: "
                     f"{_named(left_out)}")
    scored = dict(zip(_row_labels(finished), (_scored_files(Path(run["run_dir"])) for run in finished)))
    on_board = set(leaderboard.vus_pr.index)
    every_file = set().union(*(set(table.index) for table in scored.values()))
    off_board = sorted(every_file - on_board)
    if off_board:
        notes.append(f"{len(off_board)} file(s) the runs scored are not on the leaderboard ({leaderboard.file_list}) "
                     f"and are left out: {_named(off_board)}")
    covered = sorted(set.intersection(*(set(table.index) & on_board for table in scored.values())))
    partly = sorted((every_file & on_board) - set(covered))
    if partly:
        notes.append(f"{len(partly)} leaderboard file(s) that not every run scored are left out: {_named(partly)}")
    if not covered:
        raise UserError(f"no file of {leaderboard.file_list} was scored by every TSB-AD run under {where}; compare "
                        f"runs on the same files of that list (e.g. each with dataset.list={leaderboard.file_list})")
    import pandas as pd

    values = pd.DataFrame({label: table.loc[covered, METRIC] for label, table in scored.items()})
    values = values.join(leaderboard.vus_pr.loc[covered])
    sources = pd.concat([table["source"] for table in scored.values()])
    sources = sources[~sources.index.duplicated()].loc[covered].astype(str)
    return Comparison(leaderboard, values, sources, list(scored), notes)


def _one_benchmark(runs: list[dict]) -> str:
    """The benchmark (U or M) all `runs` were run on: dataset.benchmark where the config has it, else the family's
    suffix (tsb_ad_u, tsb_ad_m)."""
    by_benchmark: dict[str, list[str]] = {}
    for run in runs:
        given = run.get("config.dataset.benchmark")
        family = run["config.dataset.family"]
        benchmark = (given if isinstance(given, str) else family[len(FAMILY_PREFIX):].strip("_")).upper()
        if benchmark not in BENCHMARKS:
            raise UserError(f"{run['run_dir']}: cannot tell whether dataset.family {family} is TSB-AD-U or TSB-AD-M; "
                            "a TSB-AD run's dataset.benchmark (or family tsb_ad_u / tsb_ad_m) says which")
        by_benchmark.setdefault(benchmark, []).append(_shown(run))
    if len(by_benchmark) > 1:
        listed = "; ".join(f"TSB-AD-{benchmark}: {_named(names)}" for benchmark, names in sorted(by_benchmark.items()))
        raise UserError(f"runs of TSB-AD-U and TSB-AD-M mixed ({listed}); the leaderboards differ: give the runs of "
                        "one benchmark")
    return next(iter(by_benchmark))


def _row_labels(runs: list[dict]) -> list[str]:
    """`tsad: <model>`, with the seed when several runs share the model, and the folder when that is not enough."""
    models = [str(run["model"]) for run in runs]
    labels = [f"{TSAD_PREFIX}{model}" + (f" seed={run['seed']}" if models.count(model) > 1 else "")
              for model, run in zip(models, runs)]
    return [label + (f" ({_shown(run)})" if labels.count(label) > 1 else "") for label, run in zip(labels, runs)]


def _shown(run: dict) -> str:
    """A run's folder as the user can find it: relative to the working folder."""
    return os.path.relpath(run["run_dir"])


def _scored_files(folder: Path):
    """A run's per_file.csv, indexed by file: the files it has a VUS-PR for, with their source."""
    import pandas as pd

    path = RunFolder(folder).per_file
    try:
        table = pd.read_csv(path)
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: unreadable ({error}); rerun the run or leave its folder out") from None
    missing = [column for column in ("file", "source", METRIC) if column not in table]
    if missing:
        raise UserError(f"{path}: no column {', '.join(missing)}; a TSB-AD run's {PER_FILE} has file, source and "
                        f"{METRIC}: rerun it with this version of tsad")
    table[METRIC] = pd.to_numeric(table[METRIC], errors="coerce")
    table = table.dropna(subset=[METRIC]).drop_duplicates("file", keep="last")
    return table.set_index("file")[["source", METRIC]]


def _named(names: list[str]) -> str:
    shown = ", ".join(names[:NAMED_AT_MOST])
    return shown + (f" and {len(names) - NAMED_AT_MOST} more" if len(names) > NAMED_AT_MOST else "")


def leaderboard_table(comparison: Comparison) -> dict:
    """The comparison as a table for tsad.table.render: rows ranked by the mean over all covered files, columns that
    mean and the mean per source, each cell with the number of files it averages."""
    values, sources = comparison.values, comparison.sources
    means = values.mean()
    ranks = means.rank(ascending=False, method="min").astype(int)
    order = sorted(values.columns, key=lambda name: (-means[name], name))
    rows = [f"{ranks[name]}. {name}" for name in order]
    columns = [ALL_FILES, *sorted(sources.unique())]
    cells = {}
    for name, row in zip(order, rows):
        cells[row, ALL_FILES] = _cell(values[name])
        for source, files in values[name].groupby(sources):
            cells[row, source] = _cell(files)
    best = {column: max(cells[row, column]["mean"] for row in rows) for column in columns}
    leaderboard = comparison.leaderboard
    caption = [
        f"VUS-PR (TSB-AD's leaderboard metric): tsad's runs ({TSAD_PREFIX}<model>) beside the methods of TSB-AD's "
        f"leaderboard, on the same files: {comparison.coverage}.",
        f"Cells: mean VUS-PR over the files of the column (number of files); rows ranked by the mean over all covered "
        f"files (1 = best); bold: best per column. The leaderboard's values are TSB-AD's published per-file results "
        f"(its tables for {leaderboard.file_list}, each method with the hyperparameters TSB-AD tuned).",
        *comparison.notes,
    ]
    return {"metric": METRIC, "rows": rows, "columns": columns, "cells": cells, "best": best,
            "row_title": "rank. method", "column_title": "source", "lower_is_better": False, "caption": caption}


def _cell(values) -> dict:
    return {"mean": float(values.mean()), "std": None, "n": len(values), "failed": 0, "unfinished": 0, "missing": 0}


def long_frame(table: dict):
    """The table as one row per method and column: rank, method, whether it is a tsad run, source, files, vus_pr."""
    import pandas as pd

    records = []
    for row in table["rows"]:
        rank, method = row.split(". ", 1)
        for column in table["columns"]:
            cell = table["cells"][row, column]
            records.append({"rank": int(rank), "method": method, "tsad_run": method.startswith(TSAD_PREFIX),
                            "source": column, "files": cell["n"], METRIC: cell["mean"]})
    return pd.DataFrame(records)


def write_leaderboard(table: dict, formats: list[str], out: Path, digits: int) -> list[Path]:
    """Write what `formats` asks for into `out` (an existing folder); returns the files written. The figure shows
    the sources (the heatmap and each row's average rank over them)."""
    written = []
    if "csv" in formats:
        long_frame(table).to_csv(out / f"{STEM}.csv", index=False)
        written.append(out / f"{STEM}.csv")
    if "md" in formats:
        (out / f"{STEM}.md").write_text(to_markdown(table, digits) + "\n")
        written.append(out / f"{STEM}.md")
    if "tex" in formats:
        (out / f"{STEM}.tex").write_text(to_latex(table, digits))
        written.append(out / f"{STEM}.tex")
    if "png" in formats:
        plot_table({**table, "columns": table["columns"][1:], "title": "VUS-PR: mean over the covered files"},
                   out / f"figure_{STEM}.png")
        written.append(out / f"figure_{STEM}.png")
    return written
