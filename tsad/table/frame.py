"""The runs of a table as one frame (one row per run folder), and the metric the table shows.

A bare metric name (`roc_auc`) is looked up at each run's natural level (series.roc_auc on
series-level data, point.roc_auc on point-level data); a dotted name (`point.vus_pr`,
`validation.val_loss`) is a column of the frame as it is.
"""

from __future__ import annotations

import math

from tsad.errors import UserError
from tsad.run_folder import find_run_folders
from tsad.table.rows import LEVELS, read_run

# Columns that come first in results.csv, in this order.
LEADING_COLUMNS = ("run_dir", "status", "model", "dataset", "seed", "level", "error", "threshold.policy",
                   "fit_seconds", "score_seconds", "total_seconds")


def read_runs(paths):
    """The frame of every run folder under `paths` (see tsad.run_folder.find_run_folders)."""
    return results_frame([read_run(folder) for folder in find_run_folders(paths)])


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


def column_name(frame, key: str) -> str:
    """The frame's column for a --by key: the key itself, or the config key of that name."""
    for candidate in (key, f"config.{key}"):
        if candidate in frame.columns:
            return candidate
    raise UserError(f"unknown --by key {key!r}; use a results.csv column such as dataset, model, seed, "
                    "threshold.policy or config.model.<param>")


def metric_values(frame, metric: str):
    """The metric of every run: a dotted name as given, a bare name at the run's natural level."""
    from tsad.evaluation.report import LEVEL_METRICS

    if "." in metric:
        head, name = metric.split(".", 1)
        if metric not in frame.columns and name not in LEVEL_METRICS.get(head, ()):
            raise UserError(f"unknown metric {metric!r}: no run has it and no level reports it")
        column = frame[metric] if metric in frame.columns else [None] * len(frame)
        return [number_or_none(value) for value in column]
    reported = {c.split(".", 1)[1] for c in frame.columns if c.split(".", 1)[0] in LEVELS}
    if metric not in LEVEL_METRICS["point"] and metric not in reported:
        raise UserError(f"unknown metric {metric!r}; choose from {', '.join(LEVEL_METRICS['point'])} "
                        "or give a dotted results.csv column such as point.vus_pr or validation.val_loss")
    return [number_or_none(row.get(f"{row['level']}.{metric}")) for row in frame.to_dict("records")]


def default_metric(frame) -> tuple[str, str]:
    """The table's metric when none is asked for, and why: VUS-PR when every run is point-level, else ROC-AUC, which
    both levels report."""
    levels = set(frame["level"].dropna())
    if levels == {"point"}:
        return "vus_pr", "the runs are point-level"
    if levels == {"series"}:
        return "roc_auc", "the runs are series-level, where vus_pr does not exist"
    return "roc_auc", "reported at both levels, and the runs are of both or do not say"


def defined_at(metric: str, level) -> bool:
    """Whether runs at `level` report the bare `metric` (else a table leaves its cells blank)."""
    from tsad.evaluation.report import LEVEL_METRICS

    return "." in metric or metric in LEVEL_METRICS.get(level, LEVEL_METRICS["point"])


def number_or_none(value) -> float | None:
    """A metric value as a float; None for a missing, non-numeric or NaN one."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return None
    return float(value)


def lower_is_better(metric: str) -> bool:
    name = metric.rsplit(".", 1)[-1]
    return name.endswith(("loss", "_seconds")) or name == "n_parameters"
