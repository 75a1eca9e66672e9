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

import numpy as np
import pandas as pd
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


# -- a small NAB-format corpus -------------------------------------------------------------------

def stamps(n_rows: int, start: str = "2014-03-01 00:00:00") -> list[str]:
    return list(pd.date_range(start, periods=n_rows, freq="5min").strftime("%Y-%m-%d %H:%M:%S"))


def write_nab_folder(root: Path, series: dict[str, tuple[list[str], np.ndarray]],
                     windows: dict[str, list[tuple[str, str]]]) -> Path:
    """data/<category>/<name>.csv (timestamp,value) and labels/combined_windows.json, as NAB lays them out."""
    for name, (timestamps, values) in series.items():
        path = root / "data" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"timestamp": timestamps, "value": values}).to_csv(path, index=False)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    written = {name: [[f"{start}.000000", f"{end}.000000"] for start, end in file_windows]
               for name, file_windows in windows.items()}
    (root / "labels" / "combined_windows.json").write_text(json.dumps(written, indent=4))
    return root


@pytest.fixture(scope="module")
def nab_mini(tmp_path_factory) -> Path:
    """Three files in two categories: a spike, repeated and backward timestamps, and no anomaly at all."""
    rng = np.random.default_rng(0)
    rows = np.arange(600)
    spike = np.sin(rows * 2 * np.pi / 48) + 0.1 * rng.normal(size=600)
    spike[450:455] += 4.0
    spike_stamps = stamps(600)

    glitch = np.cos(np.arange(400) * 2 * np.pi / 30) + 0.1 * rng.normal(size=400)
    glitch[310:316] = 3.0
    glitch_stamps = stamps(400)
    glitch_stamps[101] = glitch_stamps[100]  # a repeated timestamp
    glitch_stamps[200:212] = stamps(12, "2014-03-01 15:00:00")  # time goes back an hour at row 200

    flat_stamps = stamps(300)
    series = {
        "synthA/sine_spike.csv": (spike_stamps, np.round(spike, 4)),
        "synthA/cos_glitch.csv": (glitch_stamps, np.round(glitch, 4)),
        "synthB/exchange-2_flat.csv": (flat_stamps, np.full(300, 7.0)),
    }
    windows = {
        "synthA/sine_spike.csv": [(spike_stamps[430], spike_stamps[470])],
        # 15:00 occurs at rows 180 and 200: the window starts at the first.
        "synthA/cos_glitch.csv": [(glitch_stamps[300], glitch_stamps[330])],
        "synthB/exchange-2_flat.csv": [],
    }
    return write_nab_folder(tmp_path_factory.mktemp("nab_mini"), series, windows)
