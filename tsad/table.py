"""`tsad-table`: benchmark tables from finished run folders.

    tsad-table outputs/multiruns/2026-11-22 [more folders...] --metric vus_pr --out tables/

Every folder under the given paths that holds a metrics.json (or a .hydra/config.yaml
but no metrics.json: a run that was killed or is still running) is one run. Writes
results.csv (one row per run: flattened config, seed, status, every metric, timings),
a Markdown and a LaTeX table (rows = models, columns = datasets, cells = mean ± std over
seeds, best per column in bold, failed runs counted), and a figure with a heatmap and the
average rank of each model across datasets.

A bare metric name (`--metric roc_auc`) is looked up at each dataset's natural level
(series.roc_auc on series-level data, point.roc_auc on point-level data); a dotted name
(`point.vus_pr`, `validation.val_loss`) is taken as it is. NAB runs add NAB's score per profile
at the run's own threshold (`nab_label_free.standard`, ...) and at thresholds optimised on the
test labels as on NAB's scoreboard (`oracle_nab.standard`, ...).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from tsad.errors import UserError

FORMATS = ("md", "csv", "tex", "png")
LEVELS = ("series", "point")
OK = "OK"
INCOMPLETE = "INCOMPLETE"
# Columns that come first in results.csv, in this order.
LEADING_COLUMNS = ("run_dir", "status", "model", "dataset", "seed", "level", "error", "threshold.policy",
                   "fit_seconds", "score_seconds", "total_seconds")
# Config keys that say where or how verbosely a run ran, not what it computed.
INCIDENTAL_CONFIG = ("config.seed", "config.paths.", "config.tags", "config.device", "config.plots",
                     "config.trainer.progress", "config.resume", "config.objective", "config.gpu_pool.")
PA_METRICS = ("pa_f1", "oracle_pa_f1")
# NAB's score per profile (NAB runs only): at the run's own threshold, and at thresholds optimised on the labels.
NAB_SCORES = ("nab_label_free", "oracle_nab")
CHANCE_MODEL = "random"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="tsad-table", description="Benchmark tables (mean ± std over seeds) from tsad run folders.")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="run folders or folders holding them (searched recursively)")
    parser.add_argument("--metric", default="vus_pr",
                        help="metric of the table: a name looked up at each dataset's natural level (roc_auc, vus_pr, "
                             "f1, pa_f1, ...) or a dotted column of results.csv (point.vus_pr); default vus_pr")
    parser.add_argument("--by", default="dataset,model",
                        help="COLUMNS,ROWS[,ROWS...]: the key that makes the table's columns, then the keys that make "
                             "its rows; any results.csv column (e.g. config.model.window); default dataset,model")
    parser.add_argument("--format", default=",".join(FORMATS),
                        help=f"what to write, comma-separated from {', '.join(FORMATS)} (png: the figure); default all")
    parser.add_argument("--out", default=".", help="folder to write into (created if needed); default: here")
    parser.add_argument("--digits", type=int, default=3, help="decimals in the tables; default 3")
    args = parser.parse_args(argv)
    try:
        formats = _parse_list(args.format, "--format")
        unknown = [f for f in formats if f not in FORMATS]
        if unknown:
            raise UserError(f"unknown --format {', '.join(unknown)}; choose from {', '.join(FORMATS)}")
        written, markdown = make_tables(args.paths, args.metric, _parse_list(args.by, "--by"), formats,
                                        Path(args.out), args.digits)
    except UserError as error:
        print(f"tsad-table: error: {error}", file=sys.stderr)
        sys.exit(2)
    try:
        print(markdown)
        for path in written:
            print(f"wrote {path}")
    except BrokenPipeError:  # e.g. piped into `head`: the files are written, stop quietly
        sys.stderr.close()


def _parse_list(text: str, option: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise UserError(f"{option} needs at least one value")
    return items


def make_tables(paths, metric: str, by: list[str], formats: list[str], out: Path, digits: int = 3):
    """Read the runs under `paths`, write what `formats` asks for into `out`; returns (paths written, markdown)."""
    runs = [read_run(folder) for folder in find_run_folders(paths)]
    frame = results_frame(runs)
    if len(by) < 2:
        raise UserError("--by needs two keys or more: the column key, then the row key(s), e.g. dataset,model")
    by = [_column_name(frame, key) for key in by]
    frame["value"] = metric_values(frame, metric)
    table = summarise(frame, metric, by[0], by[1:])

    out.mkdir(parents=True, exist_ok=True)
    stem = metric.replace("/", "_")
    written = []
    if "csv" in formats:
        frame.drop(columns="value").to_csv(out / "results.csv", index=False)
        written.append(out / "results.csv")
    markdown = to_markdown(table, digits)
    if "md" in formats:
        (out / f"table_{stem}.md").write_text(markdown + "\n")
        written.append(out / f"table_{stem}.md")
    if "tex" in formats:
        (out / f"table_{stem}.tex").write_text(to_latex(table, digits))
        written.append(out / f"table_{stem}.tex")
    if "png" in formats:
        plot_table(table, out / f"figure_{stem}.png")
        written.append(out / f"figure_{stem}.png")
    return written, markdown


# Reading run folders ------------------------------------------------------------------

def find_run_folders(paths) -> list[Path]:
    """Folders with a metrics.json, or with a Hydra config but no metrics.json (killed or unfinished runs)."""
    folders = set()
    for path in map(Path, paths):
        if not path.exists():
            raise UserError(f"{path} does not exist; give run folders or folders that hold them")
        folders.update(p.parent.resolve() for p in path.rglob("metrics.json"))
        folders.update(p.parent.parent.resolve() for p in path.rglob(".hydra/config.yaml"))
        if (path / "metrics.json").exists() or (path / ".hydra" / "config.yaml").exists():
            folders.add(path.resolve())
    if not folders:
        raise UserError(f"no run folders (with metrics.json) under {', '.join(map(str, paths))}")
    return sorted(folders)


def read_run(folder: Path) -> dict:
    """One flat row: identity, status, threshold, metrics, timings, then the config under config.*."""
    config = _read_config(folder)
    row = {"run_dir": str(folder)}
    path = folder / "metrics.json"
    if not path.exists():
        record = {"status": INCOMPLETE, "error": "no metrics.json: the run was killed or has not finished"}
    else:
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            record = {"status": "UNREADABLE", "error": f"metrics.json: {error}"}
    row["status"] = record.get("status") or (OK if record.get("metrics") else "UNKNOWN")
    row["model"] = record.get("model") or _nested(config, "model", "name")
    row["dataset"] = record.get("dataset") or _nested(config, "dataset", "name")
    row["seed"] = record.get("seed", config.get("seed"))
    metrics = record.get("metrics") or {}
    if metrics and not all(isinstance(v, dict) for v in metrics.values()):
        metrics = {record.get("level") or _nested(config, "dataset", "level") or "series": metrics}
    row["level"] = (record.get("level") or _nested(config, "dataset", "level")
                    or next((level for level in LEVELS if level in metrics), None))
    row["error"] = record.get("error")
    row.update(flatten(record.get("threshold") or {}, "threshold"))
    for level, level_metrics in metrics.items():
        row.update(flatten(level_metrics, level))
    row.update(flatten(record.get("validation") or {}, "validation"))
    for key in NAB_SCORES:
        row.update(flatten(record.get(key) or {}, key))
    if "oracle_nab" not in record:  # older runs named the label-optimised NAB score plain `nab`
        row.update(flatten(record.get("nab") or {}, "oracle_nab"))
    timing = record.get("timing") or {}
    row.update({key: timing.get(key) for key in ("fit_seconds", "score_seconds", "total_seconds")})
    for key in ("n_parameters", "epochs_trained", "device"):
        if key in record:
            row[key] = record[key]
    if record.get("tags"):
        row["tags"] = ",".join(map(str, record["tags"]))
    row.update(flatten(record.get("data") or {}, "data"))
    row.update(flatten(record.get("environment") or {}, "environment"))
    row.update(flatten(config, "config"))
    return row


def _read_config(folder: Path) -> dict:
    """The resolved .hydra/config.yaml of a run; {} when it is missing or unreadable."""
    path = folder / ".hydra" / "config.yaml"
    if not path.exists():
        return {}
    from omegaconf import OmegaConf

    try:
        config = OmegaConf.load(path)
    except Exception:  # a damaged config must not hide the run's metrics
        return {}
    try:
        return OmegaConf.to_container(config, resolve=True)
    except Exception:  # an interpolation this process cannot resolve: keep it as written
        return OmegaConf.to_container(config, resolve=False)


def _nested(mapping: dict, *keys):
    for key in keys:
        if not isinstance(mapping, dict):
            return None
        mapping = mapping.get(key)
    return mapping


def flatten(mapping: dict, prefix: str) -> dict:
    """{'a': {'b': 1}, 'c': [1, 2]} -> {'prefix.a.b': 1, 'prefix.c': '[1, 2]'}."""
    flat = {}
    for key, value in mapping.items():
        name = f"{prefix}.{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name))
        elif isinstance(value, (list, tuple)):
            flat[name] = json.dumps(value)
        else:
            flat[name] = value
    return flat


def results_frame(runs: list[dict]):
    import pandas as pd

    frame = pd.DataFrame(runs)
    for column in LEADING_COLUMNS:
        if column not in frame:
            frame[column] = None
    config = sorted(c for c in frame.columns if c.startswith("config."))
    leading = list(LEADING_COLUMNS)
    middle = [c for c in frame.columns if c not in leading and c not in config]
    return frame[leading + middle + config]


def _column_name(frame, key: str) -> str:
    for candidate in (key, f"config.{key}"):
        if candidate in frame.columns:
            return candidate
    raise UserError(f"unknown --by key {key!r}; use a results.csv column such as dataset, model, seed, "
                    "threshold.policy or config.model.<param>")


# The metric of the table ----------------------------------------------------------------

def metric_values(frame, metric: str):
    """The metric of every run: a dotted name as given, a bare name at the run's natural level."""
    from tsad.evaluation.report import LEVEL_METRICS

    if "." in metric:
        head, name = metric.split(".", 1)
        if metric not in frame.columns and name not in LEVEL_METRICS.get(head, ()):
            raise UserError(f"unknown metric {metric!r}: no run has it and no level reports it")
        column = frame[metric] if metric in frame.columns else [None] * len(frame)
        return [_number(value) for value in column]
    reported = {c.split(".", 1)[1] for c in frame.columns if c.split(".", 1)[0] in LEVELS}
    if metric not in LEVEL_METRICS["point"] and metric not in reported:
        raise UserError(f"unknown metric {metric!r}; choose from {', '.join(LEVEL_METRICS['point'])} "
                        "or give a dotted results.csv column such as point.vus_pr or validation.val_loss")
    return [_number(row.get(f"{row['level']}.{metric}")) for row in frame.to_dict("records")]


