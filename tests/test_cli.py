"""tsad-run end to end: in this process (conftest.run_tsad, as most tests run it) and, in the test_command_line_*
tests, as the `tsad-run` command a user types, from a folder outside the source tree. Those also check that a run
in this process ends as the command does, and the in-process harness is checked on its own."""

import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY_SERIES, TSAD_RUN, read_metrics, run_folders, run_in_process, run_tsad, run_tsad_command

import tsad.conf


def without_times(text: str, tmp_path: Path) -> list[str]:
    """Output lines without what differs between two runs of one command: times, durations and the folders."""
    lines = (re.sub(r"^\[\d{4}-\d\d-\d\d [\d:,]+\]", "", line) for line in text.splitlines())
    return [re.sub(r"\b\d+(\.\d+)? s\b", "N s", line.split(str(tmp_path))[0]) for line in lines]


def test_command_line_run_writes_a_complete_folder_as_a_run_in_this_process_does(tmp_path):
    command = ["model=lstm_vae", *TINY_SERIES, "plots=true"]
    result = run_tsad_command(command, tmp_path / "command", cwd=tmp_path)
    (folder,) = run_folders(tmp_path / "command")
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

    in_process = run_tsad(command, tmp_path / "in_process", cwd=tmp_path)
    (same,) = run_folders(tmp_path / "in_process")
    assert without_times(in_process.stdout, tmp_path) == without_times(result.stdout, tmp_path)
    assert in_process.stderr == result.stderr
    assert sorted(path.relative_to(same) for path in same.rglob("*")) == \
        sorted(path.relative_to(folder) for path in folder.rglob("*"))
    assert (same / "run.log").read_text().count("\n") == (folder / "run.log").read_text().count("\n")


@pytest.mark.parametrize("args, code", [
    (["model=zscore", "threshold.q=200"], 2),                 # refused at the door
    (["model=random", "threshold=val_best_f1"], 2),           # found once the data is built, inside Hydra's task
    (["-m", "model=zscore,random"], 0),                       # a sweep and its summary
], ids=["door", "with-data", "sweep"])
def test_command_line_and_in_process_runs_end_alike(tmp_path, args, code):
    command = run_tsad_command([*args, *TINY_SERIES], tmp_path / "command", cwd=tmp_path, check=False)
    in_process = run_tsad([*args, *TINY_SERIES], tmp_path / "in_process", cwd=tmp_path, check=False)
    assert command.returncode == in_process.returncode == code, (command.stderr, in_process.stderr)
    assert command.stderr == in_process.stderr.replace("in_process", "command"), (command.stderr, in_process.stderr)
    assert without_times(command.stdout, tmp_path) == without_times(in_process.stdout, tmp_path)
    assert code == 0 or command.stderr.startswith("tsad-run: error: ") and command.stderr.count("\n") == 1
    assert sorted(p.name for p in (tmp_path / "command").rglob("*.json")) == \
        sorted(p.name for p in (tmp_path / "in_process").rglob("*.json"))


def failing_main():
    raise ValueError("a bug")


def exiting_main():
    sys.exit("stopped: bad thing")


def writing_main():
    os.write(1, b"from C\n")
    os.write(2, b"warning from C\n")
    handler = logging.StreamHandler(sys.stdout)
    logging.getLogger().addHandler(handler)
    logging.getLogger("tsad").warning("logged")
    print(os.getcwd(), os.environ["HYDRA_FULL_ERROR"], sys.argv[1:])
    sys.exit(3)


def test_in_process_runs_report_what_a_process_would(tmp_path):
    crashed = run_in_process(failing_main, "tsad-run", [], tmp_path, timeout=10)
    assert crashed.returncode == 1 and "Traceback" in crashed.stderr and "ValueError: a bug" in crashed.stderr
    stopped = run_in_process(exiting_main, "tsad-run", [], tmp_path, timeout=10)
    assert (stopped.returncode, stopped.stderr) == (1, "stopped: bad thing\n")
    root_handlers, cwd = list(logging.getLogger().handlers), os.getcwd()
    wrote = run_in_process(writing_main, "tsad-run", ["a=1"], tmp_path, timeout=10)
    assert wrote.returncode == 3 and wrote.stderr == "warning from C\n"
    assert wrote.stdout.splitlines() == ["from C", "logged", f"{tmp_path} 0 ['a=1']"]
    assert logging.getLogger().handlers == root_handlers and os.getcwd() == cwd, "the process state is put back"


def test_main_runs_again_in_the_same_process_without_what_an_earlier_call_left(tmp_path):
    # a sweep, then a single run: the run prints no summary of the earlier sweep
    run_tsad(["-m", "model=zscore", *TINY_SERIES], tmp_path / "sweep", cwd=tmp_path)
    single = run_tsad(["model=zscore", *TINY_SERIES], tmp_path / "single", cwd=tmp_path)
    assert "sweep summary" not in single.stdout
    # a folder that held something is kept when the run fails with a config error found with the data; once it is
    # gone, a later run into it removes it as any folder it made
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    failing = ["model=random", *TINY_SERIES, "threshold=val_best_f1", f"hydra.run.dir={folder}"]
    assert run_tsad(failing, tmp_path, check=False).returncode == 2 and (folder / "notes.txt").exists()
    shutil.rmtree(folder)
    assert run_tsad(failing, tmp_path, check=False).returncode == 2
    assert not folder.exists()


