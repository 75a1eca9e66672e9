"""Sweeps at scale: one job's bookkeeping, GPU slots, config hashes, resume, and the end-of-sweep summary.

`run_job` wraps the pipeline for every run (single or swept): it hashes the resolved config,
skips or resumes when `resume=true`, takes a GPU slot under hydra/launcher=gpu_pool, and
records what happened in metrics.json and in the sweep's journal. The journal
(<sweep dir>/.jobs/<num>.json, cleared when a sweep starts) is what the summary at the end
of `tsad-run -m` reads.

Only the standard library and Hydra are imported at module level: the CLI imports this
module before any job runs, and `tsad-run --help` must stay fast.
"""

from __future__ import annotations

import copy
import fcntl
import hashlib
import json
import logging
import os
import platform
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from hydra.experimental.callback import Callback

from tsad.errors import UserError

log = logging.getLogger(__name__)

OK = "OK"
# Config keys that say where or how a job runs, not what it computes: left out of the config hash.
HASH_EXCLUDED = ("paths", "resume", "objective", "gpu_pool", "trainer.resume_from", "trainer.progress")
JOB_FILE = "job.json"          # written into the run folder when a job starts: config hash, host, pid, start time
JOURNAL_DIR = ".jobs"          # <sweep dir>/.jobs/<job num>.json: this sweep's outcome per job
SLOTS_DIR = ".gpu_slots"       # <sweep dir>/.gpu_slots/gpu<id>_slot<k>.lock
LAST_CHECKPOINT = Path("model") / "checkpoints" / "last.pt"
OBJECTIVE_PREFIX = "validation."
FOLDER_HASH_DIGITS = 8


# ---------------------------------------------------------------------------- config hash

def config_hash(config: dict) -> str:
    """A short, stable digest of the resolved config without the keys in HASH_EXCLUDED."""
    kept = copy.deepcopy(config)
    for dotted in HASH_EXCLUDED:
        *parents, last = dotted.split(".")
        node = kept
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)
    text = json.dumps(kept, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def folder_hash(*, _root_) -> str:
    """The `${tsad_config_hash:}` resolver that ends a sweep job's folder name: the job config's hash, 8 digits.

    The same config always lands in the same folder, however the command line spelled it.
    """
    from omegaconf import OmegaConf, open_dict

    job = copy.deepcopy(_root_)
    with open_dict(job):
        job.pop("hydra", None)
    return config_hash(OmegaConf.to_container(job, resolve=True))[:FOLDER_HASH_DIGITS]


# ---------------------------------------------------------------------------- GPU slots

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
    if not gpus or any(isinstance(g, bool) or not isinstance(g, int) or g < 0 for g in gpus) or len(set(gpus)) < len(gpus):
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


# ---------------------------------------------------------------------------- resume

def read_json(path: Path) -> dict | None:
    """The JSON object in `path`, or None when it is missing, unreadable or not an object."""
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def job_folders(run_dir: Path, sweep_dir: Path | None, digest: str) -> list[Path]:
    """Where an earlier run of this config may be: the job's own folder first, then the sweep's other
    folders named after the same config hash (e.g. an Optuna trial that drew the same parameters)."""
    folders = [Path(run_dir)]
    suffix = f"_{digest[:FOLDER_HASH_DIGITS]}"
    if sweep_dir is not None and Path(sweep_dir).is_dir():
        folders += sorted(p for p in Path(sweep_dir).iterdir() if p.name.endswith(suffix) and p != Path(run_dir)
                          and p.is_dir())
    return folders


def finished_run(folders: list[Path], digest: str) -> tuple[Path, dict] | None:
    """The first folder whose metrics.json is a finished run (status OK) of the config with this hash."""
    for folder in folders:
        record = read_json(folder / "metrics.json")
        if record and record.get("status") == OK and record.get("config_hash") == digest:
            return folder, record
    return None


def checkpoint_to_resume(folders: list[Path], digest: str) -> Path | None:
    """The last checkpoint an unfinished run of this config left behind (saved after that run started)."""
    for folder in folders:
        job = read_json(folder / JOB_FILE)
        checkpoint = folder / LAST_CHECKPOINT
        if (job and job.get("config_hash") == digest and checkpoint.exists()
                and checkpoint.stat().st_mtime >= job.get("started_at", float("inf"))):
            return checkpoint
    return None


# ---------------------------------------------------------------------------- the objective

def check_objective(objective) -> str | None:
    if objective is None:
        return None
    if not isinstance(objective, str) or not objective.startswith(OBJECTIVE_PREFIX):
        raise UserError(f"objective must name a validation metric (validation.<...>, e.g. validation.val_loss), "
                        f"got {objective!r}: optimising a test metric would leak test labels into the search")
    return objective


def objective_value(record: dict, objective: str | None) -> float | None:
    """The number at the dotted path `objective` of a metrics record; UserError when there is none."""
    if objective is None:
        return None
    node = record
    for key in objective.split("."):
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, bool) or not isinstance(node, (int, float)) or node != node:
        available = sorted(_leaf_paths(record.get("validation") or {}, "validation"))
        raise UserError(f"objective {objective} is not a number in this run's record (got {node!r}); "
                        f"it has: {', '.join(available) or 'no validation metrics'}")
    return float(node)