def defined_at(metric: str, level) -> bool:
    """Whether runs at `level` report the bare `metric` (else a table leaves its cells blank)."""
    from tsad.evaluation.report import LEVEL_METRICS

    return "." in metric or metric in LEVEL_METRICS.get(level, LEVEL_METRICS["point"])


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return None
    return float(value)


def lower_is_better(metric: str) -> bool:
    name = metric.rsplit(".", 1)[-1]
    return name.endswith(("loss", "_seconds")) or name == "n_parameters"


# Aggregation ------------------------------------------------------------------------------

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
    """Config columns that say what a run computed: not where it ran, and not the seed or a copy of it."""
    seed = frame["seed"].map(_label)
    compared = []
    for column in frame.columns:
        if not column.startswith("config.") or column.startswith(INCIDENTAL_CONFIG):
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
        notes.append(f"{where}: several runs share a seed ({', '.join(map(_label, seeds[seeds.duplicated()].unique()))})")
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


# Rendering --------------------------------------------------------------------------------

def cell_text(cell: dict | None, digits: int) -> tuple[str, list[str]]:
    """The number part and the annotations of one cell; blank when no run made it."""
    if cell is None:
        return "", []
    notes = [f"[{cell[key]} {word}]" for key, word in (("failed", "failed"), ("unfinished", "unfinished"),
                                                        ("missing", "n/a")) if cell[key]]
    if cell["mean"] is None:
        return "–", notes
    text = f"{cell['mean']:.{digits}f}"
    if cell["std"] is not None:
        text += f" ± {cell['std']:.{digits}f}"
    return text, [f"({cell['n']})", *notes]


