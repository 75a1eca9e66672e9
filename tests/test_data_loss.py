"""Nothing a user has is removed or rewritten unless overwrite=true names it: resume=true continues only a run of its
own config, a folder holding other files is never written into, a run folder is locked while a run writes it, a
failed overwrite leaves the kept run's .hydra/ as it was, and a sweep never nests inside a run."""

import os
import platform
import signal

import pytest
from conftest import TINY_SERIES, read_metrics, run_tsad, run_tsad_command
from test_overwrite import LONG_TRAINING, start_and_wait_for_a_checkpoint

from tsad import cli
from tsad.errors import UserError
from tsad.run_folder import LOCK_FILE, STAGING_DIR, RunFolder
from tsad.sweeps import job

FAST = ["model=random", *TINY_SERIES]


def tree(folder, leave_out=()) -> dict[str, bytes]:
    """Every file under `folder` with its bytes, but those under the names in `leave_out`."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not set(leave_out) & set(p.relative_to(folder).parts)}


def refused(result, *expected: str) -> str:
    """The one line a refused tsad-run printed, checked to hold each of `expected`."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("tsad-run: error: ") and all(text in lines[0] for text in expected), lines[0]
    return lines[0]


@pytest.mark.parametrize("other", [["model=zscore"], ["seed=1"]], ids=["another-model", "another-seed"])
def test_resume_refuses_a_finished_run_of_another_config(tmp_path, other):
    run_dir = tmp_path / "run"
    run_tsad([*FAST, f"hydra.run.dir={run_dir}"], tmp_path)
    before = tree(run_dir)

    result = run_tsad([*FAST, *other, "resume=true", f"hydra.run.dir={run_dir}"], tmp_path, check=False)
    line = refused(result, f"{run_dir} holds a finished run of another config (model random, seed 0, config hash",
                   "choose another hydra.run.dir, or add overwrite=true to replace it")
    assert read_metrics(run_dir)["config_hash"][:8] in line
    assert tree(run_dir) == before

    same = run_tsad([*FAST, "resume=true", f"hydra.run.dir={run_dir}"], tmp_path)
    assert "already holds a finished run of this config" in same.stdout + same.stderr
    before.pop("run.log")  # which every run started in the folder writes to
    assert tree(run_dir, leave_out=["run.log"]) == before, "the skip puts .hydra/ back as it was"


def test_a_job_with_resume_refuses_a_finished_run_of_another_config_itself(tmp_path):
    """The job's own check, for folders the door cannot name in advance."""
    config = {"model": {"name": "random"}, "dataset": {"name": "synthetic", "family": "synthetic"}, "seed": 0,
              "trainer": {}}
    run_dir = tmp_path / "run"
    RunFolder(run_dir).root.mkdir()
    RunFolder(run_dir).write_metrics({"status": "OK", "model": "zscore", "seed": 0, "config_hash": "0123456789abcdef"})
    before = tree(run_dir)
    with pytest.raises(UserError, match="holds a finished run of another config .model zscore, seed 0, config hash "
                                        "01234567. than this one .model random, seed 0"):
        job.run_job({**config, "resume": True}, job.JobContext(run_dir))
    assert tree(run_dir) == before


USERS_FILES = {"plots/figure.png": b"\x89PNG mine", "model/weights.pt": b"mine", "history.csv": b"epoch\n1\n",
               "notes.txt": b"mine"}


def users_folder(folder, files=USERS_FILES):
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


@pytest.mark.parametrize("extra", [[], ["overwrite=true"], ["resume=true"]], ids=["plain", "overwrite", "resume"])
def test_a_run_folder_holding_the_users_files_is_refused(tmp_path, extra):
    folder = users_folder(tmp_path / "mine")
    result = run_tsad([*FAST, *extra, f"hydra.run.dir={folder}"], tmp_path, check=False)
    refused(result, f"{folder} holds files that are not a tsad run (history.csv, model, notes.txt, ...)",
            "choose another hydra.run.dir")
    assert tree(folder) == USERS_FILES and sorted(p.name for p in folder.iterdir()) == sorted(
        {name.split("/")[0] for name in USERS_FILES}), "not even .hydra/ is written"


