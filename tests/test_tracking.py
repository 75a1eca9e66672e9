"""Experiment tracking (logger=tensorboard|mlflow), read back with each tool's own reader; history.csv per epoch."""

import importlib.util
import json
import os
import socket
from functools import partial

import numpy as np
import pandas as pd
import pytest
from conftest import TINY_SERIES, read_metrics, run_folders, run_tsad

from tsad import cli, tracking
from tsad.csv_outputs import write_history
from tsad.data.series import SeriesSet
from tsad.errors import UserError
from tsad.models.base import build_detector
from tsad.run_folder import RunFolder
from tsad.settings.run import RunConfig
from tsad.sweeps.job import JobContext, run_job

needs_tensorboard = pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None,
                                       reason="tensorboard is not installed (pip install 'tsad[tracking]')")
needs_mlflow = pytest.mark.skipif(importlib.util.find_spec("mlflow") is None,
                                  reason="mlflow is not installed (pip install 'tsad[tracking]')")
needs_joblib = pytest.mark.skipif(importlib.util.find_spec("hydra_plugins.hydra_joblib_launcher") is None,
                                  reason="hydra-joblib-launcher is not installed (pip install 'tsad[sweeps]')")


def mlflow_store(folder):
    """The logger.tracking_uri override of a local store in `folder` (outside the run folders) and its client."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{folder}/mlflow.db"
    return f"logger.tracking_uri={uri}", MlflowClient(tracking_uri=uri)


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory):
    """One store for the tests that need no fresh one (creating a store's tables takes seconds)."""
    return mlflow_store(tmp_path_factory.mktemp("store"))


@pytest.fixture
def outputs(tmp_path):
    folder = tmp_path / "outputs"
    folder.mkdir()
    return folder


def only_run(client, experiment_name: str):
    experiment = client.get_experiment_by_name(experiment_name)
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    return runs[0]


# ---------------------------------------------------------------------------- TensorBoard

@needs_tensorboard
def test_tensorboard_event_files_hold_epochs_final_metrics_and_hparams(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    run_tsad(["logger=tensorboard", *TINY_SERIES], tmp_path)
    folder = run_folders(tmp_path)[0]
    record, history = read_metrics(folder), pd.read_csv(folder / "history.csv")
    events = EventAccumulator(str(RunFolder(folder).tensorboard))
    events.Reload()

    for column in ("train_loss", "val_loss", "lr"):
        scalars = events.Scalars(column)
        assert [s.step for s in scalars] == list(range(1, len(history) + 1))
        np.testing.assert_allclose([s.value for s in scalars], history[column], rtol=1e-6, atol=1e-7)
    assert events.Scalars("series/roc_auc")[0].value == pytest.approx(record["metrics"]["series"]["roc_auc"])
    assert events.Scalars("validation/val_loss")[0].value == pytest.approx(record["validation"]["val_loss"])
    hparams = events.PluginTagToContent("hparams")
    start = HParamsPluginData.FromString(hparams["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["model.name"].string_value == "lstm_vae"
    assert start.hparams["trainer.max_epochs"].number_value == 2


# ---------------------------------------------------------------------------- MLflow

@needs_mlflow
def test_an_mlflow_run_holds_params_epochs_final_metrics_tags_and_artifacts(tmp_path, outputs, shared_store):
    store, client = shared_store
    run_tsad(["logger=mlflow", store, *TINY_SERIES, "plots=true"], outputs)
    folder = run_folders(outputs)[0]
    record, history = read_metrics(folder), pd.read_csv(folder / "history.csv")

    run = only_run(client, tracking.SINGLE_RUNS_EXPERIMENT)
    assert run.info.run_name == folder.name and run.info.status == "FINISHED"
    assert {key: run.data.tags[key] for key in ("model", "dataset", "seed")} == {
        "model": "lstm_vae", "dataset": "synthetic", "seed": "0"}
    assert run.data.params["model.name"] == "lstm_vae" and run.data.params["trainer.max_epochs"] == "2"
    assert run.data.params["dataset.n_train"] == "40"
    for column in ("train_loss", "val_loss", "lr"):
        logged = client.get_metric_history(run.info.run_id, column)
        assert [m.step for m in logged] == list(range(1, len(history) + 1))
        np.testing.assert_allclose([m.value for m in logged], history[column])
    assert run.data.metrics["series/roc_auc"] == pytest.approx(record["metrics"]["series"]["roc_auc"])
    assert run.data.metrics["point/f1"] == pytest.approx(record["metrics"]["point"]["f1"])
    assert run.data.metrics["validation/val_loss"] == pytest.approx(record["validation"]["val_loss"])

    downloaded = client.download_artifacts(run.info.run_id, "metrics.json", str(tmp_path / "downloaded"))
    assert json.loads(open(downloaded).read()) == record
    assert {p.name for p in (folder / "plots").glob("*.png")} == {
        a.path.removeprefix("plots/") for a in client.list_artifacts(run.info.run_id, "plots")}


@needs_mlflow
@needs_joblib
def test_a_sweep_is_one_mlflow_experiment_with_one_run_per_job(tmp_path, outputs):
    store, client = mlflow_store(tmp_path / "store")  # a fresh store: the parallel jobs take turns creating it
    run_tsad(["-m", "hydra/launcher=local", "hydra.launcher.n_jobs=2", "logger=mlflow", store, "model=random,zscore",
              *TINY_SERIES], outputs)
    folders = run_folders(outputs)
    assert len(folders) == 2

    sweep = folders[0].parent
    experiment = client.get_experiment_by_name(sweep.relative_to(outputs).as_posix())
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.run_name for r in runs) == sorted(f.name for f in folders)
    assert {r.data.tags["model"] for r in runs} == {"random", "zscore"}
    assert all(r.info.status == "FINISHED" and "series/roc_auc" in r.data.metrics for r in runs)


@needs_mlflow
def test_a_failed_run_ends_its_mlflow_run_as_failed(outputs, shared_store):
    store, client = shared_store
    result = run_tsad(["logger=mlflow", store, "logger.experiment=failing", *TINY_SERIES, "threshold=val_best_f1"],
                      outputs, check=False)
    assert result.returncode != 0

    run = only_run(client, "failing")
    assert run.info.status == "FAILED" and run.data.tags["status"] == "ERROR"


# ---------------------------------------------------------------------------- history.csv and missing packages

def test_history_csv_is_written_after_every_epoch(tmp_path):
    path = tmp_path / "history.csv"
    rows_after_each_epoch = []
    detector = build_detector("lstm_vae", {"window": 8, "hidden_size": 4, "latent_size": 2},
                              trainer={"max_epochs": 3, "max_batches_per_epoch": 2, "patience": 10},
                              epoch_callbacks=(partial(write_history, path),
                                               lambda history: rows_after_each_epoch.append(len(pd.read_csv(path)))))
    rng = np.random.default_rng(0)
    detector.fit(SeriesSet([rng.normal(size=(40, 2)).astype(np.float32) for _ in range(4)]))

    assert rows_after_each_epoch == [1, 2, 3]
    final = tmp_path / "final.csv"
    write_history(final, detector.history)
    assert path.read_bytes() == final.read_bytes()


class RecordedSteps(tracking.Tracker):
    def __init__(self):
        super().__init__()
        self.logged = []

    def _log_epoch(self, metrics, step):
        self.logged.append((step, metrics["train_loss"]))


def test_epoch_steps_are_history_rows_and_go_on_over_several_detectors():
    def epochs(n, loss=1.0):
        return [{"stage": "train", "epoch": e, "train_loss": loss, "monitor": "val_loss"} for e in range(1, n + 1)]

    tracker = RecordedSteps()
    for history in (epochs(1), epochs(2), epochs(1, 2.0), epochs(2, 2.0)):  # NAB: a detector per file
        tracker.log_epoch(history)
    assert tracker.logged == [(1, 1.0), (2, 1.0), (3, 2.0), (4, 2.0)]

    resumed = RecordedSteps()
    resumed.log_epoch(epochs(5))  # a run resumed from a checkpoint after epoch 4 has its history back
    assert resumed.logged == [(5, 1.0)]


def hide_modules(monkeypatch, *names):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name.split(".")[0] in names else find_spec(name, *args))


@pytest.mark.parametrize("logger, module", [("mlflow", "mlflow"), ("tensorboard", "tensorboard")])
def test_a_missing_logger_package_fails_in_one_line_before_the_run(tmp_path, monkeypatch, logger, module):
    hide_modules(monkeypatch, module)
    with pytest.raises(UserError) as raised:
        cli.check_plugins([f"logger={logger}"])
    assert "pip install 'tsad[tracking]'" in str(raised.value) and "\n" not in str(raised.value)

    config = {"model": {"name": "zscore"}, "dataset": {"family": "synthetic"}, "logger": {"name": logger}}
    with pytest.raises(UserError, match=r"pip install 'tsad\[tracking\]'") as raised:
        run_job(config, JobContext(tmp_path))
    assert "\n" not in str(raised.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]  # no training, only the failed record


def test_an_unknown_logger_names_the_choices():
    with pytest.raises(UserError, match="logger.name='wandb' is not a logger; choose one of: none, tensorboard, mlfl"):
        tracking.check_logger({"name": "wandb"})


def test_every_logger_yaml_holds_the_keys_and_defaults_of_its_settings():
    from importlib.resources import files

    from omegaconf import OmegaConf

    yamls = sorted(p for p in (files("tsad.conf") / "logger").iterdir() if p.name.endswith(".yaml"))
    assert sorted(p.name.removesuffix(".yaml") for p in yamls) == sorted(tracking.SETTINGS)
    for path in yamls:
        name = path.name.removesuffix(".yaml")
        written = OmegaConf.to_container(OmegaConf.create(path.read_text()))
        declared = tracking.SETTINGS[name]().as_dict()
        assert written.pop("name") == name and declared.pop("name") == "none"
        assert written == declared, name


@pytest.mark.parametrize("value", [0, -1, float("nan"), 601])
def test_the_mlflow_timeout_is_a_number_of_seconds_within_its_range(value):
    with pytest.raises(UserError, match=r"^logger.timeout_s=.* is out of range: allowed a number > 0 and <= 600 "
                                        r"\(default 10.0\)$"):
        tracking.check_logger({"name": "mlflow", "timeout_s": value})


@needs_mlflow
def test_an_unreachable_tracking_server_fails_the_job_in_one_line_within_the_timeout(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed when the block ends: a connection to it is refused
    uri = f"http://127.0.0.1:{port}"
    config = {"model": {"name": "zscore"}, "dataset": {"name": "synthetic", "family": "synthetic"}, "seed": 0,
              "trainer": {}, "paths": {"output_dir": str(tmp_path)},
              "logger": {"name": "mlflow", "tracking_uri": uri, "timeout_s": 1}}
    with pytest.raises(UserError) as raised:  # MLflow's own retries would take minutes, then raise its own error
        run_job(config, JobContext(tmp_path / "run"))
    message = str(raised.value)
    assert message.startswith(f"logger.tracking_uri={uri!r} did not answer within logger.timeout_s=1 (")
    assert "logger=none" in message and "\n" not in message
    assert read_metrics(tmp_path / "run")["status"] == "ERROR"
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ, "the bound holds only while MLflow is called"


@needs_mlflow
def test_without_a_tracking_uri_the_store_is_a_database_in_the_output_folder(tmp_path):
    from mlflow.tracking import MlflowClient

    config = {"model": {"name": "zscore"}, "dataset": {"family": "synthetic", "name": "synthetic"}, "seed": 0,
              "paths": {"output_dir": str(tmp_path)}, "logger": {"name": "mlflow"}}
    tracker = tracking.open_tracker(RunConfig.parse(config), config, tmp_path / "runs" / "run")
    experiment = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").get_experiment_by_name("runs")
    assert experiment is not None
    assert tracker.client.get_run(tracker.run_id).info.experiment_id == experiment.experiment_id
