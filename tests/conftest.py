"""Shared test helpers: run tsad-run in a subprocess and read its run folders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# Test models are tiny: one thread each (here and in every tsad-run the tests start) avoids
# thread oversubscription, which slows small torch ops by an order of magnitude on a busy machine.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest

TSAD_RUN = str(Path(sys.executable).with_name("tsad-run"))
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# A series-level synthetic set small enough for a few-second run.
TINY_SERIES = ["dataset.n_train=40", "dataset.n_val=10", "dataset.n_test=30", "dataset.min_length=40",
               "dataset.max_length=80", "trainer=fast", "plots=false"]


def run_tsad(args: list[str], output_dir: Path, cwd: Path | None = None, check: bool = True,
             timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONWARNINGS": "ignore"}
    result = subprocess.run([TSAD_RUN, *args, f"paths.output_dir={output_dir}"], cwd=cwd or output_dir,
                            capture_output=True, text=True, timeout=timeout, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"tsad-run {' '.join(args)} failed ({result.returncode}):\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


def reload_and_compare(detector, data, directory: Path):
    """Save a fitted detector, load it back, check it scores `data` the same (to float32 rounding); return it."""
    import numpy as np

    from tsad.models.base import Detector

    before = detector.score(data)
    detector.save(directory)
    loaded = Detector.load(directory)
    after = loaded.score(data)
    np.testing.assert_allclose(before.series, after.series, rtol=1e-6, atol=1e-6)
    for a, b in zip(before.steps, after.steps):
        assert np.isfinite(a).all()
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    return loaded


def score_alone_and_padded(module, short, long):
    """Scores of `short` [T, C] alone and of the batch [long, short], where `short` is padded to len(long):
    (alone_step, alone_series, mixed_step, mixed_series), for checks that padding changes nothing."""
    import numpy as np

    from tsad.data.batches import pad_batch

    alone_step, alone_series = module.score(pad_batch([short], np.array([-1])))
    mixed_step, mixed_series = module.score(pad_batch([long, short], np.array([-1, -1])))
    return alone_step, alone_series, mixed_step, mixed_series


def run_folders(output_dir: Path) -> list[Path]:
    return sorted(p.parent for p in Path(output_dir).rglob("metrics.json"))


def read_metrics(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


def run_model_on_tiny_series(model: str, output_dir: Path, *overrides: str) -> tuple[Path, dict]:
    """tsad-run one model on TINY_SERIES; check it finished and scored both label levels."""
    run_tsad([f"model={model}", *TINY_SERIES, *overrides], output_dir)
    folder = run_folders(output_dir)[0]
    record = read_metrics(folder)
    assert record["status"] == "OK" and record["model"] == model
    for level in ("series", "point"):
        assert 0.0 <= record["metrics"][level]["roc_auc"] <= 1.0
    return folder, record


@pytest.fixture
def tiny_series() -> list[str]:
    return list(TINY_SERIES)


def sensor_frame(rows: int = 300, seed: int = 0, anomalies=((250, 260),)):
    """A CSV-like frame: hourly timestamps, two numeric channels (an anomaly lifts `b` by 2), a text column, labels."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    t = np.arange(rows)
    label = np.zeros(rows, dtype=int)
    for start, stop in anomalies:
        label[start:stop] = 1
    return pd.DataFrame({"timestamp": pd.date_range("2024-01-01", periods=rows, freq="h").astype(str),
                         "a": np.sin(t / 5) + rng.normal(0, 0.1, rows), "b": np.cos(t / 7) + 2 * label,
                         "note": ["x"] * rows, "label": label})
