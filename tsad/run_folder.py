"""The one owner of a run folder's layout: every path inside a run folder comes from a `RunFolder`, and so does
the way an attempt's outputs get there (staging, publishing, the end of an attempt).

    <run folder>/
      .hydra/            Hydra's resolved config and overrides (Hydra writes these)
      run.log            the log
      metrics.json       the run's record, written once when the job ends (statuses: tsad.results)
      job.json           the attempt's facts (config, its hash, host, pid, start time) and, once published,
                         the names of the files it wrote
      history.csv        per-epoch losses
      scores/            <split>_series.csv and <split>_steps.csv.gz
      model/             the saved detector; checkpoints/last.pt and best.pt while it trains
      plots/             figures
      tensorboard/       event files (logger=tensorboard; written in place, not staged)
      nab_results/       NAB's detection output (NAB runs)
      nab_per_file.csv   NAB's scores per file (NAB runs)
      per_file.csv       the metrics of every file (TSB-AD runs) or class (one-class runs)
      .staging/          the running attempt's outputs, laid out as a run folder, with a copy of its .hydra/
      .replaced/         the results a publish is replacing, for the moment it takes
      .lock              locked (fcntl.flock) by the run writing the folder; names its pid and host

An attempt holds the folder's lock, writes into .staging/, and when it ends its outputs are moved up into the run
folder (publish), unless it failed where a finished run already is: that run then stays as it was, .hydra/ included
(Hydra rewrites .hydra/ as an attempt starts; .hydra/published/ keeps the published run's copy to put back).

Only the standard library at module level: tsad.sweeps imports this module before any job runs, and
`tsad-run --help` must stay fast.
"""

from __future__ import annotations

import logging
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tsad import folder_lock
from tsad.config_hash import config_hash
from tsad.errors import UserError
from tsad.file_moves import Moves, copy_files, replace_with_copy
from tsad.json_files import read_json, write_json_atomic
from tsad.results import OK

log = logging.getLogger("tsad")

METRICS_FILE = "metrics.json"
JOB_FILE = "job.json"
HYDRA_DIR = ".hydra"
HYDRA_CONFIG_FILE = "config.yaml"
PUBLISHED_HYDRA_DIR = "published"  # inside .hydra/, which Hydra writes its files into without clearing it
LOG_FILE = "run.log"
HISTORY_FILE = "history.csv"
SCORES_DIR = "scores"
MODEL_DIR = "model"
CHECKPOINTS_DIR = "checkpoints"
LAST_CHECKPOINT_FILE = "last.pt"
BEST_CHECKPOINT_FILE = "best.pt"
PLOTS_DIR = "plots"
TENSORBOARD_DIR = "tensorboard"
NAB_RESULTS_DIR = "nab_results"
NAB_PER_FILE = "nab_per_file.csv"
PER_FILE = "per_file.csv"
STAGING_DIR = ".staging"
REPLACED_DIR = ".replaced"
LOCK_FILE = ".lock"
# Never a published run's output, whatever an earlier job.json says.
NOT_RUN_FILES = ("", ".", "..", STAGING_DIR, REPLACED_DIR, HYDRA_DIR, LOCK_FILE)
# What a tsad run leaves in its folder before its attempt begins (Hydra's files, the log, the lock).
STARTING_RUN_FILES = (HYDRA_DIR, LOG_FILE, LOCK_FILE)


