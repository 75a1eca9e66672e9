"""How many threads a run computes with: the cores it is allowed, shared with the other tsad runs on the machine.

Torch, OpenBLAS and OpenMP each start one thread per core of the machine and spin while they wait for work, so two
runs side by side on a small machine spend most of their time spinning against each other (measured on 2 cores:
two runs at once took 2.4x as long as one after the other). Here a run's thread count is

- `threads=N` (the top-level key): N, whatever else runs; the same N gives the same bits, run after run;
- `threads=0` (auto, the default), with OMP_NUM_THREADS set by whoever started the run (a launcher, a cluster
  script): that count;
- otherwise the cores this process is allowed (its CPU affinity and its cgroup's CPU quota, which torch and
  OpenBLAS do not read), divided among the tsad runs computing on the machine now, at least 1. Each run holds a
  lock file in a per-user folder while it computes (`TSAD_RUNS_DIR`, default `<tmp>/tsad-<uid>-runs`); a file
  whose lock is free belongs to a run that died and is removed. The share is re-read at every epoch and before
  every fit and scoring pass (`rebalance`), so a run alone gets the machine back when its neighbour ends.

Thread counts move the last bits of floating-point results (reductions are split per thread), so the counts a
run used are part of its record (`environment.threads`); pin `threads=N` where bits must not depend on the
neighbours.

Only the standard library at module level: the lock and the count are needed before torch loads.
"""

from __future__ import annotations

import fcntl
import logging
import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")  # this process's cgroups, one line per hierarchy


def allowed_cores() -> int:
    """The cores this process may use: its CPU affinity, capped by its cgroup's CPU quota when there is one."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = cgroup_quota()
    return max(1, min(cores, math.ceil(quota))) if quota else max(1, cores)


def cgroup_quota() -> float | None:
    """The CPU quota of this process's cgroup in cores (cgroup v2's cpu.max, else v1's cfs quota), or None."""
    try:
        lines = PROC_CGROUP.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # cgroup v2: the quota of this group and of every group above it
            quotas = []
            group = CGROUP_ROOT / path.lstrip("/")
            for folder in (group, *group.parents):
                quota = _quota_v2(folder / "cpu.max")
                if quota:
                    quotas.append(quota)
                if folder == CGROUP_ROOT:
                    break
            return min(quotas) if quotas else None
        if "cpu" in controllers.split(","):
            folder = CGROUP_ROOT / "cpu"
            return _quota_v1(folder / path.lstrip("/")) or _quota_v1(folder)
    return None


def _quota_v2(path: Path) -> float | None:
    try:
        quota, period = path.read_text().split()
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        return None


def _quota_v1(folder: Path) -> float | None:
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def runs_dir() -> Path:
    return Path(os.environ.get("TSAD_RUNS_DIR") or Path(tempfile.gettempdir()) / f"tsad-{os.getuid()}-runs")


def computing_runs(folder: Path) -> int:
    """The number of runs holding a lock file in `folder`; the files of runs that died are removed."""
    count = 0
    for entry in folder.glob("*.lock"):
        try:
            with open(entry, "rb") as handle:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except FileNotFoundError:
            continue
        except OSError:  # held: a run computing now
            count += 1
            continue
        entry.unlink(missing_ok=True)  # free: its run is gone
    return count


class CoreShare:
    """This run's place among the runs computing on the machine, and the thread counts it has used."""

    def __init__(self, threads: int, folder: Path | None = None):
        self.pinned = threads or _int_env("OMP_NUM_THREADS")
        self.folder = folder or runs_dir()
        self.allowed = allowed_cores()
        self.used: list[int] = []
        self._handle = None
        self._torch_threads: int | None = None  # torch's count before the run, put back when it leaves
        self._blas_limits = None

    def join(self) -> None:
        """Hold a lock file in the runs folder for as long as this run computes, then take its share."""
        self.folder.mkdir(parents=True, exist_ok=True)
        # Locked under a temporary name, then renamed: a run counting at that moment never sees it unlocked.
        starting = self.folder / f"{os.getpid()}-{id(self)}.starting"
        self._handle = open(starting, "wb")
        fcntl.flock(self._handle, fcntl.LOCK_EX)
        starting.rename(starting.with_suffix(".lock"))
        self.rebalance()

    def leave(self) -> None:
        if self._handle is not None:
            Path(self._handle.name).with_suffix(".lock").unlink(missing_ok=True)
            self._handle.close()
            self._handle = None
        if self._torch_threads is not None:
            import torch

            self._blas_limits.restore_original_limits()  # first: it can reset OpenMP's count as well
            torch.set_num_threads(self._torch_threads)
            self._torch_threads = self._blas_limits = None

    def share(self) -> int:
        """The thread count this run should use now."""
        if self.pinned:
            return self.pinned
        return max(1, self.allowed // max(1, computing_runs(self.folder)))

    def rebalance(self) -> int:
        """Set torch's and the BLAS libraries' thread counts to this run's share; returns it."""
        threads = self.share()
        if not self.used or self.used[-1] != threads:
            _set_threads(threads, self)
            log.info("threads: %d (%s)", threads, self.describe(threads))
            self.used.append(threads)
        return threads

    def describe(self, threads: int) -> str:
        if self.pinned:
            return "threads=N or OMP_NUM_THREADS"
        return f"{self.allowed} allowed core(s) shared with the tsad runs computing on this machine"

    def record(self) -> dict:
        return {"policy": "pinned" if self.pinned else "shared", "allowed_cores": self.allowed, "used": self.used}


def _set_threads(threads: int, share: CoreShare) -> None:
    import torch
    from threadpoolctl import threadpool_limits

    if share._torch_threads is None:
        share._torch_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    limits = threadpool_limits(limits=threads, user_api="blas")
    share._blas_limits = share._blas_limits or limits  # the first holds the limits from before the run


def _int_env(name: str) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else 0


_current: CoreShare | None = None


@contextmanager
def shared_cores(threads: int):
    """The run inside computes with its share of the cores (see the module docstring); yields the CoreShare."""
    global _current
    share = CoreShare(threads)
    share.join()
    outer, _current = _current, share
    try:
        yield share
    finally:
        _current = outer
        share.leave()


def rebalance() -> None:
    """Take the current run's share of the cores now (a no-op outside a run: a library call, a test)."""
    if _current is not None:
        _current.rebalance()


def share_now() -> int:
    """The current run's share of the cores now (its thread count), or the allowed cores outside a run: how many
    worker processes of one thread each a run may start."""
    return _current.rebalance() if _current is not None else allowed_cores()

