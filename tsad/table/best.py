"""`tsad-table SWEEP_DIR --best validation.<key>`: the best run of a sweep, chosen without test labels.

Only `validation.*` metrics may choose (the best validation loss, or scores on the labelled validation
split): choosing on a test metric would leak the test labels into the choice. Losses are minimised and
the scores tsad reports per level (roc_auc, pr_auc, vus_pr, f1, ...) maximised; any other key needs
`--best-mode min|max`. Runs that did not finish OK, or lack the metric, are skipped and counted, and the models
that lack it are named. The classic models train no loss, so `validation.val_loss` ranks only the deep ones; with
`dataset.labelled_val` every model has `validation.labelled_val.<level>.roc_auc` (and pr_auc, vus_pr) to rank by,
which the one-line error for a set of runs without the metric says.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from tsad.errors import UserError
from tsad.results import OK
from tsad.run_folder import find_run_folders
from tsad.table.frame import lower_is_better, number_or_none
from tsad.table.rows import read_run

VALIDATION_PREFIX = "validation."
MODES = ("min", "max")
LOSS_KEY = "validation.val_loss"  # only the models the shared trainer trains have one
LABELLED_KEY = "validation.labelled_val.series.roc_auc"  # every model has it with dataset.labelled_val


@dataclass
class BestRun:
    """The chosen run, its value, the direction it was chosen in (and why), and what was compared or skipped."""
    run: dict
    value: float
    mode: str
    rule: str
    compared: int
    not_ok: int
    without_metric: int
    models_without: list[str]  # the models of the finished runs that lack the metric


def best_run(paths, key: str, mode: str | None = None) -> BestRun:
    """The run under `paths` with the best number at the validation metric `key`; `mode` overrides the direction."""
    if not key.startswith(VALIDATION_PREFIX):
        raise UserError(f"--best {key}: only a validation metric (validation.<...>, e.g. validation.val_loss) may "
                        "choose a run; choosing on a test metric would leak the test labels into the choice")
    if mode is not None and mode not in MODES:
        raise UserError(f"unknown --best-mode {mode!r}; choose min or max")
    mode, rule = (mode, "--best-mode") if mode else best_mode(key)
    runs = [read_run(folder) for folder in find_run_folders(paths)]
    finished = [run for run in runs if run["status"] == OK]
    valued = [(run, value) for run in finished if (value := number_or_none(run.get(key))) is not None]
    without = sorted({str(run.get("model")) for run in finished if number_or_none(run.get(key)) is None})
    if not valued:
        available = sorted({column for run in finished for column in run if column.startswith(VALIDATION_PREFIX)
                            and number_or_none(run.get(column)) is not None})
        raise UserError(f"--best {key}: none of the {len(runs)} runs under {', '.join(map(str, paths))} is a finished "
                        f"run (status OK) with this metric ({len(runs) - len(finished)} not OK); finished runs have: "
                        f"{', '.join(available) or 'no validation metrics'}{_hint(key, without)}")
    # min/max keep the first of equal values: ties go to the first folder by name.
    choose = min if mode == "min" else max
    run, value = choose(valued, key=lambda pair: pair[1])
    return BestRun(run, value, mode, rule, compared=len(valued), not_ok=len(runs) - len(finished),
                   without_metric=len(finished) - len(valued), models_without=without)


def _hint(key: str, models: list[str]) -> str:
    """What gives runs of models without a training loss (the classic ones) a validation metric to rank by."""
    if key != LOSS_KEY or not models:
        return ""
    return (f"; {', '.join(models)} train no loss: run them with dataset.labelled_val=0.2 (a labelled share of "
            f"validation) to rank every model by e.g. {LABELLED_KEY}")


def best_mode(key: str) -> tuple[str, str]:
    """Whether `key` is minimised or maximised, and the rule that says so."""
    from tsad.evaluation.report import LEVEL_METRICS

    name = key.rsplit(".", 1)[-1]
    if lower_is_better(key):
        return "min", "lower is better for a loss"
    if name in LEVEL_METRICS["point"]:
        return "max", "higher is better for a score"
    raise UserError(f"--best {key}: cannot tell whether lower or higher {name} is better; "
                    "add --best-mode min or --best-mode max")


def best_lines(best: BestRun, key: str) -> list[str]:
    """What `--best` prints: the folder alone on the first line (for scripts), then why, then how to use it."""
    run = best.run
    skipped = f"skipped {best.not_ok} not OK, {best.without_metric} without the metric"
    if best.models_without:
        skipped += f" ({', '.join(best.models_without)})"
    return [
        run["run_dir"],
        f"best of {best.compared} runs by {key} = {best.value:.6g} ({best.mode}: {best.rule}; {skipped}): "
        f"{run.get('model')} on {run.get('dataset')}, seed {run.get('seed')}",
        f"use it: tsad-predict {shlex.quote('run=' + run['run_dir'])} input=<your.csv>",
    ]
