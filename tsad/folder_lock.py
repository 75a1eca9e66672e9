"""The lock a run holds on its folder while it writes it: fcntl.flock on a lock file, which names the holder's pid
and host. The lock goes with the process that holds it, so a killed run blocks nothing.

Only the standard library: tsad.run_folder imports this module before any job runs.
"""

from __future__ import annotations

import fcntl
import os
import platform
import time
from contextlib import contextmanager
from pathlib import Path

# A run that finds the lock taken retries this long: a look at who holds it takes it for a moment.
PATIENCE_SECONDS = 1.0


class FolderInUse(Exception):
    """Another process holds the lock; `holder` is what it wrote ('pid N on HOST')."""

    def __init__(self, holder: str):
        super().__init__(holder)
        self.holder = holder


@contextmanager
def held(lock_file: Path):
    """Hold the lock of `lock_file` (made if need be) inside; FolderInUse when another process holds it. The file is
    removed as the lock is let go."""
    deadline = time.monotonic() + PATIENCE_SECONDS
    while True:
        descriptor = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(descriptor)
            os.close(descriptor)
            if time.monotonic() > deadline:
                raise FolderInUse(holder) from None
            time.sleep(0.05)
            continue
        if _same_file(descriptor, lock_file):
            break
        os.close(descriptor)  # its holder removed it as it let go: lock the file there now
    try:
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"pid {os.getpid()} on {platform.node()}\n".encode())
        yield
    finally:
        lock_file.unlink(missing_ok=True)  # before letting go, so no process locks a file about to go
        os.close(descriptor)


def holder(lock_file: Path) -> str | None:
    """Who holds the lock of `lock_file` ('pid N on HOST'), or None when no process does."""
    try:
        descriptor = os.open(lock_file, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)  # let go with the descriptor
    except BlockingIOError:
        return _holder(descriptor)
    finally:
        os.close(descriptor)
    return None


def _holder(descriptor: int) -> str:
    text = os.pread(descriptor, 200, 0).decode(errors="replace").strip()
    return text or "pid and host not written yet"


def _same_file(descriptor: int, path: Path) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(descriptor).st_ino
    except FileNotFoundError:
        return False
