"""Run-folder I/O: metrics.json (written atomically), scores, training history, environment facts."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path

import numpy as np

METRICS_FILE = "metrics.json"


def write_json_atomic(path: Path, payload: dict) -> None:
    """Write to a temporary file and rename, so a reader never sees a half-written file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=_jsonable))
    os.replace(tmp, path)


def read_metrics(run_dir: Path) -> dict | None:
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return None
    return json.loads(path.read_text())


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def write_scores(directory: Path, split: str, data, scores) -> None:
    """scores/<split>_series.csv (one row per series) and <split>_steps.csv.gz (one row per step)."""
    import pandas as pd

    directory.mkdir(parents=True, exist_ok=True)
    series = pd.DataFrame({"series": data.names, "score": scores.series, "length": data.lengths})
    if data.series_labels is not None:
        series["label"] = data.series_labels
    series.to_csv(directory / f"{split}_series.csv", index=False)
    steps = pd.DataFrame({
        "series": np.repeat(data.names, data.lengths),
        "step": np.concatenate([np.arange(n) for n in data.lengths]),
        "score": np.concatenate(scores.steps),
    })
    if data.step_labels is not None:
        steps["label"] = np.concatenate(data.step_labels)
    steps.to_csv(directory / f"{split}_steps.csv.gz", index=False)


def write_history(path: Path, history: list[dict]) -> None:
    import pandas as pd

    if history:
        pd.DataFrame(history).to_csv(path, index=False)


def environment() -> dict:
    import sklearn
    import torch

    import tsad

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
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