@dataclass(frozen=True)
class RunFolder:
    """One run folder, or an attempt's staging folder (laid out the same way)."""

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    # ------------------------------------------------------------------------ paths

    @property
    def metrics(self) -> Path:
        return self.root / METRICS_FILE

    @property
    def job(self) -> Path:
        return self.root / JOB_FILE

    @property
    def hydra(self) -> Path:
        return self.root / HYDRA_DIR

    @property
    def hydra_config(self) -> Path:
        return self.hydra / HYDRA_CONFIG_FILE

    @property
    def published_hydra(self) -> Path:
        return self.hydra / PUBLISHED_HYDRA_DIR

    @property
    def lock_file(self) -> Path:
        return self.root / LOCK_FILE

    @property
    def run_log(self) -> Path:
        return self.root / LOG_FILE

    @property
    def history(self) -> Path:
        return self.root / HISTORY_FILE

    @property
    def scores(self) -> Path:
        return self.root / SCORES_DIR

    def series_scores(self, split: str) -> Path:
        return self.scores / f"{split}_series.csv"

    def step_scores(self, split: str) -> Path:
        return self.scores / f"{split}_steps.csv.gz"

    @property
    def model(self) -> Path:
        return self.root / MODEL_DIR

    @property
    def checkpoints(self) -> Path:
        return self.model / CHECKPOINTS_DIR

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / LAST_CHECKPOINT_FILE

    @property
    def best_checkpoint(self) -> Path:
        return self.checkpoints / BEST_CHECKPOINT_FILE

    @property
    def plots(self) -> Path:
        return self.root / PLOTS_DIR

    @property
    def tensorboard(self) -> Path:
        return self.root / TENSORBOARD_DIR

    @property
    def nab_results(self) -> Path:
        return self.root / NAB_RESULTS_DIR

    @property
    def nab_per_file(self) -> Path:
        return self.root / NAB_PER_FILE

    @property
    def per_file(self) -> Path:
        return self.root / PER_FILE

    @property
    def staging(self) -> RunFolder:
        return RunFolder(self.root / STAGING_DIR)

    def newest_last_checkpoint(self) -> Path | None:
        """The last checkpoint a run in this folder left: an unfinished attempt's (in staging) before the published
        run's; None when there is none."""
        return next((path for path in (self.staging.last_checkpoint, self.last_checkpoint) if path.is_file()), None)

    @property
    def replaced(self) -> Path:
        return self.root / REPLACED_DIR

    # ------------------------------------------------------------------------ what the folder holds

    def read_metrics(self) -> dict | None:
        """The run's record (metrics.json), or None when there is no readable one."""
        return read_json(self.metrics)

    def write_metrics(self, record: dict) -> None:
        write_json_atomic(self.metrics, record)

    def write_history(self, history: list[dict]) -> None:
        from tsad.csv_outputs import write_history

        write_history(self.history, history)

    def write_scores(self, split: str, data, scores, thresholds: dict | None = None,
                     step_columns: dict | None = None) -> None:
        """scores/<split>_series.csv and <split>_steps.csv.gz (tsad/csv_outputs.py)."""
        from tsad.csv_outputs import write_scores

        write_scores(self.series_scores(split), self.step_scores(split), data, scores, thresholds, step_columns)

    def read_job(self) -> dict | None:
        """The attempt's facts (job.json), or None when there is no readable one."""
        return read_json(self.job)

    def config(self) -> dict:
        """The resolved config of the run whose results the folder holds: its job.json's (Hydra rewrites .hydra/
        when a new attempt starts, which may fail and leave the earlier results), else .hydra/config.yaml; {} when
        neither is readable."""
        config = (self.read_job() or {}).get("config")
        if isinstance(config, dict):
            return config
        if not self.hydra_config.exists():
            return {}
        from omegaconf import OmegaConf

        try:
            config = OmegaConf.load(self.hydra_config)
        except Exception:  # a damaged config must not hide the run's metrics
            return {}
        try:
            return OmegaConf.to_container(config, resolve=True)
        except Exception:  # an interpolation this process cannot resolve: keep it as written
            return OmegaConf.to_container(config, resolve=False)

    def finished_record(self, digest: str) -> dict | None:
        """The record of a finished run (status OK) of the config with this hash, if the folder holds one."""
        record = self.read_metrics()
        if record and record.get("status") == OK and record.get("config_hash") == digest:
            return record
        return None

    def checkpoint_to_resume(self, digest: str) -> Path | None:
        """The last checkpoint an unfinished run of this config left here (saved after that run started): in the
        staging folder of an attempt that was killed, or among the results of one that recorded its end."""
        for place in (self.staging, self):
            job = place.read_job()
            checkpoint = place.last_checkpoint
            if (job and job.get("config_hash") == digest and checkpoint.exists()
                    and checkpoint.stat().st_mtime >= job.get("started_at", float("inf"))):
                return checkpoint
        return None

    def foreign_files(self) -> list[str]:
        """The names in this folder when it is not a tsad run's: a run folder has a record (metrics.json, job.json
        or .staging/), or holds nothing but what a run leaves before its attempt begins; [] for a run folder."""
        if not self.root.is_dir() or any(p.exists() for p in (self.metrics, self.job, self.staging.root)):
            return []
        return sorted(p.name for p in self.root.iterdir() if p.name not in STARTING_RUN_FILES)

    def check_replaceable(self, config: dict, sweep: bool) -> None:
        """A one-line UserError when this folder holds a finished run (status OK) that a run of `config` may not
        replace: any unless `overwrite` or `resume` is set; with `resume`, one of another config (resume=true
        continues or skips only its own config's run)."""
        record = self.read_metrics() or {}
        if record.get("status") != OK or config.get("overwrite"):
            return
        folder_key = "hydra.sweep.dir" if sweep else "hydra.run.dir"
        if not config.get("resume"):
            keep = "add resume=true to keep it, " if sweep else ""
            raise UserError(f"{self.root} holds a finished run (status {OK}); {keep}choose another {folder_key}, "
                            f"or add overwrite=true to replace it")
        digest = config_hash(config)
        if record.get("config_hash") != digest:
            theirs = _described(record.get("model"), record.get("seed"), record.get("config_hash"))
            ours = _described((config.get("model") or {}).get("name"), config.get("seed"), digest)
            raise UserError(f"{self.root} holds a finished run of another config ({theirs}) than this one ({ours}); "
                            f"resume=true continues only its own config's run: choose another {folder_key}, "
                            f"or add overwrite=true to replace it")

    # ------------------------------------------------------------------------ the lock

    @contextmanager
    def locked(self):
        """Hold the folder's lock inside (tsad/folder_lock.py; the folder is made if need be); a one-line UserError
        naming the holder when another run holds it."""
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            with folder_lock.held(self.lock_file):
                yield self
        except folder_lock.FolderInUse as error:
            raise self._in_use(error.holder) from None

    def check_not_in_use(self) -> None:
        """A one-line UserError naming the run that holds the folder's lock, if one does."""
        holder = folder_lock.holder(self.lock_file)
        if holder is not None:
            raise self._in_use(holder)

    def _in_use(self, holder: str) -> UserError:
        return UserError(f"{self.root} is being written by another run ({holder}); wait for it to end, or choose "
                         f"another folder")

    # ------------------------------------------------------------------------ an attempt

    def begin_attempt(self, facts: dict, resume_from: str | None = None) -> RunFolder:
        """The fresh staging folder an attempt writes to, its job.json holding `facts` (`started_at` among them)
        and .hydra/ a copy of the folder's (Hydra's, as it wrote them for this attempt). An earlier attempt's
        staging folder is kept only when this one resumes from a checkpoint inside it."""
        staging = self.staging
        if not (resume_from and Path(resume_from).resolve().is_relative_to(staging.root.resolve())):
            shutil.rmtree(staging.root, ignore_errors=True)
        staging.root.mkdir(parents=True, exist_ok=True)
        copy_files(self.hydra, staging.hydra)
        write_json_atomic(staging.job, facts)
        return staging

    def end_attempt(self, status: str) -> RunFolder:
        """The folder for the record of an attempt that ended with `status`: this one, into which the attempt's
        staged files are moved (publish), unless the attempt failed and this folder holds a finished run (status
        OK). That run then stays as it is, and the attempt's files and record stay in the staging folder."""
        if status == OK or (self.read_metrics() or {}).get("status") != OK:
            self.publish()
            return self
        self.put_back_published_hydra()
        log.warning("warning: %s keeps its earlier finished run; this attempt (%s) left its record and files in %s",
                    self.root, status, self.staging.root)
        return self.staging

    def put_back_published_hydra(self) -> None:
        """Make .hydra/ the published run's again (Hydra rewrites it as any run starts) from its copy in
        .hydra/published/; a run published without one keeps .hydra/ as it is."""
        if self.published_hydra.is_dir():
            copy_files(self.published_hydra, self.hydra)

    def publish(self) -> None:
        """Move the attempt staged in .staging/ into this folder, in place of the results here; its record
        (metrics.json) is written after.

        The earlier metrics.json goes aside first, so a reader of the folder finds the earlier run, then no run,
        then the new one, never parts of both. Only what a run wrote is replaced: the names in the earlier
        job.json's `files` (or, for older runs, the names the new run writes), never Hydra's files or others.
        A publish that fails (a full disk) moves everything back: the folder and .staging/ stay as they were.
        """
        staging, aside = self.staging.root, self.replaced
        new = sorted({p.name for p in staging.iterdir() if p.name not in NOT_RUN_FILES} | {JOB_FILE, METRICS_FILE})
        write_json_atomic(self.staging.job, {**(self.staging.read_job() or {}), "files": new})
        earlier = {METRICS_FILE, *new, *self._published_files()}
        shutil.rmtree(aside, ignore_errors=True)
        aside.mkdir()
        moves = Moves()
        try:
            for name in sorted(earlier, key=lambda name: name != METRICS_FILE):
                moves.move(self.root / name, aside / name)
            for name in new:
                moves.move(staging / name, self.root / name)
            copy_files(self.staging.hydra, self.hydra)  # as the attempt began, whatever wrote .hydra/ since
            replace_with_copy(self.staging.hydra, self.published_hydra)
        except BaseException:
            moves.undo()
            shutil.rmtree(aside, ignore_errors=True)
            raise
        shutil.rmtree(staging)
        shutil.rmtree(aside)

    def discard_attempt(self) -> None:
        """Remove the attempt's staging folder and make .hydra/ the published run's again: the folder holds what it
        held before the attempt began (an attempt that filled the disk)."""
        shutil.rmtree(self.staging.root, ignore_errors=True)
        self.put_back_published_hydra()

    def _published_files(self) -> list[str]:
        """The names of the published run's outputs in its job.json, leaving out any that is not a plain name."""
        files = (self.read_job() or {}).get("files")
        if not isinstance(files, list):
            return []
        return [name for name in files if isinstance(name, str) and name == Path(name).name
                and name not in NOT_RUN_FILES]


