"""A table's content from the frame of its runs: cells of mean ± std over seeds, the best per column,
average ranks, and the caption's notes (what was looked up, failed runs, cells that mix configurations).
"""

from __future__ import annotations

import math

from tsad.config_hash import NOT_COMPARED_KEYS, is_under
from tsad.results import INCOMPLETE, OK
from tsad.table.frame import defined_at, lower_is_better

PA_METRICS = ("pa_f1", "oracle_pa_f1")
CHANCE_MODEL = "random"


def summarise(frame, metric: str, column_key: str, row_keys: list[str]) -> dict:
    """Cells (mean, std, n, failed, unfinished, missing) per row and column, plus the notes of the caption."""
    frame = frame.copy()
    compared = _compared_config(frame)
    frame["_column"] = frame[column_key].map(_label)
    frame["_row"] = frame[row_keys].apply(lambda r: " / ".join(_label(v) for v in r), axis=1)
    frame["_defined"] = [defined_at(metric, level) for level in frame["level"]]
    columns = sorted(frame["_column"].unique())
    rows = sorted(frame["_row"].unique())
    pa_table = metric.rsplit(".", 1)[-1] in PA_METRICS and row_keys == ["model"] and frame["_defined"].any()
    if pa_table and CHANCE_MODEL not in rows:
        rows.append(CHANCE_MODEL)
    if row_keys == ["model"] and CHANCE_MODEL in rows:  # the chance reference goes last
        rows = [r for r in rows if r != CHANCE_MODEL] + [CHANCE_MODEL]
    cells, notes = {}, []
    for (row, column), runs in frame.groupby(["_row", "_column"]):
        ok, defined = runs["status"] == OK, runs["_defined"]
        values = runs.loc[ok, "value"].dropna().to_numpy(dtype=float)
        unfinished = int((runs["status"] == INCOMPLETE).sum())
        failed = int((~ok).sum()) - unfinished
        if not defined.any() and not failed + unfinished:
            continue  # the metric does not exist at this column's level: a blank cell
        cells[row, column] = {
            "mean": float(values.mean()) if len(values) else None,
            "std": float(values.std(ddof=1)) if len(values) > 1 else None,
            "n": len(values),
            "failed": failed,
            "unfinished": unfinished,
            "missing": int((ok & defined).sum() - len(values)),
        }
        notes += _cell_notes(runs, f"{row} on {column}", [c for c in compared if c not in row_keys + [column_key]])
    best = {}
    for column in columns:
        means = [cells[r, column]["mean"] for r in rows if cells.get((r, column), {}).get("mean") is not None]
        if means:
            best[column] = min(means) if lower_is_better(metric) else max(means)
    for column in columns:
        notes += _column_notes(frame[frame["_column"] == column], column, compared)
    levels = {c: sorted(set(frame.loc[frame["_column"] == c, "level"].dropna())) for c in columns}
    defined_columns = sorted(set(frame.loc[frame["_defined"], "_column"]))
    table = {"metric": metric, "rows": rows, "columns": columns, "cells": cells, "best": best,
             "row_title": " / ".join(_short(k) for k in row_keys), "column_title": _short(column_key),
             "lower_is_better": lower_is_better(metric), "levels": levels, "defined_columns": defined_columns}
    table["caption"] = _caption(frame, table, pa_table) + notes
    return table


