"""The run record's vocabulary: how a run ended (its status in metrics.json) and how a failure is named.

A run folder's files, metrics.json among them, are tsad.run_folder's; the row a table makes of a run is
tsad.table.rows'. Only the standard library: tsad.sweeps imports this module before any job runs.
"""

from __future__ import annotations

from pathlib import Path

from tsad.csv_outputs import write_history  # noqa: F401 (named from here until the protocols switch)
from tsad.errors import NaNLossError
from tsad.json_files import read_json

OK = "OK"
ERROR = "ERROR"
OOM = "OOM"
NAN = "NAN"
INTERRUPTED = "INTERRUPTED"
RUNNING = "RUNNING"          # a job that has not ended: its sweep journal entry, never a metrics.json
# Statuses a reader gives a run folder whose metrics.json does not say how the run ended.
INCOMPLETE = "INCOMPLETE"    # no metrics.json: the run was killed or has not finished
UNREADABLE = "UNREADABLE"    # a metrics.json that is not a JSON object
UNKNOWN = "UNKNOWN"          # a metrics.json without status or metrics


def failure_status(error: BaseException) -> str:
    """The status of a run that ended with `error`."""
    if isinstance(error, NaNLossError):
        return NAN
    if isinstance(error, MemoryError) or "out of memory" in str(error).lower():
        return OOM
    if isinstance(error, KeyboardInterrupt):
        return INTERRUPTED
    return ERROR


def error_text(error: BaseException) -> str:
    """How a record names the error a run ended with."""
    return f"{type(error).__name__}: {error}"


# ---------------------------------------------------------------------------- until the protocols, cli.py and
# validation.py take their paths from tsad.run_folder.RunFolder (they cannot be imported from there: it reads OK)

def read_metrics(run_dir: Path) -> dict | None:
    return read_json(Path(run_dir) / "metrics.json")


def write_scores(directory: Path, split: str, data, scores, thresholds: dict | None = None,
                 step_columns: dict | None = None) -> None:
    from tsad.csv_outputs import write_scores as write

    directory = Path(directory)
    write(directory / f"{split}_series.csv", directory / f"{split}_steps.csv.gz", data, scores, thresholds,
          step_columns)
