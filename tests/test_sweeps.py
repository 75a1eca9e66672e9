"""Sweeps at scale: parallel launchers, failure isolation, resume, Optuna and the presets."""

import importlib.util
import json
import os
import signal
import subprocess
import time

import pytest
from conftest import TINY_SERIES, TSAD_RUN, read_metrics, run_folders, run_tsad

from tsad import cli, run_folder
from tsad.config import run_settings
from tsad.errors import UserError
from tsad.json_files import write_json_atomic as write_json
from tsad.run_folder import RunFolder
from tsad.sweeps import job
from tsad.sweeps.job import objective_value
from tsad.sweeps.summary import JOURNAL_DIR, summarise


def has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


needs_joblib = pytest.mark.skipif(not has_module("hydra_plugins.hydra_joblib_launcher"),
                                  reason="hydra-joblib-launcher is not installed (pip install 'tsad[sweeps]')")
needs_submitit = pytest.mark.skipif(not has_module("hydra_plugins.hydra_submitit_launcher"),
                                    reason="hydra-submitit-launcher is not installed (pip install 'tsad[sweeps]')")
needs_optuna = pytest.mark.skipif(not (has_module("optuna") and has_module("hydra_plugins.hydra_optuna_sweeper")),
                                  reason="optuna and its Hydra sweeper are not installed (pip install 'tsad[optuna]')")


def job_pids(folders):
    return {RunFolder(f).read_job()["pid"] for f in folders}


# ---------------------------------------------------------------------------- launchers

@needs_joblib
def test_local_launcher_runs_four_jobs_in_parallel_workers(tmp_path):
    result = run_tsad(["-m", "hydra/launcher=local", "hydra.launcher.n_jobs=2", "model=random,zscore", "seed=0,1",
                       *TINY_SERIES], tmp_path)
    folders = run_folders(tmp_path)
    assert len(folders) == 4
    assert all(read_metrics(f)["status"] == "OK" for f in folders)
    assert {(read_metrics(f)["model"], read_metrics(f)["seed"]) for f in folders} == {
        ("random", 0), ("random", 1), ("zscore", 0), ("zscore", 1)}
    assert len(job_pids(folders)) == 2  # two loky workers shared the four jobs
    assert "sweep summary: 4 OK, 0 failed" in result.stdout


@pytest.mark.slow
@needs_submitit
def test_submitit_local_sweep(tmp_path):
    result = run_tsad(["-m", "hydra/launcher=slurm_local", "model=random,zscore", *TINY_SERIES], tmp_path)
    folders = run_folders(tmp_path)
    assert len(folders) == 2 and all(read_metrics(f)["status"] == "OK" for f in folders)
    assert len(job_pids(folders)) == 2  # one process per job
    assert list(tmp_path.rglob(".submitit/*/*_log.out"))
    assert "sweep summary: 2 OK, 0 failed" in result.stdout


# ---------------------------------------------------------------------------- failures and resume

def test_a_failing_job_is_recorded_and_the_sweep_goes_on(tmp_path):
    # val_best_f1 needs a labelled validation split, which only the built data can show: that job fails after start-up
    result = run_tsad(["-m", "model=random", "threshold=val_percentile,val_best_f1", *TINY_SERIES], tmp_path,
                      check=False)
    assert result.returncode == 1
    by_policy = {read_metrics(f).get("threshold", {}).get("policy", "failed"): (f, read_metrics(f))
                 for f in run_folders(tmp_path)}
    assert by_policy["val_percentile"][1]["status"] == "OK"
    failed_folder, failed = by_policy["failed"]
    assert failed["status"] == "ERROR" and "threshold=val_best_f1 needs a labelled validation split" in failed["error"]
    assert "sweep summary: 1 OK, 1 failed (1 ERROR)" in result.stdout
    assert f"ERROR       {failed_folder}  UserError: threshold=val_best_f1 needs" in result.stdout


