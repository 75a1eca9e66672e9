"""Bad input ends in a one-line error that names the key, the value and what is allowed: never a traceback.

Most cases call the validating code directly (model __post_init__, the synthetic dataset, the threshold
config, the seed). DOOR_CASES are whole `tsad-run` command lines, every config group among them, that must fail
at the door: exit code 2, one stderr line, and no folder created. Command lines run in this process
(conftest.run_tsad); test_cli's test_command_line_* tests check that the command ends the same way.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import TINY_SERIES, TSAD_TABLE, run_folders, run_tsad, run_tsad_table

from tsad.errors import UserError

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
    ("iforest", {"n_estimators": 0}), ("pca", {"score_stride": 0}), ("pca", {"scoring": "likelihood"}),
    ("pca", {"density_components": 0}), ("zscore", {"window": 1}),
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

# Whole command lines: one per group at least, each failing before any training.
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
    from tsad.data.registry import dataset_settings

    with pytest.raises(UserError) as caught:
        dataset_settings({"family": "synthetic", "n_train": 4, "n_val": 2, "n_test": 4, "min_length": 20,
                          "max_length": 30, **params})
    _check_line(str(caught.value), "dataset.")


@pytest.mark.parametrize("config", BAD_THRESHOLDS, ids=lambda v: ",".join(f"{k}={w}" for k, w in v.items()))
def test_bad_threshold_settings(config):
    from tsad.evaluation.thresholds import threshold_policy

    with pytest.raises(UserError) as caught:
        threshold_policy(dict(config))
    _check_line(str(caught.value), "threshold.")


@pytest.mark.parametrize("seed", [-1, "abc", 1.5, 2**64])
def test_bad_seed(seed):
    from tsad.settings.fields import check_values
    from tsad.settings.run import RunConfig

    with pytest.raises(UserError, match=f"^seed={seed}"):
        check_values(RunConfig, {"seed": seed}, "")


def _assert_one_line_error(result: subprocess.CompletedProcess, program: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    assert result.stderr.strip().splitlines()[-1].startswith(f"{program}: error:"), output


@pytest.mark.parametrize("args", BAD_RUNS, ids=" ".join)
def test_tsad_run_fails_in_one_line(args, tmp_path):
    result = run_tsad([*TINY_SERIES, f"hydra.run.dir={tmp_path / 'run'}", *args], tmp_path, check=False)
    _assert_one_line_error(result, "tsad-run")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert list(tmp_path.iterdir()) == [], "no folder is created for a config error"


@pytest.mark.parametrize("args", [["--digits", "-2"], ["--format", "xls"], ["--by", "dataset"]], ids=" ".join)
def test_tsad_table_fails_in_one_line(args, tmp_path):
    result = run_tsad_table([str(tmp_path), *args], tmp_path, check=False)
    _assert_one_line_error(result, "tsad-table")


def test_command_line_tsad_table_fails_in_one_line(tmp_path):
    result = subprocess.run([TSAD_TABLE, str(tmp_path), "--format", "xls"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60)
    _assert_one_line_error(result, "tsad-table")


# (command line, what the one stderr line must name): each fails before Hydra creates any folder.
EXAMPLE_CSV = Path(__file__).resolve().parents[1] / "examples" / "my_sensor.csv"

DOOR_CASES = [
    # model
    (["model=lstm_vae", "model.window=0"], "model.window=0 is out of range: allowed an integer >= 1"),
    (["model.window=abc"], "model.window=abc has the wrong type: expected an integer"),
    (["model.step_reduce=median"], "model.step_reduce=median is not allowed: choose one of mean, max"),
    (["model=knn", "model.k=0"], "model.k=0 is out of range: allowed an integer >= 1"),
    (["model=patchtrad", "model.n_heads=0"], "model.n_heads"),
    (["model=iforest", "model.n_estimators=0"], "model.n_estimators"),
    (["model=zscore", "model.window=1"], "model.window=1 is out of range: allowed an integer >= 2"),
    (["model=carla", "model.mid_channels=0"], "model.mid_channels"),
    (["model.hidden_size=big"], "model.hidden_size=big has the wrong type: expected an integer"),
    (["model=nope"], "unknown model 'nope'"),
    # dataset
    (["dataset.n_channels=0"], "dataset.n_channels=0 is out of range: allowed an integer >= 1"),
    (["dataset.n_train=0"], "dataset.n_train=0 is out of range: allowed an integer >= 1"),
    (["dataset.min_length=100", "dataset.max_length=50"], "dataset.min_length (100)"),
    (["dataset.level=foo"], "dataset.level=foo is not allowed: choose one of series, point"),
    (["dataset.anomaly_types=[meteor]"], "dataset.anomaly_types: unknown"),
    (["dataset.labelled_val=-1"], "dataset.labelled_val=-1 is out of range"),
    (["dataset=quasi_periodic", "dataset.warp=1.5"], "dataset.warp=1.5 is out of range: allowed a number >= 0 and < 1"),
    (["dataset=quasi_periodic", "dataset.period=abc"], "dataset.period=abc has the wrong type: expected a number"),
    (["dataset=quasi_periodic", "dataset.cycle_jitter=abc"], "dataset.cycle_jitter=abc has the wrong type"),
    (["dataset.test_anomaly_rate=abc"], "dataset.test_anomaly_rate=abc has the wrong type: expected a number"),
    (["dataset=quasi_periodic", "dataset.min_length=10"], "dataset.min_length (10) must be at least 3 cycles"),
    (["dataset.normalise=zscore"], "dataset.normalise=zscore is not allowed: choose one of standard, minmax, none"),
    (["dataset=csv"], "dataset=csv needs a file or folder"),
    (["dataset=ecg5000", "dataset.val_fraction=1"], "dataset.val_fraction=1 is out of range"),
    (["dataset=twoleadecg", "dataset.anomaly_ratio=-1"], "dataset.anomaly_ratio=-1 is out of range"),
    (["dataset=csv", "dataset.separator=;"], "goes in double quotes inside shell quotes: 'dataset.separator=\";\"'"),
    (["dataset=csv", "dataset.path=/no/such/file.csv"], "dataset.path=/no/such/file.csv does not exist"),
    (["dataset=csv", f"dataset.path={EXAMPLE_CSV}", "dataset.nan_policy=fill"],
     "dataset.nan_policy=fill is not allowed"),
    (["dataset=csv", f"dataset.path={EXAMPLE_CSV}", "dataset.split=[0.5,0.5]"], "dataset.split=[0.5, 0.5] needs 3"),
    (["dataset.family=nope"], "unknown dataset.family 'nope'"),
    (["dataset=nab", "model=zscore", "dataset.retrain_every=0"], "dataset.retrain_every=0 is out of range"),
    (["dataset=nab", "model=zscore", "dataset.level=series"], "dataset.level=series is not allowed"),
    (["dataset=nab", "model=seq2gmm"], "model seq2gmm reads whole series at once"),
    # trainer
    (["trainer.batch_size=0"], "trainer.batch_size=0 is out of range: allowed an integer >= 1"),
    (["trainer.lr=-1"], "trainer.lr=-1 is out of range: allowed a number >= 0"),
    (["trainer.schedule=step"], "trainer.schedule=step is not allowed: choose one of cosine, constant"),
    (["trainer.precision=8"], "trainer.precision=8 is not allowed: choose one of auto, 32, bf16, 16"),
    (["trainer.max_epochs=abc"], "trainer.max_epochs=abc has the wrong type: expected an integer or null"),
    # threshold
    (["threshold=val_percentile", "threshold.q=200"], "threshold.q=200 is out of range"),
    (["threshold=contamination", "threshold.rate=2"], "threshold.rate=2 is out of range: allowed a number > 0 and < 1"),
    (["threshold=sigma", "threshold.k=abc"], "threshold.k=abc has the wrong type: expected a number"),
    (["threshold.source=test"], "threshold.source=test is not allowed: choose one of val, train"),
    (["threshold=fixed"], "threshold=fixed needs threshold.value=<number>"),
    # postprocess
    (["postprocess=nope"], "unknown postprocess 'nope'"),
    (["postprocess=likelihood", "postprocess.average_window=0"], "postprocess.average_window=0 is out of range"),
    (["dataset=nab", "model=zscore", "postprocess=likelihood"], "threshold=val_percentile has nothing to learn"),
    (["postprocess=likelihood_spatial"], "transforms step scores in time order, so it needs point-level data"),
    # logger
    (["logger=nope"], "unknown logger 'nope'"),
    (["logger.name=nope"], "logger.name='nope' is not a logger"),
    # tta
    (["tta.n=abc"], "tta.n=abc has the wrong type: expected an integer"),
    (["tta.jitter=[1,2]"], "tta.jitter=[1, 2] has the wrong type: expected a number"),
    # top level
    (["seed=-1"], "seed=-1 is out of range: allowed an integer >= 0"),
    (["seed=abc"], "seed=abc has the wrong type: expected an integer"),
    (["device=foo"], "device=foo is not a device: choose auto, cpu, cuda or cuda:N"),
    (["foo=1"], "unknown key 'foo'"),
    (["objective=test.roc_auc"], "objective must name a validation metric"),
    (["objective=validation.labelled_val.series.pr_auc"], "needs a labelled validation split"),
    (["-cn", "nope"], "Cannot find primary config 'nope'"),
    # unknown nested keys: the nearest valid name
    (["model.windw=32"], "unknown key 'model.windw'; did you mean model.window? (model lstm_vae has: "),
    (["trainer.max_epoch=3"], "unknown key 'trainer.max_epoch'; did you mean trainer.max_epochs? (trainer default"),
    (["dataset.n_chanels=2"], "unknown key 'dataset.n_chanels'; did you mean dataset.n_channels? (dataset synthetic"),
    (["threshold.qq=1"], "unknown key 'threshold.qq'; did you mean threshold.q? (threshold val_percentile has: "),
    (["tta.nn=2"], "unknown key 'tta.nn'; did you mean tta.n? (tta has: "),
    (["paths.output_dr=x"], "unknown key 'paths.output_dr'; did you mean paths.output_dir?"),
    (["+model.windw=32"], "unknown key 'model.windw'; did you mean model.window? (model lstm_vae has: "),
    (["model=knn", "+model.colour=red"],
     "unknown key 'model.colour' (model knn has: block, k, max_train_windows, memory, score_stride, "),
    (["+trainer.epochs=3"], "unknown key 'trainer.epochs'; did you mean trainer.max_epochs?"),
    (["+threshold.rate=0.1"], "unknown key 'threshold.rate' (threshold val_percentile has: q, source)"),
    # sweeps: one job's value is bad
    (["-m", "model=knn,zscore", "model.window=1"],
     "model.window=1 is out of range: allowed an integer >= 2 (default 50) [sweep job: model=zscore]"),
    (["-m", "model=zscore", "seed=0,-1"], "seed=-1 is out of range: allowed an integer >= 0"),
    (["-m", "model=zscore", "dataset.n_train=3,0"], "[sweep job: dataset.n_train=0]"),
    (["-m", "model=knn", "model.k=range(-1,2)"], "model.k=-1 is out of range: allowed an integer >= 1"),
    (["-m", "model=zscore", "threshold=val_percentile,sigma", "threshold.q=99"],
     "unknown key 'threshold.q' (threshold sigma has: k, policy, source) [sweep job: threshold=sigma]"),
    (["-m", "model=zscore,knn", "dataset.min_length=${model.window}", "dataset.max_length=20"],
     "dataset.min_length (50) must be at most dataset.max_length (20) [sweep job: model=zscore]"),
    (["-m", "model=zscore", "seed=0,-1", "hydra.sweep.subdir=job${hydra.job.num}"],
     "(default 0) [sweep job: seed=-1]"),
    (["experiment=smoke", "model.window=0"],
     "model.window=0 is out of range: allowed an integer >= 1 (default 64) [sweep job: model=carla]"),
    (["+hparams_search=knn_optuna", "dataset.labelled_val=0.3", "model.k=0"], "model.k=0 is out of range"),
    (["-m", "model=zscore,random", "--cfg", "job"], "--cfg and --multirun cannot be combined"),
    (["model=zscore,random"], "model=zscore,random sweeps over values: add -m (--multirun)"),
]

@pytest.fixture(scope="module")
def door_results(tmp_path_factory):
    """Each DOOR_CASES line run through tsad-run, with its folders pointed at a case folder of its own."""
    root = tmp_path_factory.mktemp("door")
    config_dir = root / "conf"
    (config_dir / "model").mkdir(parents=True)
    (config_dir / "model" / "tight_zscore.yaml").write_text("defaults:\n  - zscore\n  - _self_\nwindow: 0\n")
    cases = [*DOOR_CASES, (["--config-dir", str(config_dir), "model=tight_zscore"],
                           "model.window=0 is out of range: allowed an integer >= 2")]
    return {" ".join(args): (run_tsad([*args, f"hydra.run.dir={root / str(n) / 'run'}"], root / str(n), cwd=root,
                                      check=False), root / str(n), expected)
            for n, (args, expected) in enumerate(cases)}


def test_door_cases_cover_every_group():
    assert len(DOOR_CASES) >= 40
    named = " ".join(" ".join(args) for args, _ in DOOR_CASES)
    for group in ("model", "dataset", "trainer", "threshold", "postprocess", "logger", "tta", "seed", "device",
                  "-m", "experiment=", "hparams_search", "+model."):
        assert group in named, group


@pytest.mark.parametrize("key", [" ".join(args) for args, _ in DOOR_CASES] + ["--config-dir"])
def test_tsad_run_refuses_bad_input_at_the_door(door_results, key):
    key = next(k for k in door_results if k == key or k.startswith(key + " "))
    result, case_dir, expected = door_results[key]
    lines = result.stderr.splitlines()
    assert result.returncode == 2, result
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("tsad-run: error: ") and expected in lines[0], lines[0]
    assert not case_dir.exists(), f"{key} created {sorted(case_dir.rglob('*'))}"


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_finished_run_is_refused_before_its_folder_is_touched(tmp_path):
    folder = tmp_path / "done"
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "config.yaml").write_text("model:\n  name: zscore\n")
    (folder / "metrics.json").write_text(json.dumps({"status": "OK", "model": "zscore"}))
    before = _tree(folder)
    result = run_tsad(["model=random", *TINY_SERIES, f"hydra.run.dir={folder}"], tmp_path, check=False)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert f"{folder} holds a finished run (status OK); choose another hydra.run.dir" in result.stderr
    assert _tree(folder) == before and sorted(tmp_path.iterdir()) == [folder]
    # the same when a config names the folder rather than the command line
    preset = tmp_path / "conf" / "experiment" / "fixed_folder.yaml"
    preset.parent.mkdir(parents=True)
    preset.write_text(f"# @package _global_\nhydra:\n  run:\n    dir: {folder}\n")
    result = run_tsad(["--config-dir", str(tmp_path / "conf"), "experiment=fixed_folder", "model=random",
                       *TINY_SERIES], tmp_path, check=False)
    assert result.returncode == 2 and f"{folder} holds a finished run" in result.stderr, result.stderr
    assert _tree(folder) == before


def test_a_named_sweep_with_finished_runs_is_refused_before_any_folder_is_touched(tmp_path):
    sweep = tmp_path / "sweep"
    run_tsad(["-m", "model=random", *TINY_SERIES, f"hydra.sweep.dir={sweep}"], tmp_path)
    before = _tree(sweep)
    result = run_tsad(["-m", "model=random", *TINY_SERIES, f"hydra.sweep.dir={sweep}"], tmp_path, check=False)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "holds a finished run (status OK); add resume=true to keep it" in result.stderr
    assert _tree(sweep) == before, "multirun.yaml and the job's .hydra/ stay as they were"


def test_a_config_error_found_with_the_data_removes_the_folder_the_run_made(tmp_path):
    # val_best_f1 needs a labelled validation split; whether the dataset has one is known once it is built
    result = run_tsad(["model=random", *TINY_SERIES, "threshold=val_best_f1"], tmp_path, check=False)
    assert result.returncode == 2 and "threshold=val_best_f1 needs a labelled validation split" in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == [], "the run folder and the folders made for it are gone"


def test_a_config_error_found_with_the_data_keeps_a_folder_that_held_something(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "metrics.json").write_text(json.dumps({"status": "ERROR", "error": "an earlier attempt"}))
    result = run_tsad(["model=random", *TINY_SERIES, "threshold=val_best_f1", f"hydra.run.dir={folder}"], tmp_path,
                      check=False)
    assert result.returncode == 2 and "dataset.labelled_val" in result.stderr
    assert run_folders(tmp_path) == [folder], "the folder stays, and its record says how the run ended"
    assert "labelled validation split" in json.loads((folder / "metrics.json").read_text())["error"]
