"""Experiment tracking, the `logger` config group (none, tensorboard, mlflow): all of it lives here.

The job (tsad/sweeps/job.py) checks the logger before any work (`check_logger`: the group's typed settings; a
missing package fails in one line with its install hint), opens a tracker when its run starts, hands
`Tracker.log_epoch` to the trainer among the run's epoch callbacks, and closes the tracker once metrics.json is
written. A tracker logs
  each epoch   the history record's numbers under their history.csv names (train_loss, val_loss, lr, ...),
               at step = the record's row in the run's history.csv
  at the end   the record's numbers under slash-joined names (series/roc_auc, validation/val_loss,
               timing/fit_seconds, ...) and the flattened config (model.window, ...) as hyperparameters
TensorBoard writes event files into the run folder's tensorboard/. MLflow makes one run per job, named after
the job's folder, in one experiment per sweep, named after the sweep's folder; it adds the tags model, dataset
and seed, and metrics.json and plots/ as artifacts. A tracking server that does not answer is given up after
about logger.timeout_s. Both packages are imported only when a run uses them.
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import util
from pathlib import Path

from tsad.errors import UserError
from tsad.results import INTERRUPTED, OK
from tsad.run_folder import RunFolder
from tsad.settings.fields import Section, setting

log = logging.getLogger(__name__)

EXTRA = "tracking"
# The modules each logger imports (MLflow's local store runs on sqlalchemy and alembic).
LOGGERS = {"none": (), "tensorboard": ("tensorboard",), "mlflow": ("mlflow", "sqlalchemy", "alembic")}
SINGLE_RUNS_EXPERIMENT = "runs"     # the MLflow experiment of runs outside a sweep (their folders are under runs/)
SQLITE_PREFIX = "sqlite:///"
LOCAL_STORE = "mlflow.db"           # the default MLflow store: a database in paths.output_dir
MLFLOW_ARTIFACTS_DIR = "mlartifacts"  # a local store's artifacts, beside its database
MLFLOW_BATCH = 100                  # MLflow takes at most 100 params per log_batch call (and 1000 metrics)
MLFLOW_STATUS = {OK: "FINISHED", INTERRUPTED: "KILLED"}  # any other status of the record: FAILED
# Parts of a run's record logged under their own names, beside its metrics per label level.
RECORD_NUMBERS = ("validation", "timing", "n_parameters", "epochs_trained")


@dataclass(frozen=True)
class LoggerSettings(Section):
    """logger=none and logger=tensorboard: the logger's name is all there is to set."""

    name: str = setting("none", choices=tuple(LOGGERS))


@dataclass(frozen=True)
class MlflowSettings(LoggerSettings):
    """logger=mlflow: where the runs go, and how long a tracking server that does not answer is waited for."""

    tracking_uri: str | None = setting(None)   # None: a local store, <paths.output_dir>/mlflow.db
    experiment: str | None = setting(None)     # None: the sweep's folder, or SINGLE_RUNS_EXPERIMENT
    timeout_s: float = setting(10.0, above=0, at_most=600)


SETTINGS = {"none": LoggerSettings, "tensorboard": LoggerSettings, "mlflow": MlflowSettings}


def check_logger(logger: dict | None) -> LoggerSettings:
    """The logger's settings; fails in one line, before any work, on an unknown logger, a bad value or a logger
    whose package is not installed."""
    name = str((logger or {}).get("name", "none"))
    if name not in LOGGERS:
        raise UserError(f"logger.name={name!r} is not a logger; choose one of: {', '.join(LOGGERS)} "
                        "(e.g. logger=mlflow)")
    settings = SETTINGS[name].parse(logger, "logger")
    missing = [module for module in LOGGERS[name] if util.find_spec(module) is None]
    if missing:
        raise UserError(f"logger={name} needs the {EXTRA!r} extra, which is not installed ({missing[0]} is "
                        f"missing): pip install 'tsad[{EXTRA}]'")
    return settings


def open_tracker(settings, config: dict, run_dir: Path, sweep_dir: Path | None = None) -> Tracker:
    """The tracker the run's settings (tsad.settings.run.RunConfig) ask for, for the run in `run_dir` (of the sweep
    in `sweep_dir`, if any); `config` is the resolved config it logs as hyperparameters."""
    if settings.logger.name == "tensorboard":
        return TensorBoardTracker(config, RunFolder(run_dir).tensorboard)
    if settings.logger.name == "mlflow":
        return MlflowTracker(settings, config, Path(run_dir), sweep_dir)
    return Tracker()


