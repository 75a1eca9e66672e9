"""No run is overwritten unless asked (overwrite=true), and then only by a run that finishes: a run writes into a
staging folder that replaces the folder's results when it ends. SIGTERM ends a run as INTERRUPTED, resumable, and a
run killed mid-training and resumed ends exactly as an uninterrupted one."""

import csv
import os
import signal
import subprocess
import time

import pytest
from conftest import TINY_SERIES, TSAD_RUN, read_metrics, run_folders, run_tsad

from tsad.run_folder import LOCK_FILE, STAGING_DIR, RunFolder, find_run_folders
from tsad.sweeps import job
from tsad.table.rows import read_run

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


def test_a_sweep_rerun_without_resume_is_refused_at_the_door_and_says_what_to_do(tmp_path):
    sweep = ["-m", *FAST, "seed=0,1", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    run_tsad(sweep, tmp_path)
    earlier = {folder: folder_bytes(folder) for folder in run_folders(tmp_path)}

    result = run_tsad(sweep, tmp_path, check=False)
    assert result.returncode == 2
    first = min(earlier, key=lambda folder: read_metrics(folder)["seed"])
    assert result.stderr.strip().splitlines()[-1] == (
        f"tsad-run: error: {first} holds a finished run (status OK); add resume=true to keep it, choose another "
        "hydra.sweep.dir, or add overwrite=true to replace it [sweep job: seed=0]")
    assert {folder: folder_bytes(folder) for folder in earlier} == earlier

    assert "sweep summary: 2 OK (2 finished earlier, skipped)" in run_tsad([*sweep, "resume=true"], tmp_path).stdout


def test_sigterm_during_a_job_records_it_as_interrupted_and_the_handler_is_restored_after(tmp_path, monkeypatch):
    import tsad.experiment

    def run(config, run_dir, epoch_callbacks=()):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the signal arrives first
        raise AssertionError("SIGTERM did not interrupt the run")

    monkeypatch.setattr(tsad.experiment, "run", run)
    previous = signal.getsignal(signal.SIGTERM)
    config = {"model": {"name": "zscore"}, "dataset": {"name": "synthetic", "family": "synthetic"}, "seed": 0,
              "trainer": {}}
    with pytest.raises(KeyboardInterrupt):
        job.run_job(config, job.JobContext(tmp_path))
    assert read_metrics(tmp_path)["status"] == "INTERRUPTED"
    assert signal.getsignal(signal.SIGTERM) is previous


RESULT = {"level": "series", "metrics": {"series": {"roc_auc": 0.75}}, "headline": {"roc_auc": 0.75}}


def stub_run(monkeypatch, files: dict[str, str], outcome: BaseException | None = None):
    """tsad.experiment.run replaced by one that writes `files` ({relative path: text}) into its folder, then
    raises `outcome` or returns RESULT."""
    import tsad.experiment

    def run(settings, folder, epoch_callbacks=()):
        for name, text in files.items():
            (folder.root / name).parent.mkdir(parents=True, exist_ok=True)
            (folder.root / name).write_text(text)
        if outcome is not None:
            raise outcome
        return dict(RESULT)

    monkeypatch.setattr(tsad.experiment, "run", run)


def run_stub_job(run_dir, seed: int = 0, **settings):
    config = {"model": {"name": "zscore"}, "dataset": {"name": "synthetic", "family": "synthetic"}, "seed": seed,
              "trainer": {}, **settings}
    try:
        job.run_job(config, job.JobContext(run_dir))
    except (RuntimeError, KeyboardInterrupt):
        pass


def folder_bytes(run_dir) -> dict:
    """Every file of the run folder but the staging folder's, with its bytes."""
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*"))
            if p.is_file() and STAGING_DIR not in p.relative_to(run_dir).parts}


@pytest.mark.parametrize("outcome", [RuntimeError("boom"), KeyboardInterrupt("ended by SIGTERM")])
def test_a_failing_rerun_with_overwrite_keeps_the_finished_run_byte_identical(tmp_path, monkeypatch, outcome):
    run_dir = tmp_path / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text("seed: 0\n")  # as Hydra writes it when a run starts
    stub_run(monkeypatch, {"scores/test.csv": "old", "model/weights": "old", "history.csv": "old"})
    run_stub_job(run_dir)
    finished = folder_bytes(run_dir)
    assert read_metrics(run_dir)["status"] == "OK" and set(finished) >= {"scores/test.csv", "job.json"}

    stub_run(monkeypatch, {"scores/test.csv": "half-writ", "plots/new.png": "new"}, outcome)
    (run_dir / ".hydra" / "config.yaml").write_text("seed: 1\n")
    run_stub_job(run_dir, seed=1, overwrite=True)
    assert folder_bytes(run_dir) == finished, "the kept run's .hydra/ too"
    assert (run_dir / STAGING_DIR / ".hydra" / "config.yaml").read_text() == "seed: 1\n", "the attempt's, with it"
    assert read_run(run_dir)["config.seed"] == read_run(run_dir)["seed"] == 0, "the config of the results"
    attempt = read_metrics(run_dir / STAGING_DIR)  # the failed attempt's own record and files, beside the run
    assert attempt["status"] == job.failure_status(outcome) and attempt["seed"] == 1
    assert (run_dir / STAGING_DIR / "plots" / "new.png").exists()
    assert find_run_folders([tmp_path]) == [run_dir.resolve()], "a staged attempt is not a run of its own"


