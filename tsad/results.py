"""The run record's vocabulary: how a run ended (its status in metrics.json) and how a failure is named.

A run folder's files, metrics.json among them, are tsad.run_folder's; the row a table makes of a run is
tsad.table.rows'. Only the standard library: tsad.sweeps imports this module before any job runs.
"""

from __future__ import annotations

import errno
import shutil
from contextlib import contextmanager

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

# What an OOM run's error adds: the settings that size what a run holds in memory at once.
OOM_HINT = "lower trainer.batch_size or model.window, or use less data (e.g. dataset.n_train, dataset.max_length)"
# How torch words an allocation that failed: on a GPU (OutOfMemoryError) and on the CPU (a RuntimeError).
OOM_MESSAGES = ("out of memory", "can't allocate memory")
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def failure_status(error: BaseException) -> str:
    """The status of a run that ended with `error`."""
    if isinstance(error, NaNLossError):
        return NAN
    message = str(error).lower()
    if isinstance(error, MemoryError) or any(words in message for words in OOM_MESSAGES):
        return OOM
    if isinstance(error, KeyboardInterrupt):
        return INTERRUPTED
    return ERROR


def error_text(error: BaseException) -> str:
    """How a record names the error a run ended with, in one line (the traceback says the rest); an OOM's names the
    settings to lower."""
    lines = str(error).strip().splitlines()
    text = f"{type(error).__name__}: {lines[0] if lines else ''}"
    if failure_status(error) == OOM:
        text += f" ({OOM_HINT})"
    return text


def disk_full(error: BaseException) -> OSError | None:
    """The OSError saying the disk (or the user's quota) is full that `error` is or was raised from, if any: libraries
    often wrap the OSError of a failed write in their own error."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in DISK_FULL_ERRNOS:
            return error
        error = error.__cause__ or error.__context__
    return None


def disk_full_error(error: BaseException, folder, key: str):
    """The one-line UserError that `error` becomes when it says the disk is full while writing into `folder` (the fix:
    free space there, or choose another `key`); None for any other error."""
    from tsad.errors import UserError

    full = disk_full(error)
    if full is None:
        return None
    return UserError(f"the disk is full ({full.strerror or 'no space left'}) writing into {folder}: free space in "
                     f"{folder} or choose another {key}")


@contextmanager
def removed_when_disk_full(folder, key: str):
    """Inside, files are written into `folder` (a Path); when the disk is full, what was added there since entering
    is removed (the folder too, if it was made inside) and a one-line UserError says to free space or choose another
    `key`."""
    existed = folder.is_dir()
    existing = set(folder.iterdir()) if existed else set()
    try:
        yield
    except Exception as error:
        failure = disk_full_error(error, folder, key)
        if failure is None:
            raise
        if folder.is_dir():
            for path in set(folder.iterdir()) - existing:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
            if not existed and not any(folder.iterdir()):
                folder.rmdir()
        raise failure from None