def test_resume_skips_finished_jobs_and_reruns_the_others(tmp_path):
    sweep_dir = f"hydra.sweep.dir={tmp_path / 'sweep'}"
    run_tsad(["-m", "model=random,zscore", *TINY_SERIES, sweep_dir], tmp_path)
    folders = {read_metrics(f)["model"]: f for f in run_folders(tmp_path)}
    for model, folder in folders.items():  # the job's values, then the hash resume looks for
        assert folder.name == (f"{model}_synthetic_seed0_max_length-80_min_length-40_n_test-30_n_train-40_n_val-10_"
                               f"trainer-fast_{read_metrics(folder)['config_hash'][:8]}")
    finished = (folders["random"] / "metrics.json").stat().st_mtime_ns
    interrupted = read_metrics(folders["zscore"])
    (folders["zscore"] / "metrics.json").write_text(json.dumps({**interrupted, "status": "INTERRUPTED"}))

    # One more seed (the job list changed), and the same values spelled in another order.
    result = run_tsad(["-m", "resume=true", "seed=0,1", *reversed(TINY_SERIES), "model=random,zscore", sweep_dir],
                      tmp_path)
    assert (folders["random"] / "metrics.json").stat().st_mtime_ns == finished
    assert read_metrics(folders["zscore"])["status"] == "OK"
    assert f"resume: {folders['random']} already holds a finished run" in result.stdout
    assert len(run_folders(tmp_path)) == 4
    assert "sweep summary: 4 OK (1 finished earlier, skipped), 0 failed" in result.stdout


def test_resume_finds_an_earlier_run_by_the_hash_that_ends_its_folder_name(tmp_path):
    digest = "0123abcd" + "f" * 8
    named = ["random_synthetic_seed0_0123abcd",  # before folders named the values
             "random_synthetic_seed0_n_test-30_0123abcd", "random_synthetic_seed0_n_test-40_99999999"]
    for name in named:
        (tmp_path / name).mkdir()
    run_dir = tmp_path / "random_synthetic_seed0_n_test-30_trainer-fast_0123abcd"
    folders = job.job_folders(run_dir, tmp_path, digest)
    assert [folder.root for folder in folders] == [run_dir, tmp_path / named[0], tmp_path / named[1]]


def test_the_summary_counts_every_outcome(tmp_path):
    journal = tmp_path / JOURNAL_DIR
    journal.mkdir()
    entries = [{"status": "OK", "folder": "a", "skipped": True}, {"status": "OK", "folder": "b", "skipped": False},
               {"status": "NAN", "folder": "c",
                "error": "NaNLossError: non-finite training loss in train epoch 3: nan"},
               {"status": "OOM", "folder": "d", "error": "OutOfMemoryError: CUDA out of memory"},
               {"status": "RUNNING", "folder": "e"}]
    for num, entry in enumerate(entries):
        (journal / f"{num}.json").write_text(json.dumps(entry))
    lines, failed = summarise(tmp_path)
    assert failed == 3
    assert lines[0] == (f"sweep summary: 2 OK (1 finished earlier, skipped), 3 failed (1 NAN, 1 NO RESULT, 1 OOM) "
                        f"in {tmp_path}")
    assert lines[1] == "  NAN         c  NaNLossError: non-finite training loss in train epoch 3: nan"
    assert lines[3] == "  NO RESULT   e  the job stopped before recording an outcome"
    assert f"resume=true hydra.sweep.dir={tmp_path}" in lines[-1]


@pytest.mark.slow
def test_an_interrupted_single_run_resumes_from_its_last_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    args = ["model=lstm_vae", *TINY_SERIES, f"hydra.run.dir={run_dir}"]
    run_tsad(args, tmp_path)
    record = read_metrics(run_dir)
    (run_dir / "metrics.json").write_text(json.dumps({**record, "status": "INTERRUPTED"}))
    result = run_tsad([*args, "resume=true"], tmp_path)
    resumed = read_metrics(run_dir)
    assert resumed["status"] == "OK" and resumed["resumed_from_checkpoint"] == str(RunFolder(run_dir).last_checkpoint)
    assert "resumed from" in (run_dir / "run.log").read_text()
    assert f"run folder: {run_dir}" in result.stdout