def test_deep_and_classic_detectors_beat_random_on_an_easy_set(tmp_path):
    easy = ["dataset.n_train=40", "dataset.n_val=10", "dataset.n_test=40", "dataset.min_length=60",
            "dataset.max_length=90", "dataset.magnitude=4", "dataset.anomaly_types=[level_shift,spike,variance]",
            "plots=false", "seed=1"]
    run_tsad(["-m", "model=random,iforest,lstm_vae", *easy, "trainer.max_epochs=4", "trainer.patience=4"], tmp_path)
    auc = {read_metrics(f)["model"]: read_metrics(f)["metrics"]["series"]["roc_auc"] for f in run_folders(tmp_path)}
    assert auc["iforest"] > auc["random"] + 0.2, auc
    assert auc["lstm_vae"] > auc["random"] + 0.2, auc


def test_multirun_writes_one_folder_per_job(tmp_path):
    result = run_tsad(["-m", "model=zscore,random", *TINY_SERIES], tmp_path)
    folders = run_folders(tmp_path)
    assert len(folders) == 2
    assert all(f.parent.parent.parent.name == "multiruns" for f in folders)
    assert {read_metrics(f)["model"] for f in folders} == {"zscore", "random"}
    assert "sweep summary: 2 OK, 0 failed" in result.stdout


def test_command_line_two_runs_started_together_never_share_a_folder(tmp_path):
    args = [TSAD_RUN, "model=random", *TINY_SERIES, f"paths.output_dir={tmp_path}"]
    processes = [subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for _ in range(2)]
    assert all(p.wait(timeout=120) == 0 for p in processes)
    assert len(run_folders(tmp_path)) == 2


@pytest.mark.parametrize("override, expected", [
    ("model=nope", "unknown model 'nope'; choose one of:"),
    ("dataset=nope", "unknown dataset 'nope'"),
    ("device=tpu", "device=tpu is not a device: choose auto, cpu, cuda or cuda:N"),
    ("trainer.max_epochs=abc", "trainer.max_epochs=abc has the wrong type: expected an integer or null"),
    ("model.hidden_size=big", "model.hidden_size=big has the wrong type: expected an integer"),
    ("+model.colour=red", "unknown key 'model.colour' (model lstm_vae has: beta, "),
    ("threshold.q=150", "threshold.q=150 is out of range: allowed a number >= 0 and <= 100"),
    ("dataset.anomaly_types=[meteor]", "dataset.anomaly_types: unknown"),
])
def test_user_mistakes_give_one_line_errors(tmp_path, override, expected):
    result = run_tsad([override, *TINY_SERIES], tmp_path, check=False)
    assert result.returncode == 2
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert "Traceback" not in result.stderr


HEAVY = ("torch", "sklearn", "matplotlib", "pandas")


def test_command_line_help_imports_nothing_heavy(tmp_path):
    # --help is fast because nothing heavy is imported before the task runs (wall time is too noisy to test)
    script = ("import sys\nfrom tsad.cli import main\nsys.argv = ['tsad-run', '--help']\ntry:\n    main()\n"
              "except SystemExit as stop:\n    assert stop.code == 0, stop.code\n"
              f"print('heavy:', sorted(m for m in {HEAVY!r} if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert result.returncode == 0 and "time-series anomaly detection" in result.stdout, result.stderr
    assert result.stdout.splitlines()[-1] == "heavy: []", result.stdout


def test_help_lists_the_groups(tmp_path):
    result = run_tsad(["--help", "model=iforest"], tmp_path)
    assert "time-series anomaly detection" in result.stdout and "--cfg job" in result.stdout
    assert "README.md" in result.stdout and "powered by Hydra" not in result.stdout
    described = {line.split()[0] for line in result.stdout.splitlines()
                 if line.startswith("  ") and not line.startswith("   ") and len(line.split()) > 1}
    conf = Path(tsad.conf.__file__).parent
    groups = {p.name for p in conf.iterdir() if p.is_dir() and p.name not in ("hydra", "__pycache__")}
    assert groups | {"hydra/launcher"} <= described, "every config group is listed with its line (cli.GROUP_HELP)"
    assert "iforest*" in result.stdout and "lstm_vae," in result.stdout, "the selected option is starred"
    assert max(len(line) for line in result.stdout.splitlines()) <= 120
    assert list(tmp_path.iterdir()) == []


def test_cfg_job_shows_the_composed_config(tmp_path):
    result = run_tsad(["--cfg", "job", "model=iforest", "seed=5"], tmp_path)
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
