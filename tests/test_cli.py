"""tsad-run end to end, as a user runs it: in a subprocess, from a folder outside the source tree."""

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY_SERIES, TSAD_RUN, read_metrics, run_folders, run_tsad

import tsad.conf


def test_a_run_writes_a_complete_folder(tmp_path):
    result = run_tsad(["model=lstm_vae", *TINY_SERIES, "plots=true"], tmp_path)
    (folder,) = run_folders(tmp_path)
    lines = result.stdout.splitlines()
    assert lines[0] == f"run folder: {folder}", "the folder is named before the run starts"
    assert f"run folder: {folder}" in lines[1:] and "roc_auc=" in result.stdout
    assert folder.parent.parent.name == "runs" and folder.name.endswith("_lstm_vae_synthetic")
    for name in (".hydra/config.yaml", ".hydra/overrides.yaml", "run.log", "metrics.json", "history.csv",
                 "scores/test_series.csv", "scores/test_steps.csv.gz", "scores/val_series.csv",
                 "model/detector.json", "model/weights.pt", "model/checkpoints/best.pt", "model/checkpoints/last.pt",
                 "plots/loss.png", "plots/scores_series.png", "plots/roc_pr_series.png", "plots/examples.png",
                 "plots/reconstructions.png"):
        assert (folder / name).exists(), name
    metrics = read_metrics(folder)
    assert metrics["status"] == "OK" and metrics["level"] == "series"
    assert set(metrics["metrics"]) == {"series", "point"}
    assert metrics["threshold"]["policy"] == "val_percentile" and "series" in metrics["threshold"]["values"]
    assert metrics["n_parameters"] > 0 and metrics["timing"]["fit_seconds"] > 0
    assert metrics["environment"]["torch"] and metrics["environment"]["tsad"]
    assert "oracle_best_f1" in metrics["metrics"]["series"]


def test_deep_and_classic_detectors_beat_random_on_an_easy_set(tmp_path):
    easy = ["dataset.n_train=40", "dataset.n_val=10", "dataset.n_test=40", "dataset.min_length=60",
            "dataset.max_length=90", "dataset.magnitude=4", "dataset.anomaly_types=[level_shift,spike,variance]",
            "plots=false", "seed=1"]
    run_tsad(["-m", "model=random,iforest,lstm_vae", *easy, "trainer.max_epochs=4", "trainer.patience=4"], tmp_path)
    auc = {read_metrics(f)["model"]: read_metrics(f)["metrics"]["series"]["roc_auc"] for f in run_folders(tmp_path)}
    assert auc["iforest"] > auc["random"] + 0.2, auc
    assert auc["lstm_vae"] > auc["random"] + 0.2, auc


def test_multirun_writes_one_folder_per_job(tmp_path):
    run_tsad(["-m", "model=zscore,random", *TINY_SERIES], tmp_path)
    folders = run_folders(tmp_path)
    assert len(folders) == 2
    assert all(f.parent.parent.parent.name == "multiruns" for f in folders)
    assert {read_metrics(f)["model"] for f in folders} == {"zscore", "random"}


def test_two_runs_started_together_never_share_a_folder(tmp_path):
    args = [TSAD_RUN, "model=random", *TINY_SERIES, f"paths.output_dir={tmp_path}"]
    processes = [subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for _ in range(2)]
    assert all(p.wait(timeout=120) == 0 for p in processes)
    assert len(run_folders(tmp_path)) == 2


@pytest.mark.parametrize("override, expected", [
    ("model=nope", "unknown model 'nope'; choose one of:"),
    ("dataset=nope", "unknown dataset 'nope'"),
    ("device=tpu", "device must be one of auto, cpu, cuda"),
    ("trainer.max_epochs=abc", "trainer.max_epochs must be a positive integer"),
    ("model.hidden_size=big", "model.hidden_size must be a number"),
    ("+model.colour=red", "unknown key 'model.colour' (model lstm_vae has: beta, "),
    ("threshold.q=150", "threshold.q must be a percentile"),
    ("dataset.anomaly_types=[meteor]", "dataset.anomaly_types: unknown"),
])
def test_user_mistakes_give_one_line_errors(tmp_path, override, expected):
    result = run_tsad([override, *TINY_SERIES], tmp_path, check=False)
    assert result.returncode != 0
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_help_is_fast_and_lists_the_groups(tmp_path):
    # Speed comes from importing nothing heavy before the task runs (wall time is too noisy to test).
    imported = subprocess.run([sys.executable, "-c", "import sys, tsad.cli; print(sorted(m for m in "
                               "('torch', 'sklearn', 'matplotlib', 'pandas') if m in sys.modules))"],
                              capture_output=True, text=True, timeout=60)
    assert imported.stdout.strip() == "[]", imported.stdout + imported.stderr
    result = subprocess.run([TSAD_RUN, "--help", "model=iforest"], capture_output=True, text=True, cwd=tmp_path,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "time-series anomaly detection" in result.stdout and "--cfg job" in result.stdout
    assert "README.md" in result.stdout and "powered by Hydra" not in result.stdout
    described = {line.split()[0] for line in result.stdout.splitlines()
                 if line.startswith("  ") and not line.startswith("   ") and len(line.split()) > 1}
    conf = Path(tsad.conf.__file__).parent
    groups = {p.name for p in conf.iterdir() if p.is_dir() and p.name not in ("hydra", "__pycache__")}
    assert groups | {"hydra/launcher"} <= described, "every config group is listed with its line (cli.GROUP_HELP)"
    assert "iforest*" in result.stdout and "lstm_vae," in result.stdout, "the selected option is starred"
    assert max(len(line) for line in result.stdout.splitlines()) <= 120


def test_cfg_job_shows_the_composed_config(tmp_path):
    result = subprocess.run([TSAD_RUN, "--cfg", "job", "model=iforest", "seed=5"], capture_output=True, text=True,
                            cwd=tmp_path, timeout=60)
    assert result.returncode == 0
    assert "name: iforest" in result.stdout and "seed: 5" in result.stdout and "policy: val_percentile" in result.stdout


def test_the_door_checks_every_job_of_a_small_sweep_and_every_value_of_a_large_one(monkeypatch):
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    from tsad import validation

    composer = validation.Composer(None, "config")
    try:
        base = composer.compose(["model=knn,zscore,random", "seed=range(0,4)", "trainer.lr=0.1,0.2"], RunMode.MULTIRUN)
        every_job = validation.sweep_jobs(base)
        monkeypatch.setattr(validation, "MAX_SWEEP_JOBS", 23)
        covering = validation.sweep_jobs(base)
        optuna = validation.sweep_jobs(composer.compose(["+hparams_search=knn_optuna"], RunMode.MULTIRUN))
    finally:
        GlobalHydra.instance().clear()
    assert len({tuple(job) for job in every_job}) == 3 * 4 * 2
    assert len(covering) == 4, "as many jobs as the longest list of values"
    used = {override for job in covering for override in job}
    assert {"model=knn", "model=zscore", "model=random", "seed=0", "seed=3", "trainer.lr=0.1", "trainer.lr=0.2"} <= used
    assert optuna is None, "a sweeper that draws its jobs as it goes: the base config is checked"
