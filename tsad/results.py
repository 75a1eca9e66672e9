"""The run folder, read and written in one place: metrics.json and its statuses, the config hash, scores,
training history, environment facts, and the flat row `tsad-table` makes of a finished (or killed) run.

Only the standard library is imported at module level (numpy, pandas, torch load inside the functions
that need them): tsad.sweeps imports this module before any job runs, and `tsad-run --help` must stay fast.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import platform
import shutil
import subprocess
from pathlib import Path

from tsad.errors import NaNLossError, UserError

log = logging.getLogger("tsad")

METRICS_FILE = "metrics.json"
JOB_FILE = "job.json"  # the attempt's facts (config, its hash, host, pid, start time) and, once in, the files it wrote
# Inside the run folder: the running attempt writes its outputs to STAGING_DIR, and they are moved into the run folder
# when it ends (publish); the results they replace wait in REPLACED_DIR meanwhile. Hydra's .hydra/ and run.log stay.
STAGING_DIR = ".staging"
REPLACED_DIR = ".replaced"
LAST_CHECKPOINT = Path("model") / "checkpoints" / "last.pt"

# ---------------------------------------------------------------------------- statuses

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


# ---------------------------------------------------------------------------- which config keys count

# Keys that say where or how a run executes, not what it computes: the same run written to another folder,
# resumed from a checkpoint, with other progress bars, tracked by another logger, or launched by another sweep
# or search. The config hash leaves them out, so a job finds its earlier run however it was launched.
INCIDENTAL_KEYS = ("paths", "resume", "overwrite", "objective", "gpu_pool", "logger", "trainer.resume_from",
                   "trainer.progress")
# A table cell averages runs that may differ in these keys as well, so a table does not compare them. The
# config hash keeps them, as each makes another run: another seed computes other numbers (a cell's runs are
# its seeds), another device slightly other ones (noise of the seed's order), plots change what the folder
# holds, and tags what its metrics.json says.
NOT_COMPARED_KEYS = INCIDENTAL_KEYS + ("seed", "device", "plots", "tags")


def is_under(dotted: str, keys: tuple[str, ...]) -> bool:
    """Whether the dotted config key `dotted` is one of `keys` or lies inside one of them."""
    return any(dotted == key or dotted.startswith(f"{key}.") for key in keys)


def config_hash(config: dict) -> str:
    """A short, stable digest of the resolved config without its INCIDENTAL_KEYS.

    Sweep folders are named after it and metrics.json records it: keep the digest of a given config as it is.
    """
    kept = copy.deepcopy(config)
    for dotted in INCIDENTAL_KEYS:
        *parents, last = dotted.split(".")
        node = kept
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)
    text = json.dumps(kept, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------- JSON files

def read_json(path: Path) -> dict | None:
    """The JSON object in `path`, or None when it is missing, unreadable or not an object."""
    try:
        return _load_json_object(Path(path))
    except (OSError, ValueError):
        return None


def read_metrics(run_dir: Path) -> dict | None:
    """The run's metrics.json, or None when there is no readable one."""
    return read_json(Path(run_dir) / METRICS_FILE)


def _load_json_object(path: Path) -> dict:
    value = json.loads(path.read_text())
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, found {type(value).__name__}")
    return value


def write_json_atomic(path: Path, payload: dict) -> None:
    """Write to a temporary file and rename, so a reader never sees a half-written file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=_jsonable))
    os.replace(tmp, path)


def end_attempt(run_dir: Path, status: str) -> Path:
    """The folder for the record of an attempt that ended with `status`: `run_dir`, into which the attempt's
    staged files are moved (publish), unless the attempt failed and `run_dir` holds a finished run (status OK).
    That run then stays as it is, and the attempt's files and record stay in the staging folder."""
    run_dir = Path(run_dir)
    if status == OK or (read_metrics(run_dir) or {}).get("status") != OK:
        publish(run_dir)
        return run_dir
    log.warning("warning: %s keeps its earlier finished run; this attempt (%s) left its record and files in %s",
                run_dir, status, run_dir / STAGING_DIR)
    return run_dir / STAGING_DIR


