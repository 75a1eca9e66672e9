"""Bad input ends in a one-line error that names the key, the value and what is allowed: never a traceback.

Most cases call the validating code in-process (model __post_init__, the synthetic dataset, the threshold
config, the seed); a representative set runs `tsad-run` / `tsad-table` as subprocesses, which fail
before any training.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY_SERIES, TSAD_RUN

from tsad.errors import UserError

TSAD_TABLE = str(Path(sys.executable).with_name("tsad-table"))

# (model, hyperparameters): each must fail in __post_init__ with a UserError naming the key.
BAD_MODELS = [
    ("lstm_vae", {"window": 0}), ("lstm_vae", {"window": "abc"}), ("lstm_vae", {"train_stride": 0}),
    ("lstm_vae", {"score_stride": 0}), ("lstm_vae", {"step_reduce": "median"}),
    ("lstm_vae", {"series_aggregate": "median"}), ("lstm_vae", {"hidden_size": 0}), ("lstm_vae", {"latent_size": 0}),
    ("lstm_vae", {"num_layers": 0}), ("patchtrad", {"window": 0}), ("patchtrad", {"d_model": 0}),
    ("patchtrad", {"n_heads": 0}), ("tracegpt", {"window": 0}), ("tracegpt", {"d_model": 0}),
    ("tracegpt", {"n_heads": 0}), ("sdmae", {"window": 0}), ("sdmae", {"d_model": 0}),
    ("prodiffad", {"window": 0}), ("prodiffad", {"dim": 0}), ("patchad", {"window": 0}),
    ("patchad", {"d_model": 0}), ("carla", {"window": 0}), ("carla", {"mid_channels": 0}),
    ("carla", {"step_reduce": "median"}), ("knn", {"k": 0}), ("knn", {"window": 0}), ("knn", {"stride": 0}),
    ("knn", {"step_reduce": "median"}), ("iforest", {"series_aggregate": "median"}),
    ("iforest", {"n_estimators": 0}), ("pca", {"score_stride": 0}), ("zscore", {"window": 1}),
    ("zscore", {"series_aggregate": "foo"}), ("random", {"series_aggregate": "foo"}),
]

BAD_DATASETS = [
    {"n_channels": 0}, {"n_channels": "abc"}, {"n_train": 0}, {"n_val": -1}, {"n_test": 0}, {"seed": -1},
    {"min_length": 0}, {"min_length": 100, "max_length": 50}, {"level": "foo"}, {"anomaly_types": ["nope"]},
    {"test_anomaly_rate": 2}, {"level": "point", "max_length": 0}, {"level": "point", "n_anomalies": -1},
]

BAD_THRESHOLDS = [
    {"policy": "val_percentile", "q": 200}, {"policy": "contamination", "rate": 2}, {"policy": "sigma", "k": "abc"},
    {"policy": "val_percentile", "q": 99.0, "source": "test"},
]

# Subprocesses: one per group at least, each failing before any training.
BAD_RUNS = [
    ["model=lstm_vae", "model.window=0"],
    ["model=lstm_vae", "model.step_reduce=median"],
    ["model=knn", "model.k=0"],
    ["dataset.n_channels=abc"],
    ["seed=-1"],
    ["trainer.batch_size=0"],
    ["threshold=val_percentile", "threshold.q=200"],
    ["postprocess=nope"],
    ["logger=nope"],
    ["device=foo"],
    ["foo=1"],
    ["-m", "model=zscore,random", "--cfg", "job"],
]


def _model(name: str, params: dict):
    from tsad.models.base import MODELS

    return MODELS.get(name)(**params)


def _check_line(message: str, *names: str) -> None:
    assert "\n" not in message
    for name in names:
        assert name in message, (name, message)


@pytest.mark.parametrize("name, params", BAD_MODELS, ids=lambda v: v if isinstance(v, str) else
                         ",".join(f"{k}={w}" for k, w in v.items()))
def test_bad_model_settings_fail_in_post_init(name, params):
    with pytest.raises(UserError) as caught:
        _model(name, params)
    _check_line(str(caught.value), "model.")


@pytest.mark.parametrize("params", BAD_DATASETS, ids=lambda v: ",".join(f"{k}={w}" for k, w in v.items()))
def test_bad_synthetic_settings(params):
    from tsad.data.synthetic import build

    with pytest.raises(UserError) as caught:
        build(**{"n_train": 4, "n_val": 2, "n_test": 4, "min_length": 20, "max_length": 30, **params})
    _check_line(str(caught.value), "dataset.")


@pytest.mark.parametrize("config", BAD_THRESHOLDS, ids=lambda v: ",".join(f"{k}={w}" for k, w in v.items()))
def test_bad_threshold_settings(config):
    from tsad.evaluation.thresholds import validate_threshold_config

    with pytest.raises(UserError) as caught:
        validate_threshold_config(dict(config))
    _check_line(str(caught.value), "threshold.")


@pytest.mark.parametrize("seed", [-1, "abc", 1.5])
def test_bad_seed(seed):
    from tsad.runtime import seed_everything

    with pytest.raises(UserError, match="seed must be an integer >= 0"):
        seed_everything(seed)


def _assert_one_line_error(result: subprocess.CompletedProcess, program: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    assert result.stderr.strip().splitlines()[-1].startswith(f"{program}: error:"), output


@pytest.mark.parametrize("args", BAD_RUNS, ids=" ".join)
def test_tsad_run_fails_in_one_line(args, tmp_path):
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", "PYTHONWARNINGS": "ignore"}
    result = subprocess.run([TSAD_RUN, *TINY_SERIES, f"hydra.run.dir={tmp_path / 'run'}",
                             f"paths.output_dir={tmp_path}", *args],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    _assert_one_line_error(result, "tsad-run")


@pytest.mark.parametrize("args", [["--digits", "-2"], ["--format", "xls"], ["--by", "dataset"]], ids=" ".join)
def test_tsad_table_fails_in_one_line(args, tmp_path):
    result = subprocess.run([TSAD_TABLE, str(tmp_path), *args], cwd=tmp_path, capture_output=True, text=True,
                            timeout=60)
    _assert_one_line_error(result, "tsad-table")
