"""hydra/launcher=gpu_pool: the GPUs a sweep may use, and one slot on one of them for each job."""

from __future__ import annotations

import fcntl
import logging
import os
import subprocess
import time
from pathlib import Path

from tsad.errors import UserError

log = logging.getLogger(__name__)

SLOTS_DIR = ".gpu_slots"       # <sweep dir>/.gpu_slots/gpu<id>_slot<k>.lock


def visible_gpus() -> list[int]:
    """Device indices of the GPUs a job started from here would see, found without importing torch."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        count = 0
        for entry in (e.strip() for e in listed.split(",")):
            if not entry or entry.startswith("-"):
                break  # CUDA stops at the first invalid entry
            count += 1
        return list(range(count))
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if out.returncode != 0:
        return []
    return list(range(sum(line.startswith("GPU ") for line in out.stdout.splitlines())))


def pool_gpus(setting) -> list[int]:
    """gpu_pool.gpus as a list of device indices: `auto` (every visible GPU) or the given ids."""
    if setting == "auto":
        gpus = visible_gpus()
        if not gpus:
            raise UserError("hydra/launcher=gpu_pool found no GPU (CUDA_VISIBLE_DEVICES, nvidia-smi); "
                            "name them with gpu_pool.gpus=[0,1] or use hydra/launcher=local")
        return gpus
    try:
        gpus = None if isinstance(setting, str) else list(setting)
    except TypeError:
        gpus = None
    valid = gpus and all(isinstance(g, int) and not isinstance(g, bool) and g >= 0 for g in gpus)
    if not valid or len(set(gpus)) < len(gpus):
        raise UserError(f"gpu_pool.gpus must be auto or a list of distinct GPU indices like [0,1], got {setting!r}")
    return gpus


def pool_capacity(jobs_per_gpu) -> int:
    if isinstance(jobs_per_gpu, bool) or not isinstance(jobs_per_gpu, int) or jobs_per_gpu < 1:
        raise UserError(f"gpu_pool.jobs_per_gpu must be a positive integer, got {jobs_per_gpu!r}")
    return jobs_per_gpu


def pool_size(gpus, jobs_per_gpu) -> int:
    """Worker count of hydra/launcher=gpu_pool (`${tsad_gpu_pool_size:...}`): GPUs times jobs per GPU.

    A bad setting gives 1 worker; the job itself then fails with the one-line message.
    """
    try:
        return len(pool_gpus(gpus)) * pool_capacity(jobs_per_gpu)
    except UserError:
        return 1


class GpuSlot:
    """One of `jobs_per_gpu` slots on one of `gpus`, held through an exclusive file lock.

    Jobs fill every GPU once before doubling up, and wait (polling) while all slots are
    taken. The lock belongs to the open file, so a job that dies frees its slot. The locks
    live on the local disk of one machine: do not share a sweep folder between hosts.
    """

    def __init__(self, folder: Path, gpus: list[int], jobs_per_gpu: int, poll_seconds: float = 0.2):
        self.folder, self.gpus, self.jobs_per_gpu, self.poll_seconds = Path(folder), gpus, jobs_per_gpu, poll_seconds
        self.gpu = self.slot = self.claimed_at = self.released_at = None
        self.waited_seconds = 0.0
        self._fd = None

    def __enter__(self) -> GpuSlot:
        self.folder.mkdir(parents=True, exist_ok=True)
        started = time.time()
        announced = False
        while not self._try_claim():
            if not announced:
                log.info("waiting for a free GPU slot (%d GPUs x %d jobs each, all taken)", len(self.gpus),
                         self.jobs_per_gpu)
                announced = True
            time.sleep(self.poll_seconds)
        self.claimed_at = time.time()
        self.waited_seconds = round(self.claimed_at - started, 3)
        log.info("took GPU %d (slot %d) after %.1f s", self.gpu, self.slot, self.waited_seconds)
        return self

    def _try_claim(self) -> bool:
        for slot in range(self.jobs_per_gpu):
            for gpu in self.gpus:
                fd = os.open(self.folder / f"gpu{gpu}_slot{slot}.lock", os.O_CREAT | os.O_RDWR, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                self._fd, self.gpu, self.slot = fd, gpu, slot
                return True
        return False

    def __exit__(self, *exc) -> None:
        self.released_at = time.time()
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def record(self) -> dict:
        return {"gpu": self.gpu, "slot": self.slot, "jobs_per_gpu": self.jobs_per_gpu, "claimed_at": self.claimed_at,
                "released_at": self.released_at, "waited_seconds": self.waited_seconds}


def place_on_gpu(config: dict, gpu: int) -> None:
    """Point the job at its slot's GPU, before anything initialises CUDA on another one."""
    device = str(config.get("device", "auto"))
    if device.startswith("cuda:"):
        raise UserError(f"device={device} conflicts with hydra/launcher=gpu_pool, which picks each job's GPU; "
                        "use device=auto")
    if device == "cpu":
        return
    import torch

    if not torch.cuda.is_available():
        log.warning("CUDA is not available: GPU slot %d is only simulated, the job runs on the CPU", gpu)
        return
    if gpu >= torch.cuda.device_count():
        raise UserError(f"gpu_pool.gpus lists GPU {gpu}, but this job sees {torch.cuda.device_count()} GPU(s) "
                        "(indices count within CUDA_VISIBLE_DEVICES)")
    torch.cuda.set_device(gpu)
    config["device"] = f"cuda:{gpu}"
