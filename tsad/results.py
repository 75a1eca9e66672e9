"""The run record's vocabulary: how a run ended (its status in metrics.json) and how a failure is named.

A run folder's files, metrics.json among them, are tsad.run_folder's; the row a table makes of a run is
tsad.table.rows'. Only the standard library: tsad.sweeps imports this module before any job runs.
"""

from __future__ import annotations

from tsad.errors import NaNLossError

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