class Tracker:
    """What every tracker does; logger=none logs nothing."""

    def __init__(self):
        self.last_step = 0

    def log_epoch(self, history: list[dict]) -> None:
        """An epoch callback: log the newest history record at its row in the run's history.csv. A protocol that
        fits several detectors (NAB: one per file) writes their histories one after the other, so when a new
        detector starts over at epoch 1, the steps go on from the last one logged."""
        self.last_step = max(len(history), self.last_step + 1)
        self._log_epoch(epoch_metrics(history[-1]), self.last_step)

    def _log_epoch(self, metrics: dict[str, float], step: int) -> None:
        pass

    def close(self, record: dict, run_dir: Path) -> None:
        """Log the ended run's record, whatever its status. metrics.json already says how the run ended, so a
        tracker that fails here only warns."""
        try:
            self._finish(record, Path(run_dir))
        except Exception as error:
            log.warning("logger: could not log the run's results: %s", error)

    def _finish(self, record: dict, run_dir: Path) -> None:
        pass


class TensorBoardTracker(Tracker):
    """Event files in the run folder: scalars per epoch, then the final metrics with the hyperparameters."""

    def __init__(self, config: dict, log_dir: Path):
        from torch.utils.tensorboard import SummaryWriter

        super().__init__()
        self.hyperparameters = flat_config(config)
        self.writer = SummaryWriter(log_dir=str(log_dir))

    def _log_epoch(self, metrics: dict[str, float], step: int) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()  # visible in TensorBoard now, not at the writer's next periodic flush

    def _finish(self, record: dict, run_dir: Path) -> None:
        from torch.utils.tensorboard.summary import hparams

        metrics = final_metrics(record)
        try:
            for summary in hparams(self.hyperparameters, metrics):
                self.writer.file_writer.add_summary(summary)
            for key, value in metrics.items():
                self.writer.add_scalar(key, value)
        finally:
            self.writer.close()


class MlflowTracker(Tracker):
    """One MLflow run: params and tags when it opens, metrics per epoch, results and artifacts when it closes."""

    def __init__(self, settings, config: dict, run_dir: Path, sweep_dir: Path | None):
        from mlflow.exceptions import MlflowException

        super().__init__()
        logger = settings.logger
        self.timeout_s = logger.timeout_s
        uri = logger.tracking_uri or f"{SQLITE_PREFIX}{settings.paths.output_dir}/{LOCAL_STORE}"
        try:
            with http_retries_within(self.timeout_s):
                self._open(uri, logger.experiment or experiment_name(settings.paths.output_dir, sweep_dir), settings,
                           config, run_dir)
        except MlflowException as error:
            cause = unanswered_request(error)
            if cause is None:
                raise
            raise UserError(f"logger.tracking_uri={uri!r} did not answer within logger.timeout_s={self.timeout_s:g} "
                            f"({type(cause).__name__}); start the tracking server or fix the address, raise "
                            "logger.timeout_s, or run with logger=none") from error

    def _open(self, uri: str, experiment: str, settings, config: dict, run_dir: Path) -> None:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        # A sweep's jobs start together: one at a time opens a local store (the first creates its tables), and
        # gets or creates the experiment.
        with local_store_lock(uri):
            self.client = MlflowClient(tracking_uri=uri)
            experiment_id = self._experiment_id(experiment, artifact_location(uri))
        tags = {"model": settings.model.name, "dataset": settings.dataset.name, "seed": str(settings.seed),
                "run_dir": str(run_dir.resolve())}
        if settings.tags:
            tags["tags"] = ", ".join(settings.tags)
        self.run_id = self.client.create_run(experiment_id, run_name=run_dir.name, tags=tags).info.run_id
        params = [Param(key, str(value)) for key, value in flat_config(config).items()]
        for start in range(0, len(params), MLFLOW_BATCH):
            self.client.log_batch(self.run_id, params=params[start:start + MLFLOW_BATCH])

    def _experiment_id(self, name: str, artifact_location: str | None) -> str:
        from mlflow.exceptions import MlflowException

        experiment = self.client.get_experiment_by_name(name)
        if experiment is None:
            try:
                return self.client.create_experiment(name, artifact_location=artifact_location)
            except MlflowException:  # another job created it meanwhile (a server; a local store is locked)
                experiment = self.client.get_experiment_by_name(name)
                if experiment is None:
                    raise
        if experiment.lifecycle_stage == "deleted":
            raise UserError(f"logger.experiment={name!r}: that MLflow experiment was deleted; restore it "
                            f"(mlflow experiments restore --experiment-id {experiment.experiment_id}) or name "
                            "another, e.g. logger.experiment=my_study")
        return experiment.experiment_id

    def _log_epoch(self, metrics: dict[str, float], step: int) -> None:
        with http_retries_within(self.timeout_s):
            self._log_metrics(metrics, step)

    def _finish(self, record: dict, run_dir: Path) -> None:
        folder = RunFolder(run_dir)
        with http_retries_within(self.timeout_s):
            try:
                self._log_metrics(final_metrics(record), step=0)
                self.client.set_tag(self.run_id, "status", str(record.get("status")))
                self.client.log_artifact(self.run_id, str(folder.metrics))
                if folder.plots.is_dir():
                    self.client.log_artifacts(self.run_id, str(folder.plots), folder.plots.name)
            finally:
                self.client.set_terminated(self.run_id, MLFLOW_STATUS.get(record.get("status"), "FAILED"))

    def _log_metrics(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        timestamp = int(time.time() * 1000)
        entries = [Metric(key, value, timestamp, step) for key, value in metrics.items()]
        for start in range(0, len(entries), MLFLOW_BATCH):
            self.client.log_batch(self.run_id, metrics=entries[start:start + MLFLOW_BATCH])


@contextmanager
def http_retries_within(timeout_s: float):
    """While the block runs, MLflow waits on a tracking server about `timeout_s` rather than minutes: each request
    at most that long (whole seconds), and retries only while the pauses between them (0, 2, 4, ... s) add up to no
    more than it. MLflow reads these variables at every request; they are restored after."""
    limits = {"MLFLOW_HTTP_REQUEST_TIMEOUT": str(math.ceil(timeout_s)),
              "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(int(math.log2(timeout_s + 2))),  # 2**k - 2 s of pauses
              "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
              "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0"}
    saved = {key: os.environ.get(key) for key in limits}
    os.environ.update(limits)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def unanswered_request(error: BaseException):
    """The HTTP failure (refused, timed out, retries spent) behind an MLflow error, or None when there is none."""
    from requests.exceptions import RequestException

    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, RequestException):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