def _leaf_paths(node: dict, prefix: str):
    for key, value in node.items():
        if isinstance(value, dict):
            yield from _leaf_paths(value, f"{prefix}.{key}")
        else:
            yield f"{prefix}.{key}"


def needs_labelled_val(objective: str | None, dataset: dict) -> None:
    """Fail before training when the objective needs a labelled validation split the dataset will not make."""
    if objective and objective.startswith("validation.labelled_val") and dataset.get("labelled_val", None) == 0:
        raise UserError(f"objective {objective} needs a labelled validation split: set dataset.labelled_val "
                        "(a fraction of n_test or a count of series, e.g. dataset.labelled_val=0.3)")


# ---------------------------------------------------------------------------- one job

@dataclass
class JobContext:
    """Where a job runs: its folder, and for a swept job its sweep folder, number and launcher."""
    run_dir: Path
    sweep_dir: Path | None = None
    job_num: int | None = None
    launcher: str | None = None

    @property
    def gpu_pool(self) -> bool:
        return self.sweep_dir is not None and self.launcher == "gpu_pool"


def run_job(config: dict, context: JobContext) -> tuple[float | None, Path]:
    """Run (or skip, or resume) one job: the objective's value for a sweeper (None without an objective)
    and the folder that holds the job's finished run.

    Whatever happens, the run folder's metrics.json and the sweep's journal say how the job ended.
    """
    run_dir = Path(context.run_dir)
    journal = Journal(context)
    journal.write({"status": "RUNNING", "folder": str(run_dir)})
    extra = {} if context.job_num is None else {"job_num": context.job_num}
    try:
        value, folder, skipped = _run_job(config, context, extra)
    except BaseException as error:
        record = annotate(run_dir, extra, error)
        journal.write({"status": record["status"], "folder": str(run_dir), "error": record.get("error")})
        raise
    journal.write({"status": OK, "folder": str(folder), "skipped": skipped})
    return value, folder


def _run_job(config: dict, context: JobContext, extra: dict) -> tuple[float | None, Path, bool]:
    from tsad.experiment import run

    run_dir = Path(context.run_dir)
    objective = check_objective(config.get("objective"))
    needs_labelled_val(objective, config.get("dataset") or {})
    digest = extra["config_hash"] = config_hash(config)
    folders = job_folders(run_dir, context.sweep_dir, digest)
    if config.get("resume"):
        done = finished_run(folders, digest)
        if done is not None:
            return _skip(done, run_dir, objective)
        checkpoint = checkpoint_to_resume(folders, digest)
        if checkpoint is not None and not config["trainer"].get("resume_from"):
            log.info("resume: continuing from the checkpoint %s", checkpoint)
            config["trainer"]["resume_from"] = str(checkpoint)
            extra["resumed_from_checkpoint"] = str(checkpoint)

    # From here on the folder holds this attempt: an older record in it would be taken for its result.
    (run_dir / "metrics.json").unlink(missing_ok=True)
    write_json_atomic(run_dir / JOB_FILE, {"config_hash": digest, "started_at": time.time(), "host": platform.node(),
                                           "pid": os.getpid(), "job_num": context.job_num})
    if not context.gpu_pool:
        record = run(config, run_dir)
    else:
        pool = config.get("gpu_pool") or {}
        slot = GpuSlot(Path(context.sweep_dir) / SLOTS_DIR, pool_gpus(pool.get("gpus", "auto")),
                       pool_capacity(pool.get("jobs_per_gpu", 1)))
        try:
            with slot:
                place_on_gpu(config, slot.gpu)
                record = run(config, run_dir)
        finally:
            if slot.gpu is not None:
                extra["gpu_slot"] = slot.record()
    value = objective_value(record, objective)
    annotate(run_dir, extra)
    return value, run_dir, False