@pytest.mark.slow
def test_ctrl_c_stops_a_sweep_without_leaving_a_finished_looking_run(tmp_path):
    args = [TSAD_RUN, "-m", "model=lstm_vae", "seed=0,1", *TINY_SERIES, "trainer.max_epochs=200",
            "trainer.max_batches_per_epoch=null", "trainer.patience=200", f"paths.output_dir={tmp_path}"]
    process = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and not list(tmp_path.rglob("checkpoints/last.pt")):
        time.sleep(0.5)
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C does: the whole process group gets SIGINT
    stdout, _ = process.communicate(timeout=120)
    assert process.returncode == 130
    (folder,) = run_folders(tmp_path)
    assert read_metrics(folder)["status"] == "INTERRUPTED"
    assert "sweep summary: 0 OK, 1 failed (1 INTERRUPTED)" in stdout


# ---------------------------------------------------------------------------- one job's record

RESULT = {"level": "series", "metrics": {"series": {"roc_auc": 0.5}}, "validation": {"val_loss": 0.25},
          "headline": {"roc_auc": 0.5}, "threshold": {"policy": "val_percentile", "values": {"series": 1.0}},
          "timing": {"fit_seconds": 1.0, "score_seconds": 2.0}, "n_parameters": 3, "device": "cpu",
          "data": {"n_train": 1}, "epochs_trained": 2}


def run_stub_job(tmp_path, monkeypatch, outcome, **config_extra):
    """run_job around a stand-in for tsad.experiment.run: (the raised error or None, metrics.json, journal entry)."""
    import tsad.experiment

    def run(config, run_dir, epoch_callbacks=()):
        if isinstance(outcome, BaseException):
            raise outcome
        return dict(outcome)

    monkeypatch.setattr(tsad.experiment, "run", run)
    written = []

    def write_and_count(path, payload):
        written.append(path)
        write_json(path, payload)

    monkeypatch.setattr(run_folder, "write_json_atomic", write_and_count)
    config = {"model": {"name": "zscore"}, "dataset": {"name": "synthetic", "family": "synthetic"}, "seed": 0,
              "tags": ["t"], "trainer": {"resume_from": None}, **config_extra}
    context = job.JobContext(tmp_path / "sweep" / "job", sweep_dir=tmp_path / "sweep", job_num=4)
    context.run_dir.mkdir(parents=True)
    raised = None
    try:
        job.run_job(config, context)
    except BaseException as error:
        raised = error
    assert written.count(RunFolder(context.run_dir).metrics) == 1
    return raised, read_metrics(context.run_dir), json.loads((tmp_path / "sweep" / JOURNAL_DIR / "4.json").read_text())


def test_a_job_writes_the_whole_record_once(tmp_path, monkeypatch):
    raised, record, entry = run_stub_job(tmp_path, monkeypatch, RESULT)
    assert raised is None and entry == {"status": "OK", "folder": record["run_dir"], "skipped": False}
    assert set(record) == {"status", "model", "dataset", "seed", "tags", "run_dir", *RESULT, "environment", "job_num",
                           "config_hash"}
    assert (record["status"], record["model"], record["tags"], record["job_num"]) == ("OK", "zscore", ["t"], 4)
    assert set(record["timing"]) == {"fit_seconds", "score_seconds", "total_seconds"}


@pytest.mark.parametrize("error, status, traceback", [(ValueError("boom"), "ERROR", True),
                                                      (UserError("bad seed"), "ERROR", False),
                                                      (KeyboardInterrupt(), "INTERRUPTED", True)])