def _is_best(table: dict, row: str, column: str, digits: int) -> bool:
    cell = table["cells"].get((row, column))
    best = table["best"].get(column)
    return cell is not None and cell["mean"] is not None and round(cell["mean"], digits) == round(best, digits)


def to_markdown(table: dict, digits: int = 3) -> str:
    header = [table["row_title"], *table["columns"]]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join([" --- "] + [" ---: "] * len(table["columns"])) + "|"]
    for row in table["rows"]:
        texts = []
        for column in table["columns"]:
            number, notes = cell_text(table["cells"].get((row, column)), digits)
            if _is_best(table, row, column, digits):
                number = f"**{number}**"
            texts.append(" ".join([number, *notes]).strip())
        lines.append("| " + " | ".join([row, *texts]) + " |")
    return "\n".join(lines) + "\n\n" + "\n".join(table["caption"])


def _tex(text: str) -> str:
    for plain, escaped in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("&", r"\&"), ("%", r"\%"), ("#", r"\#"),
                           ("$", r"\$"), ("{", r"\{"), ("}", r"\}"), ("~", r"\textasciitilde{}"),
                           ("^", r"\textasciicircum{}")):
        text = text.replace(plain, escaped)
    return text


def to_latex(table: dict, digits: int = 3) -> str:
    """A booktabs table; needs \\usepackage{booktabs} in the document."""
    lines = [r"\begin{table}[t]", r"\centering", r"\small",
             r"\begin{tabular}{l" + "r" * len(table["columns"]) + "}", r"\toprule",
             " & ".join(_tex(t) for t in [table["row_title"], *table["columns"]]) + r" \\", r"\midrule"]
    for row in table["rows"]:
        texts = []
        for column in table["columns"]:
            number, notes = cell_text(table["cells"].get((row, column)), digits)
            number = number.replace(" ± ", r" $\pm$ ").replace("–", "--")
            if _is_best(table, row, column, digits):
                number = rf"\textbf{{{number}}}"
            texts.append(" ".join([number, *(_tex(n) for n in notes)]).strip())
        lines.append(" & ".join([_tex(row), *texts]) + r" \\")
    caption = " ".join(_tex(line) for line in table["caption"]).replace("±", r"$\pm$")
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{caption}}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


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