# ---------------------------------------------------------------------------- what is logged

def epoch_metrics(record: dict) -> dict[str, float]:
    """A history record's numbers (losses, lr, seconds), without its place in training (stage, epoch)."""
    return {key: value for key, value in numeric_leaves(record) if key != "epoch"}


def final_metrics(record: dict) -> dict[str, float]:
    """The numbers of a run's record: its metrics per label level (series/roc_auc, point/f1, ...), validation/*,
    timing/*, n_parameters and epochs_trained."""
    numbers = dict(numeric_leaves(record.get("metrics") or {}))
    numbers.update(numeric_leaves({key: record[key] for key in RECORD_NUMBERS if key in record}))
    return numbers


def numeric_leaves(node: dict, prefix: str = ""):
    """(slash-joined key, float) for every number in a nested mapping; lists, text and booleans are left out."""
    for key, value in node.items():
        if isinstance(value, dict):
            yield from numeric_leaves(value, f"{prefix}{key}/")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            yield f"{prefix}{key}", float(value)


def flat_config(config: dict, prefix: str = "") -> dict[str, str | int | float | bool]:
    """The config under dotted keys (model.window); a value that is not a scalar (a list, null) as its JSON text."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(flat_config(value, f"{prefix}{key}."))
        elif isinstance(value, (str, int, float, bool)):
            flat[f"{prefix}{key}"] = value
        else:
            flat[f"{prefix}{key}"] = json.dumps(value, default=str)
    return flat


# ---------------------------------------------------------------------------- where MLflow keeps it

def experiment_name(output_dir: str, sweep_dir: Path | None) -> str:
    """A sweep's folder relative to paths.output_dir (its own name where it lies elsewhere); `runs` outside a sweep."""
    if sweep_dir is None:
        return SINGLE_RUNS_EXPERIMENT
    sweep = Path(sweep_dir).resolve()
    output_dir = Path(output_dir).resolve()
    return sweep.relative_to(output_dir).as_posix() if sweep.is_relative_to(output_dir) else sweep.name


def artifact_location(uri: str) -> str | None:
    """Where a local store's artifacts go: mlartifacts/ beside its database (a tracking server chooses its own)."""
    if not uri.startswith(SQLITE_PREFIX):
        return None
    return (sqlite_path(uri).parent / MLFLOW_ARTIFACTS_DIR).resolve().as_uri()


def sqlite_path(uri: str) -> Path:
    return Path(uri[len(SQLITE_PREFIX):])


@contextmanager
def local_store_lock(uri: str):
    """Hold an exclusive file lock beside a local store's database (nothing for a tracking server)."""
    if not uri.startswith(SQLITE_PREFIX):
        yield
        return
    database = sqlite_path(uri)
    database.parent.mkdir(parents=True, exist_ok=True)
    with open(database.with_name(f"{database.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
