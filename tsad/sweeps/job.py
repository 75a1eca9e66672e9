"""One job of `tsad-run`, single or swept: skip, resume or run it, and write its record once when it ends.

`run_job` wraps tsad.experiment.run for every run. It holds the run folder's lock while it writes
the folder, hashes the resolved config, skips or resumes when `resume=true` (a run of its own config
only), refuses to replace a finished run unless `overwrite=true`, turns SIGTERM (how SLURM ends a
job at its time limit) into KeyboardInterrupt so an ended job is recorded as INTERRUPTED and stays
resumable, and writes the run's metrics.json once, when the job ends:
finished, failed or interrupted. The run writes into the run folder's .staging/, moved into the run
folder when the job ends (tsad.run_folder.RunFolder.end_attempt). The run returns the result part of the record;
the job adds who ran (model, dataset, seed, tags), how it ended (status, error), timing, environment
and the sweep's facts (config hash, job number, the checkpoint it resumed from). The sweep's journal
says the same for the summary, and the experiment logger (tsad/tracking.py), checked before any
work, follows the run's epochs and gets the record once it is written.
"""

from __future__ import annotations

import copy
import logging
import os
import platform
import re
import shutil
import signal
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from tsad.config_hash import NOT_COMPARED_KEYS, config_hash, is_under
from tsad.environment import environment
from tsad.errors import UserError
from tsad.results import OK, RUNNING, disk_full, disk_full_error, error_text, failure_status
from tsad.run_folder import RunFolder
from tsad.sweeps.summary import Journal
from tsad.tracking import Tracker, open_tracker

log = logging.getLogger(__name__)

FOLDER_HASH_DIGITS = 8
# Overrides a job folder's name leaves out: the model, dataset and seed it names already, the presets that set up
# the sweep rather than the job, and keys that do not change what the job computes (NOT_COMPARED_KEYS).
UNNAMED_OVERRIDES = ("model", "model.name", "dataset", "dataset.name", "experiment", "hparams_search")
FOLDER_VALUE_CHARS = 16     # a longer value is cut: the hash keeps the folder unique
FOLDER_VALUES_CHARS = 120   # all values together, so the name stays far below the 255 bytes a file system allows
# Safe in a file name, a shell word and an unquoted Hydra override value (which cannot hold `=` or `,`).
UNSAFE_RUN = "[^A-Za-z0-9._+-]+"


@dataclass
class JobContext:
    """Where a job runs: its folder, and for a swept job its sweep folder and number."""
    run_dir: Path
    sweep_dir: Path | None = None
    job_num: int | None = None


def run_job(config: dict, context: JobContext) -> tuple[float | None, Path]:
    """Run (or skip, or resume) one job: the objective's value for a sweeper (None without an objective)
    and the folder that holds the job's finished run.

    Whatever happens, the run folder's metrics.json and the sweep's journal say how the job ended.
    """
    journal = Journal(context.sweep_dir, context.job_num)
    journal.write({"status": RUNNING, "folder": str(context.run_dir)})
    job = Job(config, context)
    try:
        with sigterm_as_interrupt(), job.folder.locked():
            try:
                return job.run()
            except BaseException as error:
                job.fail(error)
                raise
            finally:
                job.write_record()
    except BaseException as error:
        if job.error is None:  # the folder's lock is another run's: the folder stays as that run has it
            job.error, job.refused = error, True
        raise
    finally:
        job.close_tracker()
        journal.write(job.journal_entry())


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"ended by {signal.Signals(signum).name}")


