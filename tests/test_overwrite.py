"""No run is overwritten unless asked (overwrite=true); SIGTERM ends a run as INTERRUPTED, resumable, and a run killed
mid-training and resumed ends exactly as an uninterrupted one."""

import csv
import os
import signal
import subprocess
import time

import pytest
from conftest import TINY_SERIES, TSAD_RUN, read_metrics, run_folders, run_tsad

from tsad.sweeps import job
from tsad.sweeps.job import LAST_CHECKPOINT

FAST = ["model=random", *TINY_SERIES]


def test_a_single_run_refuses_a_folder_that_holds_a_finished_run(tmp_path):
    run_dir = tmp_path / "run"
    run_tsad([*FAST, f"hydra.run.dir={run_dir}"], tmp_path)
    earlier = (run_dir / "metrics.json").read_bytes()

    result = run_tsad([*FAST, "seed=1", f"hydra.run.dir={run_dir}"], tmp_path, check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"tsad-run: error: {run_dir} holds a finished run (status OK); choose another hydra.run.dir, "
        "or add overwrite=true to replace it")
    assert (run_dir / "metrics.json").read_bytes() == earlier

    run_tsad([*FAST, "seed=1", "overwrite=true", f"hydra.run.dir={run_dir}"], tmp_path)
    assert read_metrics(run_dir)["seed"] == 1


def test_a_sweep_rerun_without_resume_fails_each_finished_job_and_says_what_to_do(tmp_path):
    sweep = ["-m", *FAST, "seed=0,1", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    run_tsad(sweep, tmp_path)
    earlier = {folder: (folder / "metrics.json").read_bytes() for folder in run_folders(tmp_path)}

    result = run_tsad(sweep, tmp_path, check=False)
    assert result.returncode == 1
    assert "sweep summary: 0 OK, 2 failed (2 ERROR)" in result.stdout
    for folder, record in earlier.items():
        assert (folder / "metrics.json").read_bytes() == record
        assert (f"UserError: {folder} holds a finished run (status OK); add resume=true to keep it, choose another "
                "hydra.sweep.dir, or add overwrite=true to replace it") in result.stdout

    assert "sweep summary: 2 OK (2 finished earlier, skipped)" in run_tsad([*sweep, "resume=true"], tmp_path).stdout


def test_sigterm_during_a_job_records_it_as_interrupted_and_the_handler_is_restored_after(tmp_path, monkeypatch):
    import tsad.experiment

    def run(config, run_dir, epoch_callbacks=()):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the signal arrives first
        raise AssertionError("SIGTERM did not interrupt the run")

    monkeypatch.setattr(tsad.experiment, "run", run)
    previous = signal.getsignal(signal.SIGTERM)
    config = {"model": {"name": "zscore"}, "dataset": {"name": "synthetic"}, "seed": 0, "trainer": {}}
    with pytest.raises(KeyboardInterrupt):
        job.run_job(config, job.JobContext(tmp_path))
    assert read_metrics(tmp_path)["status"] == "INTERRUPTED"
    assert signal.getsignal(signal.SIGTERM) is previous


def start_and_wait_for_a_checkpoint(run_dir, args: list[str], epochs: int = 1) -> subprocess.Popen:
    """Start tsad-run in `run_dir`; return once its last checkpoint holds `epochs` epochs (history.csv is written
    just after)."""
    process = subprocess.Popen([TSAD_RUN, *args, f"hydra.run.dir={run_dir}"], cwd=run_dir.parent,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    history = run_dir / "history.csv"
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        if history.exists() and len(history.read_text().splitlines()) > epochs:
            return process
        time.sleep(0.2)
    process.kill()
    raise AssertionError(f"no checkpoint of {epochs} epochs within the deadline: {process.communicate()}")


LONG_TRAINING = ["model=lstm_vae", *TINY_SERIES, "trainer.max_epochs=12", "trainer.patience=20",
                 "trainer.max_batches_per_epoch=3"]


@pytest.mark.slow
def test_sigterm_ends_a_run_as_interrupted_and_it_resumes(tmp_path):
    run_dir = tmp_path / "run"
    args = [*LONG_TRAINING, f"hydra.run.dir={run_dir}"]
    process = start_and_wait_for_a_checkpoint(run_dir, LONG_TRAINING)
    process.send_signal(signal.SIGTERM)  # how SLURM ends a job at its time limit
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    record = read_metrics(run_dir)
    assert record["status"] == "INTERRUPTED" and record["error"] == "KeyboardInterrupt: ended by SIGTERM"
    assert (run_dir / LAST_CHECKPOINT).exists()

    run_tsad([*args, "resume=true"], tmp_path)
    assert read_metrics(run_dir)["status"] == "OK"
    assert read_metrics(run_dir)["resumed_from_checkpoint"] == str(run_dir / LAST_CHECKPOINT)


@pytest.mark.slow
def test_a_run_killed_mid_training_and_resumed_ends_exactly_as_an_uninterrupted_one(tmp_path):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    run_tsad([*LONG_TRAINING, f"hydra.run.dir={whole}"], tmp_path)
    process = start_and_wait_for_a_checkpoint(parts, LONG_TRAINING, epochs=2)
    os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=60)
    assert not (parts / "metrics.json").exists(), "killed mid-training, before the run could record anything"

    run_tsad([*LONG_TRAINING, f"hydra.run.dir={parts}", "resume=true"], tmp_path)
    resumed, uninterrupted = read_metrics(parts), read_metrics(whole)
    assert resumed["resumed_from_checkpoint"] == str(parts / LAST_CHECKPOINT)
    for key in ("metrics", "validation", "threshold", "headline"):
        assert resumed[key] == uninterrupted[key], key

    def losses(folder):
        with open(folder / "history.csv") as file:
            return [(row["epoch"], row["train_loss"], row["val_loss"]) for row in csv.DictReader(file)]
    assert losses(parts) == losses(whole)