def test_a_failed_run_is_recorded_with_its_error(tmp_path, monkeypatch, error, status, traceback):
    raised, record, entry = run_stub_job(tmp_path, monkeypatch, error)
    assert raised is error
    assert (record["status"], record["error"], "traceback" in record) == (status, f"{type(error).__name__}: {error}",
                                                                         traceback)
    assert set(record["timing"]) == {"total_seconds"} and "environment" in record and record["job_num"] == 4
    assert entry == {"status": status, "folder": record["run_dir"], "error": record["error"]}


def test_an_objective_the_record_lacks_fails_the_job(tmp_path, monkeypatch):
    raised, record, entry = run_stub_job(tmp_path, monkeypatch, RESULT, objective="validation.roc_auc")
    assert isinstance(raised, UserError)
    assert record["status"] == entry["status"] == "ERROR" and "is not a number" in record["error"]
    assert record["metrics"] == RESULT["metrics"] and "traceback" not in record


# ---------------------------------------------------------------------------- Optuna

@needs_optuna
def test_optuna_search_optimises_a_validation_metric(tmp_path):
    result = run_tsad(["+hparams_search=iforest_optuna", "hydra.sweeper.n_trials=3", "dataset.labelled_val=20",
                       "model.n_estimators=50", *TINY_SERIES], tmp_path)
    records = [read_metrics(f) for f in run_folders(tmp_path)]
    assert len(records) == 3 and all(r["status"] == "OK" and r["model"] == "iforest" for r in records)
    (results,) = tmp_path.rglob("optimization_results.yaml")
    best = float(results.read_text().split("best_value:")[1])
    validation = [r["validation"]["labelled_val"]["series"]["pr_auc"] for r in records]
    assert best == pytest.approx(max(validation))  # what the search optimised: validation, not test
    assert "sweep summary: 3 OK, 0 failed" in result.stdout


def test_objectives_must_be_validation_metrics():
    with pytest.raises(UserError, match="leak test labels"):
        run_settings(["objective=metrics.series.roc_auc"])
    record = {"validation": {"val_loss": 0.5, "labelled_val": {"series": {"pr_auc": None}}}}
    assert objective_value(record, "validation.val_loss") == 0.5
    with pytest.raises(UserError, match="it has: validation.labelled_val.series.pr_auc, validation.val_loss"):
        objective_value(record, "validation.labelled_val.series.pr_auc")
    with pytest.raises(UserError, match="dataset.labelled_val"):
        run_settings(["objective=validation.labelled_val.series.pr_auc", "dataset.labelled_val=0"])
    assert run_settings(["objective=validation.labelled_val.series.pr_auc", "dataset.labelled_val=0.3"]).objective


def test_a_missing_extra_is_named_in_one_line(monkeypatch):
    monkeypatch.setattr(cli.util, "find_spec", lambda name: None)
    with pytest.raises(UserError) as error:
        cli.check_plugins(["+hparams_search=iforest_optuna"])
    assert str(error.value) == ("+hparams_search=iforest_optuna needs the 'optuna' extra, which is not installed: "
                                "pip install 'tsad[optuna]'")
    with pytest.raises(UserError, match=r"pip install 'tsad\[sweeps\]'"):
        cli.check_plugins(["hydra/launcher=slurm"])
    with pytest.raises(UserError, match=r"pip install 'tsad\[ray\]'"):
        cli.check_plugins(["hydra/launcher=ray"])
    cli.check_plugins(["model=iforest", "seed=1"])


# ---------------------------------------------------------------------------- presets

def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    with initialize_config_module("tsad.conf", version_base="1.3"):
        return hydra_compose("config", overrides=overrides, return_hydra_config=True)


def job_folder_name(overrides: list[str]) -> str:
    """The folder a sweep job with these overrides gets, checked to end with its config hash."""
    from omegaconf import OmegaConf, open_dict

    from tsad.config_hash import config_hash

    cfg = compose(overrides)
    name = cfg.hydra.sweep.subdir
    with open_dict(cfg):
        del cfg["hydra"]
    assert name.endswith(f"_{config_hash(OmegaConf.to_container(cfg, resolve=True))[:8]}")
    return name