def plot_table(table: dict, path: Path) -> None:
    """Heatmap of the mean metric (rows × columns) and the average rank of each row across columns."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows, columns = table["rows"], table["columns"]
    means = np.array([[(table["cells"].get((r, c)) or {}).get("mean") for c in columns] for r in rows], dtype=float)
    ranks = average_ranks(table)
    figure, (heat, rank) = plt.subplots(
        1, 2, figsize=(3 + 1.3 * len(columns) + 4, 1.2 + 0.45 * len(rows)),
        gridspec_kw={"width_ratios": [max(len(columns), 1) * 1.3 + 1.5, 4]})
    colormap = plt.get_cmap("viridis_r" if table["lower_is_better"] else "viridis").with_extremes(bad="#dddddd")
    image = heat.imshow(np.ma.masked_invalid(means), cmap=colormap, aspect="auto")
    heat.set_xticks(range(len(columns)), columns, rotation=30, ha="right")
    heat.set_yticks(range(len(rows)), rows)
    finite = means[np.isfinite(means)]
    middle = (finite.min() + finite.max()) / 2 if len(finite) else 0
    for i in range(len(rows)):
        for j in range(len(columns)):
            if np.isfinite(means[i, j]):
                dark = (means[i, j] < middle) != table["lower_is_better"]
                heat.text(j, i, f"{means[i, j]:.3f}", ha="center", va="center", fontsize=8,
                          color="white" if dark else "black")
    figure.colorbar(image, ax=heat, fraction=0.046, pad=0.04)
    heat.set_title(f"{table['metric']}: mean over seeds")
    names = [name for name, _, _ in ranks][::-1]
    rank.barh(names, [value for _, value, _ in ranks][::-1], color="#4477aa")
    for y, (_, value, count) in enumerate(ranks[::-1]):
        rank.text(value, y, f" {value:.2f} ({count})", va="center", fontsize=8)
    rank.set_xlim(0, len(rows) + 1)
    rank.set(xlabel=f"average rank over {len(columns)} {table['column_title']} column(s) (1 = best)",
             title="Average rank")
    rank.spines[["top", "right"]].set_visible(False)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


if __name__ == "__main__":
    main()