def _described(model, seed, digest) -> str:
    return f"model {model}, seed {seed}, config hash {str(digest)[:8]}"


# ---------------------------------------------------------------------------- run folders under a path

def find_run_folders(paths) -> list[Path]:
    """Folders with a metrics.json, or with a Hydra config but no metrics.json (killed or unfinished runs)."""
    folders = set()
    hydra_config = f"{HYDRA_DIR}/{HYDRA_CONFIG_FILE}"
    for path in map(Path, paths):
        if not path.exists():
            raise UserError(f"{path} does not exist; give run folders or folders that hold them")
        folders.update(p.parent.resolve() for p in path.rglob(METRICS_FILE)
                       if not in_staging(p.relative_to(path)))
        folders.update(p.parent.parent.resolve() for p in path.rglob(hydra_config)
                       if not in_staging(p.relative_to(path)))
        if RunFolder(path).metrics.exists() or RunFolder(path).hydra_config.exists():
            folders.add(path.resolve())
    if not folders:
        raise UserError(f"no run folders (with {METRICS_FILE}) under {', '.join(map(str, paths))}")
    return sorted(folders)


def in_staging(path: Path) -> bool:
    """Whether the relative `path` lies in a run's staging folder or among the results it is replacing: not a
    run of its own."""
    return bool({STAGING_DIR, REPLACED_DIR} & set(Path(path).parts))