def test_a_sweep_job_folder_holding_the_users_files_is_refused(tmp_path):
    sweep = tmp_path / "sweep"
    folder = users_folder(sweep / "job", {"plots/figure.png": b"mine"})
    result = run_tsad(["-m", *FAST, f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=job"], tmp_path, check=False)
    refused(result, f"{folder} holds files that are not a tsad run (plots)", "choose another hydra.sweep.dir")
    assert tree(sweep) == {"job/plots/figure.png": b"mine"}


def test_a_sweep_folder_aimed_at_a_finished_run_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    run_tsad([*FAST, f"hydra.run.dir={run_dir}"], tmp_path)
    before = tree(run_dir)
    result = run_tsad(["-m", *FAST, "seed=0,1", f"hydra.sweep.dir={run_dir}"], tmp_path, check=False)
    refused(result, f"hydra.sweep.dir={run_dir} is a run's folder", "choose another hydra.sweep.dir")
    assert tree(run_dir) == before


def holder() -> str:
    return f"pid {os.getpid()} on {platform.node()}"


def test_a_folder_another_run_writes_is_refused_at_the_door_naming_that_run(tmp_path):
    run_dir = tmp_path / "run"
    run_tsad([*FAST, f"hydra.run.dir={run_dir}"], tmp_path)
    before = tree(run_dir)
    with RunFolder(run_dir).locked():  # as the run writing the folder holds it (this process: another than tsad-run's)
        result = run_tsad_command([*FAST, "overwrite=true", f"hydra.run.dir={run_dir}"], tmp_path, check=False)
        refused(result, f"{run_dir} is being written by another run ({holder()}); wait for it to end")
        assert tree(run_dir, leave_out=[LOCK_FILE]) == before
    assert tree(run_dir) == before, "the lock file goes with the lock"


def test_a_job_refuses_a_folder_another_run_writes_and_leaves_it_as_that_run_has_it(tmp_path):
    """The job's own lock, for two runs that passed the door at once; and the failing run does not remove the
    folder the other run writes."""
    run_dir = tmp_path / "run"
    config = {"model": {"name": "random"}, "dataset": {"name": "synthetic", "family": "synthetic"}, "seed": 0,
              "trainer": {}, "overwrite": True}
    users_folder(run_dir / STAGING_DIR, {"job.json": b"{}", "history.csv": b"epoch\n1\n"})
    before = tree(run_dir)
    with RunFolder(run_dir).locked():
        with pytest.raises(UserError, match=f"is being written by another run \\({holder()}\\)"):
            job.run_job(config, job.JobContext(run_dir))
        cli.remove_run_folder(run_dir, tmp_path)  # what a single run's failure does with a folder it made
        assert tree(run_dir, leave_out=[LOCK_FILE]) == before


def test_a_failed_overwrite_leaves_the_kept_runs_hydra_folder_as_it_was(tmp_path):
    run_dir = tmp_path / "run"
    run_tsad([*FAST, f"hydra.run.dir={run_dir}"], tmp_path)
    before = tree(run_dir, leave_out=["run.log"])
    # found once the data is built, after Hydra rewrote .hydra/: the synthetic set has no labelled validation
    result = run_tsad([*FAST, "seed=1", "threshold=val_best_f1", "overwrite=true", f"hydra.run.dir={run_dir}"],
                      tmp_path, check=False)
    refused(result, "threshold=val_best_f1 needs a labelled validation split")
    assert tree(run_dir, leave_out=["run.log", STAGING_DIR]) == before
    assert "seed: 1" in (run_dir / STAGING_DIR / ".hydra" / "config.yaml").read_text(), "the attempt's, beside it"


@pytest.mark.slow
def test_a_second_run_into_a_folder_a_run_is_writing_is_refused_and_the_first_one_goes_on(tmp_path):
    run_dir = tmp_path / "run"
    endless = [*LONG_TRAINING, "trainer.max_epochs=10000", "trainer.patience=10000"]  # ended by SIGTERM below
    first = start_and_wait_for_a_checkpoint(run_dir, endless)
    second = run_tsad_command([*FAST, "overwrite=true", f"hydra.run.dir={run_dir}"], tmp_path, check=False)
    assert first.poll() is None, "the first run was still writing the folder"
    refused(second, f"{run_dir} is being written by another run (pid {first.pid} on {platform.node()})")
    first.send_signal(signal.SIGTERM)
    _, stderr = first.communicate(timeout=120)
    assert first.returncode == 130, stderr
    record = read_metrics(run_dir)
    assert record["status"] == "INTERRUPTED" and record["model"] == "lstm_vae"
    assert RunFolder(run_dir).read_job()["pid"] == first.pid and not (run_dir / LOCK_FILE).exists()