@contextmanager
def sigterm_as_interrupt():
    """SIGTERM raises KeyboardInterrupt while the job runs (then the previous handler is back), so the record says
    INTERRUPTED. Only the main thread may set a handler; a job run elsewhere keeps the process's own."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Job:
    """One job's attempt at its run, and the record that says how the job ended."""

    def __init__(self, config: dict, context: JobContext):
        self.config, self.context = config, context
        self.run_dir = Path(context.run_dir)
        self.folder = RunFolder(self.run_dir)
        # None until the attempt begins: till then the folder may hold an earlier attempt's record.
        self.record: dict | None = None
        self.staging: RunFolder | None = None  # where the attempt writes, once it begins
        self.record_folder = self.folder  # where metrics.json says how the job ended
        self.sweep_facts = {} if context.job_num is None else {"job_num": context.job_num}
        self.finished_folder: Path | None = None
        self.skipped = False
        self.refused = False  # the folder is not this job's to write (another run's, or in use): it stays as it is
        self.error: BaseException | None = None
        self.tracker: Tracker | None = None

    def run(self) -> tuple[float | None, Path]:
        """The objective's value and the folder of the finished run (this job's, or an earlier one)."""
        from tsad.settings.run import RunConfig

        config = self.config
        settings = RunConfig.parse(config)  # the job's door: every section checks itself
        objective = settings.objective
        digest = self.sweep_facts["config_hash"] = config_hash(config)
        folders = job_folders(self.run_dir, self.context.sweep_dir, digest)
        try:
            self.folder.check_replaceable(config, sweep=self.context.sweep_dir is not None)
        except UserError:
            self.refused = True
            raise
        if settings.resume:
            done = finished_run(folders, digest)
            if done is not None:
                return self._skip(*done, objective)
            checkpoint = checkpoint_to_resume(folders, digest)
            if checkpoint is not None and not settings.trainer.resume_from:
                log.info("resume: continuing from the checkpoint %s", checkpoint)
                config["trainer"]["resume_from"] = str(checkpoint)  # as job.json records the attempt
                settings = replace(settings, trainer=replace(settings.trainer, resume_from=str(checkpoint)))
                self.sweep_facts["resumed_from_checkpoint"] = str(checkpoint)
        self.settings = settings

        self._begin(digest)
        self._run()
        value = objective_value(self.record, objective)
        self.finished_folder = self.run_dir
        return value, self.run_dir

    def _skip(self, folder: Path, record: dict, objective: str | None) -> tuple[float | None, Path]:
        log.info("resume: %s already holds a finished run of this config (status OK); skipping", folder)
        if folder != self.run_dir:
            # Hydra made a fresh folder for this job; leave only its log, so it is not taken for an unfinished run.
            shutil.rmtree(self.folder.hydra, ignore_errors=True)
        else:
            self.folder.put_back_published_hydra()
        value = objective_value(record, objective)
        self.finished_folder, self.skipped = folder, True
        return value, folder

    def _begin(self, digest: str) -> None:
        """From here on the attempt writes to a fresh staging folder; the run folder's results stay as they are
        until the attempt ends."""
        facts = {"config_hash": digest, "started_at": time.time(), "host": platform.node(), "pid": os.getpid(),
                 "job_num": self.context.job_num, "config": self.config}
        self.staging = self.folder.begin_attempt(facts, resume_from=self.settings.trainer.resume_from)
        self.record = {"status": RUNNING, "run_dir": str(self.run_dir)}

    def _run(self) -> None:
        """tsad.experiment.run, and around its result the run's identity, outcome, timing and environment."""
        from tsad.experiment import run

        config = self.config
        settings = self.settings
        self.record = {"status": RUNNING, "model": settings.model.name, "dataset": settings.dataset.name,
                       "seed": settings.seed, "tags": list(settings.tags), "run_dir": str(self.run_dir)}
        started = time.perf_counter()
        try:
            self.tracker = open_tracker(settings, config, self.run_dir, self.context.sweep_dir)
            self.record.update(run(self.settings, self.staging, epoch_callbacks=(self.tracker.log_epoch,)))
            self.record["status"] = OK
        except BaseException as error:
            self.record["status"] = failure_status(error)
            self.record["error"] = error_text(error)
            if not isinstance(error, UserError):
                self.record["traceback"] = traceback.format_exc()
                self._log_traceback(self.record["traceback"])
            raise
        finally:
            total_seconds = round(time.perf_counter() - started, 3)
            self.record["timing"] = {**self.record.get("timing", {}), "total_seconds": total_seconds}
            try:
                self.record["environment"] = environment()
            except Exception:  # never let bookkeeping hide the real outcome
                pass

    def fail(self, error: BaseException) -> None:
        """Say in the record that the job failed with `error`, unless the run already said how it failed.

        A job that fails before its attempt begins (a bad objective, or a finished run found by
        resume=true that lacks the objective) reports on the record already in its folder, if any:
        a finished one is marked failed, a failed one keeps its own error.
        """
        self.error = error
        if self.refused:
            return
        if self.record is None:
            self.record = self.folder.read_metrics() or {"status": RUNNING, "run_dir": str(self.run_dir)}
        if self.record.get("status") in (RUNNING, OK):
            self.record.update(status=failure_status(error), error=error_text(error))

    def write_record(self) -> None:
        """metrics.json, once: the record with the sweep's facts (nothing when the job skipped its run); into the
        run folder when the job failed before its attempt began, else as RunFolder.end_attempt says. When the disk
        is full, the attempt's files are removed instead (_end_on_full_disk)."""
        if self.error is None or disk_full(self.error) is None:
            try:
                self._write_record()
                return
            except OSError as error:
                if disk_full(error) is None:
                    raise
                self.error = error
        full = self.error
        raise self._end_on_full_disk() from full

    def _write_record(self) -> None:
        if self.record is None:
            return
        if self.staging is not None:
            self.record_folder = self.folder.end_attempt(self.record["status"])
        self.record_folder.write_metrics({**self.record, **self.sweep_facts})

    def _end_on_full_disk(self) -> UserError:
        """The one-line error of an attempt that found the disk full: its staged files are removed, a finished run
        in the folder stays as it is (no record written over it), another folder gets the record of the failure."""
        output_dir = Path(str((self.config.get("paths") or {}).get("output_dir", self.run_dir.parent)))
        inside = self.run_dir.resolve().is_relative_to(output_dir.resolve())
        failure = disk_full_error(self.error, output_dir if inside else self.run_dir.parent,
                                  "paths.output_dir" if inside else "hydra.run.dir")
        self.folder.discard_attempt()
        attempt = self.record if self.staging is not None else None  # else the record is an earlier run's
        self.record = {**(attempt or {"run_dir": str(self.run_dir)}), "status": failure_status(failure),
                       "error": error_text(failure)}
        self.record.pop("traceback", None)
        self.record_folder = self.folder
        if (self.folder.read_metrics() or {}).get("status") != OK:
            try:
                self.folder.write_metrics({**self.record, **self.sweep_facts})
            except OSError:  # the disk is still full: the error line says what happened
                pass
        self.error = failure
        return failure

    def _log_traceback(self, text: str) -> None:
        """The run's traceback at the end of its run.log, when it has one (the terminal gets one line)."""
        if not self.folder.run_log.is_file():
            return
        try:
            for handler in logging.getLogger().handlers:
                handler.flush()
            with self.folder.run_log.open("a") as log_file:
                log_file.write(text)
        except OSError:
            pass

    def close_tracker(self) -> None:
        """Hand the record metrics.json now holds to the experiment logger, if the run opened one."""
        if self.tracker is not None:
            self.tracker.close({**self.record, **self.sweep_facts}, self.record_folder.root)

    def journal_entry(self) -> dict:
        if self.error is None:
            return {"status": OK, "folder": str(self.finished_folder), "skipped": self.skipped}
        if self.refused:
            return {"status": failure_status(self.error), "folder": str(self.run_dir), "error": error_text(self.error)}
        return {"status": self.record.get("status"), "folder": str(self.run_dir), "error": self.record.get("error")}