def test_job_folders_name_the_values_the_job_sets_and_end_with_its_hash():
    name = job_folder_name(["seed=1", "model.hidden_size=16", "trainer=fast", "dataset.anomaly_types=[spike,drift]",
                            "plots=false", "resume=true", "paths.output_dir=/tmp/x", "tags=[a]", "device=cpu"])
    assert name.startswith("lstm_vae_synthetic_seed1_anomaly_types-spike+drift_hidden_size-16_trainer-fast_")
    assert job_folder_name(["model=iforest"]).startswith("iforest_synthetic_seed0_") and len(
        job_folder_name(["model=iforest"])) == len("iforest_synthetic_seed0_") + 8
    # However the command line spells a value, and in whatever order, the folder is the same.
    assert job_folder_name(["trainer.lr=1e-4", "model.window=64"]) == job_folder_name(
        ["model.window=64", "trainer.lr=0.0001"])
    # A key is its last part unless another key shares it.
    assert "_dataset.window-32_model.window-64_" in job_folder_name(["model.window=64", "+dataset.window=32"])


def test_job_folder_names_are_safe_and_bounded():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    name = job_folder_name(["+dataset.root='/data/my files'", "model.beta=-0.5"])
    assert name.startswith("lstm_vae_synthetic_seed0_root-data-my-files_beta--0.5_")
    # Unquoted in a shell and in a Hydra override (`hydra.sweep.dir=...`, `run=...`): no `=`, `,`, `/` or spaces.
    assert set(name) <= set("abcdefghijklmnopqrstuvwxyz0123456789._+-")
    (override,) = OverridesParser.create().parse_overrides([f"run=/sweep/{name}"])
    assert override.value() == f"/sweep/{name}"
    long_values = job_folder_name([f"+dataset.extra_{i}={'x' * 40}" for i in range(12)])
    assert f"_extra_0-{'x' * job.FOLDER_VALUE_CHARS}_extra_1-" in long_values  # cut: the hash keeps it unique
    values = long_values.removeprefix("lstm_vae_synthetic_seed0_")[:-9]
    assert len(values) <= job.FOLDER_VALUES_CHARS and not values.endswith(("_", "-"))


@pytest.mark.parametrize("preset", ["benchmark", "smoke"])
def test_the_benchmark_presets_sweep_every_model(preset):
    cfg = compose([f"experiment={preset}"])
    assert cfg.hydra.mode.name == "MULTIRUN"
    params = cfg.hydra.sweeper.params
    assert set(params.model.split(",")) == set(cli.group_options("model"))
    if preset == "benchmark":
        assert str(params.seed) == "0,1,2,3,4"
        assert set(params.dataset.split(",")) <= set(cli.group_options("dataset"))
        assert "synthetic" in params.dataset.split(",")


def test_the_point_benchmark_leaves_out_only_the_whole_series_models():
    params = compose(["experiment=benchmark_points"]).hydra.sweeper.params
    assert set(cli.group_options("model")) - set(params.model.split(",")) == {"dagmm", "seq2gmm", "series_nn"}
    assert {"synthetic_points", "nab"} == set(params.dataset.split(","))


@needs_optuna
@pytest.mark.parametrize("preset", ["iforest_optuna", "knn_optuna", "lstm_vae_optuna"])
def test_optuna_presets_pick_their_model_and_a_validation_objective(preset):
    cfg = compose([f"+hparams_search={preset}"])
    assert cfg.model.name == preset.removesuffix("_optuna")
    assert cfg.objective.startswith("validation.")
    assert cfg.hydra.sweeper.direction in ("minimize", "maximize")
    for key in cfg.hydra.sweeper.params:
        assert key.split(".")[0] in ("model", "trainer") and key.split(".")[-1] in {**cfg.model, **cfg.trainer}