def test_a_finished_rerun_with_overwrite_replaces_every_file_of_the_earlier_run(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text("seed: 1\n")
    (run_dir / "notes.txt").write_text("the user's")
    stub_run(monkeypatch, {"scores/test.csv": "old", "plots/old.png": "old"})
    run_stub_job(run_dir)
    stub_run(monkeypatch, {"scores/test.csv": "new"}, RuntimeError("boom"))
    run_stub_job(run_dir, overwrite=True)  # leaves a failed attempt in the staging folder

    stub_run(monkeypatch, {"scores/test.csv": "new", "history.csv": "new"})
    run_stub_job(run_dir, seed=1, overwrite=True)
    assert sorted(folder_bytes(run_dir)) == [".hydra/config.yaml", ".hydra/published/config.yaml", "history.csv",
                                             "job.json", "metrics.json", "notes.txt", "scores/test.csv"]
    assert (run_dir / "scores" / "test.csv").read_text() == "new" and read_metrics(run_dir)["seed"] == 1
    assert not (run_dir / STAGING_DIR).exists()


def test_an_interrupted_run_replaces_a_failed_one_whole_and_stays_resumable(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    stub_run(monkeypatch, {"scores/test.csv": "failed", "plots/old.png": "failed"}, RuntimeError("boom"))
    run_stub_job(run_dir)
    stub_run(monkeypatch, {"history.csv": "1 epoch", "model/checkpoints/last.pt": "weights"},
             KeyboardInterrupt("ended by SIGTERM"))
    run_stub_job(run_dir)
    assert sorted(folder_bytes(run_dir)) == ["history.csv", "job.json", "metrics.json", "model/checkpoints/last.pt"]
    assert read_metrics(run_dir)["status"] == "INTERRUPTED"
    digest = read_metrics(run_dir)["config_hash"]
    assert job.checkpoint_to_resume([RunFolder(run_dir)], digest) == RunFolder(run_dir).last_checkpoint


def start_and_wait_for_a_checkpoint(run_dir, args: list[str], epochs: int = 1) -> subprocess.Popen:
    """Start tsad-run in `run_dir`; return once its last checkpoint holds `epochs` epochs (history.csv is written
    just after)."""
    process = subprocess.Popen([TSAD_RUN, *args, f"hydra.run.dir={run_dir}"], cwd=run_dir.parent,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    history = RunFolder(run_dir).staging.history
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
    assert RunFolder(run_dir).last_checkpoint.exists()

    run_tsad([*args, "resume=true"], tmp_path)
    assert read_metrics(run_dir)["status"] == "OK"
    assert read_metrics(run_dir)["resumed_from_checkpoint"] == str(RunFolder(run_dir).last_checkpoint)


@pytest.mark.slow
def test_a_run_killed_mid_training_and_resumed_ends_exactly_as_an_uninterrupted_one(tmp_path):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    run_tsad([*LONG_TRAINING, f"hydra.run.dir={whole}"], tmp_path)
    process = start_and_wait_for_a_checkpoint(parts, LONG_TRAINING, epochs=2)
    os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=60)
    assert not (parts / "metrics.json").exists(), "killed mid-training, before the run could record anything"
    assert sorted(p.name for p in parts.iterdir()) == [".hydra", LOCK_FILE, STAGING_DIR, "run.log"], \
        "nothing half-written (the lock is let go with the killed process)"

    run_tsad([*LONG_TRAINING, f"hydra.run.dir={parts}", "resume=true"], tmp_path)
    resumed, uninterrupted = read_metrics(parts), read_metrics(whole)
    assert resumed["resumed_from_checkpoint"] == str(RunFolder(parts).staging.last_checkpoint)
    assert not (parts / STAGING_DIR).exists()
    for key in ("metrics", "validation", "threshold", "headline"):
        assert resumed[key] == uninterrupted[key], key

    def losses(folder):
        with open(folder / "history.csv") as file:
            return [(row["epoch"], row["train_loss"], row["val_loss"]) for row in csv.DictReader(file)]
    assert losses(parts) == losses(whole)
