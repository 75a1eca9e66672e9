"""`tsad-table PATH... [--metric NAME] [--by dataset,model] [--format md,csv,tex,png] [--out DIR] [--digits 3]`,
or `tsad-table PATH... --best validation.<key> [--best-mode min|max]` (the best run, no tables),
or `tsad-table PATH... --leaderboard [--format ...] [--out DIR]` (TSB-AD runs beside TSB-AD's leaderboard: see
tsad.table.leaderboard).

Without --metric the table shows the metric that suits the runs' level (frame.default_metric), and without --out it
is written to `tables/` beside the runs (default_out); the output says both.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from tsad.errors import UserError
from tsad.results import removed_when_disk_full
from tsad.run_folder import RunFolder
from tsad.table.best import MODES, best_lines, best_run
from tsad.table.frame import column_name, default_metric, metric_values, read_runs
from tsad.table.leaderboard import METRIC_NAMES, compare, leaderboard_table, write_leaderboard
from tsad.table.render import plot_table, to_latex, to_markdown
from tsad.table.summary import summarise

FORMATS = ("md", "csv", "tex", "png")
TABLES_DIR = "tables"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="tsad-table", description="Benchmark tables (mean ± std over seeds) from tsad run folders.")
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="run folders or folders holding them (searched recursively)")
    parser.add_argument("--metric",
                        help="metric of the table: a name looked up at each dataset's natural level (roc_auc, vus_pr, "
                             "f1, pa_f1, ...) or a dotted column of results.csv (point.vus_pr); default vus_pr when "
                             "every run is point-level, else roc_auc")
    parser.add_argument("--by", default="dataset,model",
                        help="COLUMNS,ROWS[,ROWS...]: the key that makes the table's columns, then the keys that make "
                             "its rows; any results.csv column (e.g. config.model.window); default dataset,model")
    parser.add_argument("--format", default=",".join(FORMATS),
                        help=f"what to write, comma-separated from {', '.join(FORMATS)} (png: the figure); default all")
    parser.add_argument("--out", help=f"folder to write into (created if needed); default: {TABLES_DIR}/ in the "
                                      f"folder that holds the runs (beside a single run folder)")
    parser.add_argument("--digits", type=int, default=3, help="decimals in the tables; default 3")
    parser.add_argument("--best", metavar="validation.KEY",
                        help="instead of tables, print the best run by a validation metric (e.g. validation.val_loss, "
                             "validation.labelled_val.series.roc_auc) and the tsad-predict command that uses it")
    parser.add_argument("--best-mode", metavar="|".join(MODES),
                        help="with --best: min or max is best; default min for losses, max for scores")
    parser.add_argument("--leaderboard", action="store_true",
                        help="instead of the tables above, put the TSB-AD runs among the paths (dataset=tsb_ad_u or "
                             "tsb_ad_m) beside the methods of TSB-AD's published leaderboard: mean VUS-PR over the "
                             "files of its Eva list that every run scored, ranked, overall and per source (writes "
                             "leaderboard_vus_pr.*; --by does not apply, --metric can only be vus_pr)")
    args = parser.parse_args(argv)
    try:
        if args.best_mode is not None and args.best is None:
            raise UserError(f"--best-mode {args.best_mode} needs --best validation.<key>, "
                            "e.g. --best validation.val_loss")
        if args.digits < 0:
            raise UserError(f"--digits must be an integer >= 0 (decimals in the tables), got {args.digits}")
        if args.leaderboard and args.best is not None:
            raise UserError("--leaderboard and --best do not go together; give one of them")
        if args.leaderboard and args.metric not in (None, *METRIC_NAMES):
            raise UserError(f"--leaderboard compares vus_pr, the only metric TSB-AD's leaderboard publishes per file; "
                            f"leave out --metric {args.metric}")
        if args.best is not None:  # the best run instead of tables
            _print(best_lines(best_run(args.paths, args.best, args.best_mode), args.best))
            return
        formats = _parse_list(args.format, "--format")
        unknown = [f for f in formats if f not in FORMATS]
        if unknown:
            raise UserError(f"unknown --format {', '.join(unknown)}; choose from {', '.join(FORMATS)}")
        out = Path(args.out) if args.out is not None else default_out(args.paths)
        with removed_when_disk_full(out, "--out"):
            if args.leaderboard:
                lines = make_leaderboard(args.paths, formats, out, args.digits)
            else:
                lines = make_tables(args.paths, args.metric, _parse_list(args.by, "--by"), formats, out, args.digits)
    except UserError as error:
        print(f"tsad-table: error: {error}", file=sys.stderr)
        sys.exit(2)
    _print(lines)



def _print(lines: list[str]) -> None:
    try:
        print("\n".join(lines))
    except BrokenPipeError:  # e.g. piped into `head`: what matters is done, stop quietly
        sys.stderr.close()


def _parse_list(text: str, option: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise UserError(f"{option} needs at least one value")
    return items


def default_out(paths) -> Path:
    """`tables/` in the folder that holds the given paths (their common folder, or the folder above a run folder)."""
    holder = Path(os.path.commonpath([Path(path).resolve() for path in paths]))
    if RunFolder(holder).metrics.exists() or RunFolder(holder).hydra_config.exists():
        holder = holder.parent
    return holder / TABLES_DIR


def make_tables(paths, metric: str | None, by: list[str], formats: list[str], out: Path, digits: int = 3):
    """Read the runs under `paths`, write what `formats` asks for into `out`; returns the lines to print: the
    metric when it was chosen here, the Markdown table, each file written."""
    _check_out(out)
    frame = read_runs(paths)
    if len(by) < 2:
        raise UserError("--by needs two keys or more: the column key, then the row key(s), e.g. dataset,model")
    by = [column_name(frame, key) for key in by]
    lines = []
    if metric is None:
        metric, why = default_metric(frame)
        lines.append(f"metric: {metric} ({why}; choose another with --metric)")
    frame["value"] = metric_values(frame, metric)
    table = summarise(frame, metric, by[0], by[1:])

    _create(out)
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
    return [*lines, markdown, *(f"wrote {path}" for path in written), f"tables in {out.resolve()}"]


def make_leaderboard(paths, formats: list[str], out: Path, digits: int = 3) -> list[str]:
    """Compare the TSB-AD runs under `paths` with TSB-AD's leaderboard, write what `formats` asks for into `out`;
    returns the lines to print: the coverage, what was left out, the Markdown table, each file written."""
    _check_out(out)
    comparison = compare(paths)
    table = leaderboard_table(comparison)
    _create(out)
    written = write_leaderboard(table, formats, out, digits)
    return [comparison.coverage, *(f"warning: {note}" for note in comparison.notes), to_markdown(table, digits),
            *(f"wrote {path}" for path in written), f"tables in {out.resolve()}"]


def _create(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"--out {out}: cannot create the folder ({error.strerror}); name a folder you can write") \
            from None


def _check_out(out: Path) -> None:
    """--out must be a folder, or a path where one can be made: refused before any run is read or file written."""
    for place in (out, *out.parents):
        if place.exists():
            if not place.is_dir():
                raise UserError(f"--out {out}: {place} is a file, not a folder; name a folder (created if needed)")
            return