def publish(run_dir: Path) -> None:
    """Move the attempt staged in `run_dir`/.staging into `run_dir`, in place of the results there; its record
    (metrics.json) is written after.

    The earlier metrics.json goes aside first, so a reader of the folder finds the earlier run, then no run,
    then the new one, never parts of both. Only what a run wrote is replaced: the names in the earlier
    job.json's `files` (or, for older runs, the names the new run writes), never Hydra's files or others.
    """
    run_dir = Path(run_dir)
    staging, aside = run_dir / STAGING_DIR, run_dir / REPLACED_DIR
    new = sorted({p.name for p in staging.iterdir()} | {JOB_FILE, METRICS_FILE})
    write_json_atomic(staging / JOB_FILE, {**(read_json(staging / JOB_FILE) or {}), "files": new})
    earlier = {METRICS_FILE, *new, *_run_files(read_json(run_dir / JOB_FILE))}
    shutil.rmtree(aside, ignore_errors=True)
    aside.mkdir()
    for name in sorted(earlier, key=lambda name: name != METRICS_FILE):
        if (run_dir / name).exists() or (run_dir / name).is_symlink():
            os.replace(run_dir / name, aside / name)
    for name in new:
        if (staging / name).exists():
            os.replace(staging / name, run_dir / name)
    staging.rmdir()
    shutil.rmtree(aside)


def finished_run(folders: list[Path], digest: str) -> tuple[Path, dict] | None:
    """The first folder whose metrics.json is a finished run (status OK) of the config with this hash."""
    for folder in folders:
        record = read_metrics(folder)
        if record and record.get("status") == OK and record.get("config_hash") == digest:
            return folder, record
    return None


def checkpoint_to_resume(folders: list[Path], digest: str) -> Path | None:
    """The last checkpoint an unfinished run of this config left behind (saved after that run started): in the
    staging folder of an attempt that was killed, or among the results of one that recorded its end."""
    for folder in folders:
        for place in (folder / STAGING_DIR, folder):
            job = read_json(place / JOB_FILE)
            checkpoint = place / LAST_CHECKPOINT
            if (job and job.get("config_hash") == digest and checkpoint.exists()
                    and checkpoint.stat().st_mtime >= job.get("started_at", float("inf"))):
                return checkpoint
    return None


def _run_files(job: dict | None) -> list[str]:
    """The names of a published run's outputs in its job.json, leaving out any that is not a plain name."""
    files = (job or {}).get("files")
    if not isinstance(files, list):
        return []
    return [name for name in files if isinstance(name, str) and name == Path(name).name
            and name not in ("", ".", "..", STAGING_DIR, REPLACED_DIR, ".hydra")]


def _jsonable(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


# ---------------------------------------------------------------------------- what a run leaves besides its record

def write_scores(directory: Path, split: str, data, scores, thresholds: dict | None = None,
                 step_columns: dict | None = None) -> None:
    """scores/<split>_series.csv (one row per series) and <split>_steps.csv.gz (one row per step).

    With `thresholds` ({level: value}) each file of a level that has one gains `alarm` (score > threshold, the
    rule of the metrics); steps gain `row` (the row in the source file) and `timestamp` where the data has them,
    and the `step_columns` given ({name: one value per step}).
    """
    import numpy as np
    import pandas as pd

    thresholds = thresholds or {}
    directory.mkdir(parents=True, exist_ok=True)
    series = pd.DataFrame({"series": data.names, "score": scores.series, "length": data.lengths})
    if data.series_labels is not None:
        series["label"] = data.series_labels
    if "series" in thresholds:
        series["alarm"] = (series["score"] > thresholds["series"]).astype(int)
    series.to_csv(directory / f"{split}_series.csv", index=False)
    steps = pd.DataFrame({
        "series": np.repeat(data.names, data.lengths),
        "step": np.concatenate([np.arange(n) for n in data.lengths]),
        "score": np.concatenate(scores.steps),
    })
    if data.rows is not None:
        steps["row"] = np.concatenate(data.rows)
    if data.timestamps is not None:
        steps["timestamp"] = np.concatenate(data.timestamps)
    if data.step_labels is not None:
        steps["label"] = np.concatenate(data.step_labels)
    if "point" in thresholds:
        steps["alarm"] = (steps["score"] > thresholds["point"]).astype(int)
    for name, values in (step_columns or {}).items():
        steps[name] = values
    steps.to_csv(directory / f"{split}_steps.csv.gz", index=False)


def write_history(path: Path, history: list[dict]) -> None:
    import pandas as pd

    if history:
        pd.DataFrame(history).to_csv(path, index=False)


def environment() -> dict:
    import numpy as np
    import sklearn
    import torch

    import tsad

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "numpy": np.__version__,
        "scikit_learn": sklearn.__version__,
        "tsad": tsad.__version__,
        "git_commit": git_commit(),
        "hostname": platform.node(),
    }


def git_commit() -> str | None:
    """The commit of the tsad source tree, when it is a git checkout."""
    source = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


# ---------------------------------------------------------------------------- run folders as table rows

LEVELS = ("series", "point")
# NAB's score per profile (NAB runs only): at the run's own threshold, and at thresholds optimised on the labels.
NAB_SCORES = ("nab_label_free", "oracle_nab")