# ---------------------------------------------------------------------------- where an earlier run may be

def folder_hash(*, _root_) -> str:
    """The `${tsad_config_hash:}` resolver that ends a sweep job's folder name: the job config's hash, 8 digits.

    The same config always lands in the same folder, however the command line spelled it.
    """
    from omegaconf import OmegaConf, open_dict

    job = copy.deepcopy(_root_)
    with open_dict(job):
        job.pop("hydra", None)
    return config_hash(OmegaConf.to_container(job, resolve=True))[:FOLDER_HASH_DIGITS]


def folder_values(*, _root_) -> str:
    """The `${tsad_job_values:}` resolver that names a sweep job's folder after what the job sets: its overrides,
    each as `_key-value`, e.g. `_hidden_size-16_window-64`; '' when it sets nothing but model, dataset and seed.

    Keys are their last part unless another key shares it. Values are read from the config, so `trainer.lr=1e-3`
    and `trainer.lr=0.001` name the same folder; a config group's value is the option chosen (`_trainer-fast`).
    """
    from omegaconf import DictConfig, OmegaConf

    values = {}
    for override in OmegaConf.select(_root_, "hydra.overrides.task", default=None) or []:
        key, is_set, text = str(override).lstrip("+").partition("=")
        if not is_set or key in UNNAMED_OVERRIDES or is_under(key, NOT_COMPARED_KEYS):
            continue  # `~key` (no value) deletes a key: only the hash tells that config apart
        value = OmegaConf.select(_root_, key, default=None, throw_on_resolution_failure=False)
        if value is None or isinstance(value, DictConfig):
            value = text
        elif OmegaConf.is_config(value):
            value = OmegaConf.to_container(value, resolve=True)
        values[key] = _folder_text(value)[:FOLDER_VALUE_CHARS]
    short = _short_keys(sorted(values))
    named = "".join(f"_{_folder_text(short[key])}-{values[key]}" for key in sorted(values))
    return named[:FOLDER_VALUES_CHARS].rstrip("_-")