def _skip(done: tuple[Path, dict], run_dir: Path, objective: str | None) -> tuple[float | None, Path, bool]:
    folder, record = done
    log.info("resume: %s already holds a finished run of this config (status OK); skipping", folder)
    if folder != run_dir:
        # Hydra made a fresh folder for this job; leave only its log, so it is not taken for an unfinished run.
        shutil.rmtree(run_dir / ".hydra", ignore_errors=True)
    return objective_value(record, objective), folder, True


def annotate(run_dir: Path, extra: dict, error: BaseException | None = None) -> dict:
    """Add the sweep's facts to the run's metrics.json (atomically); returns the record.

    experiment.run writes metrics.json itself, even on failure; a job that failed before
    that (e.g. no free GPU slot, or an objective the record does not hold) is recorded here.
    """
    path = Path(run_dir) / "metrics.json"
    record = read_json(path)
    if record is None:
        if error is None:
            return {}
        record = {"status": failure_status(error), "error": f"{type(error).__name__}: {error}", "run_dir": str(run_dir)}
    elif error is not None and record.get("status") == OK:
        record.update(status=failure_status(error), error=f"{type(error).__name__}: {error}")
    record.update(extra)
    write_json_atomic(path, record)
    return record


def failure_status(error: BaseException) -> str:
    from tsad.experiment import failure_status as pipeline_status

    return pipeline_status(error)


def write_json_atomic(path: Path, payload: dict) -> None:
    from tsad.results import write_json_atomic as write

    write(path, payload)


class Journal:
    """A swept job's line in <sweep dir>/.jobs/<num>.json; a no-op for single runs."""

    def __init__(self, context: JobContext):
        self.path = None
        if context.sweep_dir is not None and context.job_num is not None:
            self.path = Path(context.sweep_dir) / JOURNAL_DIR / f"{context.job_num}.json"

    def write(self, entry: dict) -> None:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.path, entry)


# ---------------------------------------------------------------------------- the summary

# The sweep this process launched: set by SweepSummary.on_multirun_start, read by tsad.cli.main.
launched: dict = {}


class SweepSummary(Callback):
    """Hydra callback (in conf/config.yaml): notes where the sweep writes, for the summary at the end."""

    def on_multirun_start(self, config, **kwargs) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        shutil.rmtree(sweep_dir / JOURNAL_DIR, ignore_errors=True)
        launched.clear()
        launched["sweep_dir"] = sweep_dir
        given = [str(o) for o in config.hydra.overrides.hydra]
        if config.get("resume") and not any(o.startswith("hydra.sweep.dir=") for o in given):
            log.warning("resume=true without hydra.sweep.dir=<the earlier sweep's folder>: this sweep writes to the "
                        "new folder %s and finds nothing to resume", sweep_dir)


def summarise(sweep_dir: Path) -> tuple[list[str], int]:
    """Lines that say how every job of the sweep ended, and how many did not end OK."""
    entries = []
    for path in sorted((Path(sweep_dir) / JOURNAL_DIR).glob("*.json"), key=lambda p: int(p.stem)):
        entry = read_json(path) or {"status": "UNREADABLE", "folder": str(path)}
        if entry.get("status") == "RUNNING":
            entry = {**entry, "status": "NO RESULT", "error": "the job stopped before recording an outcome"}
        entries.append(entry)
    ok = [e for e in entries if e.get("status") == OK]
    failed = [e for e in entries if e.get("status") != OK]
    skipped = sum(bool(e.get("skipped")) for e in ok)
    counts = {}
    for entry in failed:
        counts[entry["status"]] = counts.get(entry["status"], 0) + 1
    head = f"sweep summary: {len(ok)} OK"
    if skipped:
        head += f" ({skipped} finished earlier, skipped)"
    head += f", {len(failed)} failed"
    if counts:
        head += " (" + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) + ")"
    lines = [f"{head} in {sweep_dir}"]
    for entry in failed:
        error = (entry.get("error") or "").strip().splitlines()
        lines.append(f"  {entry['status']:<11} {entry.get('folder')}  {error[-1] if error else ''}".rstrip())
    if failed:
        lines.append("  re-run the same command with resume=true hydra.sweep.dir=" f"{sweep_dir} to redo only these")
    return lines, len(failed)