def _label(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "?"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _short(key: str) -> str:
    return key[len("config."):] if key.startswith("config.") else key


def _compared_config(frame) -> list[str]:
    """Config columns the runs of a cell should agree on: none of tsad.config_hash.NOT_COMPARED_KEYS (where and how
    a run executed, its seed, device, plots, tags), and no copy of the seed."""
    seed = frame["seed"].map(_label)
    compared = []
    for column in frame.columns:
        if not column.startswith("config.") or is_under(_short(column), NOT_COMPARED_KEYS):
            continue
        given = frame[column].notna()
        if given.any() and (frame.loc[given, column].map(_label) == seed[given]).all():
            continue  # e.g. dataset.seed: ${seed}
        compared.append(column)
    return compared


def _cell_notes(runs, where: str, compared: list[str]) -> list[str]:
    """Warn when a cell averages runs that are not just different seeds of one configuration."""
    notes = []
    seeds = runs["seed"].dropna()
    if seeds.duplicated().any():
        shared = ", ".join(map(_label, seeds[seeds.duplicated()].unique()))
        notes.append(f"{where}: several runs share a seed ({shared})")
    differing = [c for c in compared if runs[c].map(_label).nunique() > 1]
    if differing:
        notes.append(f"{where} mixes runs that differ in {', '.join(differing[:5])}"
                     f"{' ...' if len(differing) > 5 else ''}; split them with --by")
    return notes


def _column_notes(runs, column: str, compared: list[str]) -> list[str]:
    """Warn when the rows of a column were not run on the same data and seeds."""
    notes = []
    data_keys = [c for c in compared if c.startswith("config.dataset.")]
    differing = [c for c in data_keys if runs[c].map(_label).nunique() > 1]
    if differing:
        notes.append(f"column {column} holds runs on different data: they differ in {', '.join(differing[:5])}")
    seed_sets = runs.groupby("_row")["seed"].agg(lambda seeds: ",".join(sorted(set(map(_label, seeds)))))
    if seed_sets.nunique() > 1:
        listed = "; ".join(f"{row}: {seeds}" for row, seeds in seed_sets.items())
        notes.append(f"column {column}: rows were run on different seeds ({listed})")
    return notes


def _caption(frame, table: dict, pa_table: bool) -> list[str]:
    metric = table["metric"]
    lines = []
    if "." in metric:
        lines.append(f"Metric: {metric}" + (" (lower is better)." if table["lower_is_better"] else "."))
    else:
        looked_up = "; ".join(f"{column}: {_lookup(metric, levels)}" for column, levels in table["levels"].items())
        lines.append(f"Metric: {metric} at each dataset's natural level ({looked_up})"
                     + (", lower is better." if table["lower_is_better"] else "."))
    lines.append("Cells: mean ± sample std over seeds (number of runs with a value); bold: best per column; "
                 "[k failed]: runs that ended without status OK (error, out of memory, NaN loss), left out of the "
                 "mean; [k unfinished]: run folders without metrics.json (killed or still running); "
                 "[k n/a]: finished runs that lack this metric (older tsad versions or undefined).")
    lines.append(f"Threshold (for thresholded metrics): {_threshold_summary(frame)}.")
    windows = frame.get("point.vus_window_rule")
    if "vus" in metric and windows is not None and windows.notna().any():
        lines.append(f"VUS window: {'; '.join(sorted(windows.dropna().unique()))}.")
    if metric.split(".", 1)[0] == "oracle_nab":
        lines.append("oracle_nab: NAB's score at thresholds optimised on the test labels, as on NAB's scoreboard; "
                     "nab_label_free is the score at the run's own threshold, chosen without labels.")
    if pa_table:
        lines.append("pa_f1 (point-adjusted F1) rewards any hit inside an anomaly segment, so even random scores "
                     f"reach high values: the {CHANCE_MODEL} row shows what chance reaches on the same data.")
        missing = [c for c in table["defined_columns"] if (CHANCE_MODEL, c) not in table["cells"]]
        if missing:
            lines.append(f"No {CHANCE_MODEL}-detector runs on {', '.join(missing)}: run model={CHANCE_MODEL} "
                         "on the same data to see the chance level of pa_f1.")
    return lines


def _lookup(metric: str, levels: list[str]) -> str:
    names = [f"{level}.{metric}" if defined_at(metric, level) else f"none at {level} level" for level in levels]
    return "/".join(names) or "no level recorded"


def _threshold_summary(frame) -> str:
    """The threshold policies of the finished runs, with their parameters."""
    frame = frame[frame["status"] == OK]
    if "threshold.policy" not in frame or frame["threshold.policy"].isna().all():
        return "not recorded"
    params = [c for c in frame.columns if c.startswith("threshold.") and c != "threshold.policy"
              and not c.startswith("threshold.values.")]
    described = frame.apply(lambda r: _describe_threshold(r, params), axis=1)
    counts = described.value_counts()
    if len(counts) == 1:
        return counts.index[0]
    return "; ".join(f"{text} ({count} runs)" for text, count in counts.items())


def _describe_threshold(row, params: list[str]) -> str:
    if not isinstance(row["threshold.policy"], str):
        return "not recorded"
    values = [f"{c.split('.', 1)[1]}={_label(row[c])}" for c in params if _label(row[c]) != "?"]
    return f"{row['threshold.policy']}" + (f" ({', '.join(values)})" if values else "")


def average_ranks(table: dict) -> list[tuple[str, float, int]]:
    """(row, mean rank over the columns where it has a value, number of such columns), best first.

    Rank 1 is the best mean in a column; ties share the average of their ranks.
    """
    import pandas as pd

    means = pd.DataFrame({c: {r: (table["cells"].get((r, c)) or {}).get("mean") for r in table["rows"]}
                          for c in table["columns"]}, dtype=float)
    ranks = means.rank(ascending=table["lower_is_better"], method="average")
    result = [(row, float(ranks.loc[row].mean()), int(ranks.loc[row].notna().sum()))
              for row in table["rows"] if ranks.loc[row].notna().any()]
    return sorted(result, key=lambda item: item[1])