def find_run_folders(paths) -> list[Path]:
    """Folders with a metrics.json, or with a Hydra config but no metrics.json (killed or unfinished runs)."""
    folders = set()
    for path in map(Path, paths):
        if not path.exists():
            raise UserError(f"{path} does not exist; give run folders or folders that hold them")
        folders.update(p.parent.resolve() for p in path.rglob(METRICS_FILE)
                       if not _in_staging(p.relative_to(path)))
        folders.update(p.parent.parent.resolve() for p in path.rglob(".hydra/config.yaml")
                       if not _in_staging(p.relative_to(path)))
        if (path / METRICS_FILE).exists() or (path / ".hydra" / "config.yaml").exists():
            folders.add(path.resolve())
    if not folders:
        raise UserError(f"no run folders (with metrics.json) under {', '.join(map(str, paths))}")
    return sorted(folders)


def _in_staging(path: Path) -> bool:
    """Whether `path` lies in a run's staging folder or among the results it is replacing: not a run of its own."""
    return bool({STAGING_DIR, REPLACED_DIR} & set(path.parts))


def read_run(folder: Path) -> dict:
    """One flat row: identity, status, threshold, metrics, timings, then the config under config.*."""
    config = read_config(folder)
    row = {"run_dir": str(folder)}
    path = folder / METRICS_FILE
    if not path.exists():
        record = {"status": INCOMPLETE, "error": "no metrics.json: the run was killed or has not finished"}
    else:
        try:
            record = _load_json_object(path)
        except (OSError, ValueError) as error:
            record = {"status": UNREADABLE, "error": f"metrics.json: {error}"}
    row["status"] = record.get("status") or (OK if record.get("metrics") else UNKNOWN)
    row["model"] = record.get("model") or _nested(config, "model", "name")
    row["dataset"] = record.get("dataset") or _nested(config, "dataset", "name")
    row["seed"] = record.get("seed", config.get("seed"))
    metrics = record.get("metrics") or {}
    if metrics and not all(isinstance(v, dict) for v in metrics.values()):
        metrics = {record.get("level") or _nested(config, "dataset", "level") or "series": metrics}
    row["level"] = (record.get("level") or _nested(config, "dataset", "level")
                    or next((level for level in LEVELS if level in metrics), None))
    row["error"] = record.get("error")
    row.update(flatten(record.get("threshold") or {}, "threshold"))
    for level, level_metrics in metrics.items():
        row.update(flatten(level_metrics, level))
    row.update(flatten(record.get("validation") or {}, "validation"))
    for key in NAB_SCORES:
        row.update(flatten(record.get(key) or {}, key))
    if "oracle_nab" not in record:  # older runs named the label-optimised NAB score plain `nab`
        row.update(flatten(record.get("nab") or {}, "oracle_nab"))
    timing = record.get("timing") or {}
    row.update({key: timing.get(key) for key in ("fit_seconds", "score_seconds", "total_seconds")})
    for key in ("n_parameters", "epochs_trained", "device"):
        if key in record:
            row[key] = record[key]
    if record.get("tags"):
        row["tags"] = ",".join(map(str, record["tags"]))
    row.update(flatten(record.get("data") or {}, "data"))
    row.update(flatten(record.get("environment") or {}, "environment"))
    row.update(flatten(config, "config"))
    return row


def read_config(folder: Path) -> dict:
    """The resolved config of the run whose results the folder holds: its job.json's (Hydra rewrites .hydra/ when a
    new attempt starts, which may fail and leave the earlier results), else .hydra/config.yaml; {} when neither is
    readable."""
    config = (read_json(folder / JOB_FILE) or {}).get("config")
    if isinstance(config, dict):
        return config
    path = folder / ".hydra" / "config.yaml"
    if not path.exists():
        return {}
    from omegaconf import OmegaConf

    try:
        config = OmegaConf.load(path)
    except Exception:  # a damaged config must not hide the run's metrics
        return {}
    try:
        return OmegaConf.to_container(config, resolve=True)
    except Exception:  # an interpolation this process cannot resolve: keep it as written
        return OmegaConf.to_container(config, resolve=False)


def _nested(mapping: dict, *keys):
    for key in keys:
        if not isinstance(mapping, dict):
            return None
        mapping = mapping.get(key)
    return mapping


def flatten(mapping: dict, prefix: str) -> dict:
    """{'a': {'b': 1}, 'c': [1, 2]} -> {'prefix.a.b': 1, 'prefix.c': '[1, 2]'}."""
    flat = {}
    for key, value in mapping.items():
        name = f"{prefix}.{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name))
        elif isinstance(value, (list, tuple)):
            flat[name] = json.dumps(value)
        else:
            flat[name] = value
    return flat