def _short_keys(keys: list[str]) -> dict[str, str]:
    """Each dotted key as its shortest ending that no other key ends with: model.window -> window."""
    short = {}
    for key in keys:
        parts = key.split(".")
        n = 1
        while n < len(parts) and any(other != key and other.split(".")[-n:] == parts[-n:] for other in keys):
            n += 1
        short[key] = ".".join(parts[-n:])
    return short


def _folder_text(value) -> str:
    """A value in the characters of a folder name: lists joined with `+`, others replaced by `-`."""
    if isinstance(value, (list, tuple)):
        return "+".join(_folder_text(item) for item in value)
    if isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, float):
        text = f"{value:g}"
    else:
        text = str(value)
    return re.sub(UNSAFE_RUN, "-", re.sub(f"^{UNSAFE_RUN}|{UNSAFE_RUN}$", "", text))


def job_folders(run_dir: Path, sweep_dir: Path | None, digest: str) -> list[RunFolder]:
    """Where an earlier run of this config may be: the job's own folder first, then the sweep's other
    folders named after the same config hash (e.g. an Optuna trial that drew the same parameters)."""
    paths = [Path(run_dir)]
    suffix = f"_{digest[:FOLDER_HASH_DIGITS]}"
    if sweep_dir is not None and Path(sweep_dir).is_dir():
        paths += sorted(p for p in Path(sweep_dir).iterdir() if p.name.endswith(suffix) and p != Path(run_dir)
                        and p.is_dir())
    return [RunFolder(path) for path in paths]


def finished_run(folders: list[RunFolder], digest: str) -> tuple[Path, dict] | None:
    """The first folder that holds a finished run (status OK) of the config with this hash, and its record."""
    for folder in folders:
        record = folder.finished_record(digest)
        if record is not None:
            return folder.root, record
    return None


def checkpoint_to_resume(folders: list[RunFolder], digest: str) -> Path | None:
    """The first last checkpoint an unfinished run of this config left in one of the folders."""
    return next((checkpoint for folder in folders if (checkpoint := folder.checkpoint_to_resume(digest))), None)


# ---------------------------------------------------------------------------- the objective

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
