"""A run that fails ends in one line: a full disk (the attempt's files removed, a finished run in the folder kept as it
was, .hydra/ included), an out-of-memory error recorded as OOM with the settings to lower, and each failed job of a
sweep as one line of the sweep's summary while the other jobs go on; `tsad-table --best` names the models it could
not rank and how to rank them."""

import errno
from pathlib import Path

import pytest
from conftest import TINY_SERIES, read_metrics, run_folders, run_tsad, run_tsad_table
from test_data_loss import tree
from test_table import ok_record, write_run

from tsad.run_folder import STAGING_DIR, RunFolder

FAST = ["model=zscore", *TINY_SERIES]


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def one_line(result, code: int) -> str:
    """The one line a failed tsad-run printed on stderr (and no traceback anywhere)."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code and len(lines) == 1, result.stderr
    assert "Traceback" not in result.stdout + result.stderr, result.stdout
    return lines[0]


# ---------------------------------------------------------------------------- a full disk

def staged_then_full(monkeypatch):
    """The attempt's staging folder is made (a partial file in it), then the disk is full."""
    begin = RunFolder.begin_attempt

    def begin_attempt(self, facts, resume_from=None):
        staging = begin(self, facts, resume_from)
        (staging.root / "partial.bin").write_bytes(b"half")
        no_space()

    monkeypatch.setattr(RunFolder, "begin_attempt", begin_attempt)


WRITES = {
    "staging": staged_then_full,
    "scores": lambda monkeypatch: monkeypatch.setattr(RunFolder, "write_scores", no_space),
    "plots": lambda monkeypatch: monkeypatch.setattr("matplotlib.figure.Figure.savefig", no_space),
    "publish": lambda monkeypatch: monkeypatch.setattr("tsad.run_folder.replace_with_copy", no_space),
    "checkpoints": lambda monkeypatch: torch_saves_to_a_full_device(monkeypatch),
}


def torch_saves_to_a_full_device(monkeypatch):
    """torch.save writes into /dev/full (every write: ENOSPC), through whatever the caller gave it: a path makes torch's
    own C++ writer fail (a RuntimeError without errno), a Python file handle a Python OSError."""
    import torch

    save = torch.save

    def save_to_full_device(obj, target, *args, **kwargs):
        if isinstance(target, (str, Path)):
            return save(obj, "/dev/full", *args, **kwargs)
        with open("/dev/full", "wb") as full:
            return save(obj, full, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_to_full_device)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("write", sorted(WRITES))
def test_a_full_disk_ends_the_run_in_one_line_and_keeps_the_finished_run(tmp_path, monkeypatch, write):
    model = "lstm_vae" if write == "checkpoints" else "zscore"
    args = [f"model={model}", *[a for a in TINY_SERIES if a != "plots=false"], "plots=true",
            f"hydra.run.dir={tmp_path / 'runs' / 'kept'}"]
    run_dir = tmp_path / "runs" / "kept"
    run_tsad(args, tmp_path)
    before = tree(run_dir, leave_out=["run.log"])

    WRITES[write](monkeypatch)
    result = run_tsad([*args, "overwrite=true", "seed=1"], tmp_path, check=False)
    line = one_line(result, 2)
    assert line == (f"tsad-run: error: the disk is full (No space left on device) writing into {tmp_path}: free space "
                    f"in {tmp_path} or choose another paths.output_dir")
    assert not (run_dir / STAGING_DIR).exists()
    assert tree(run_dir, leave_out=["run.log"]) == before, "the finished run, its .hydra/ included, is as it was"


def test_a_full_disk_in_a_new_run_folder_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(RunFolder, "write_scores", no_space)
    result = run_tsad(FAST, tmp_path, check=False)
    assert "free space in" in one_line(result, 2)
    assert not list((tmp_path / "runs").rglob("*.csv*")) and not run_folders(tmp_path)


def test_a_full_disk_in_a_folder_of_a_failed_run_records_the_failure(tmp_path, monkeypatch):
    run_dir = tmp_path / "runs" / "failed"
    RunFolder(run_dir).root.mkdir(parents=True)
    RunFolder(run_dir).write_metrics({"status": "ERROR", "error": "ValueError: earlier"})
    monkeypatch.setattr(RunFolder, "write_scores", no_space)
    one_line(run_tsad([*FAST, f"hydra.run.dir={run_dir}"], tmp_path, check=False), 2)
    record = read_metrics(run_dir)
    assert record["status"] == "ERROR" and record["error"].startswith("UserError: the disk is full")
    assert record["model"] == "zscore" and not (run_dir / STAGING_DIR).exists()


# ---------------------------------------------------------------------------- out of memory, failed sweep jobs

def fit_fails_for_seed_1(monkeypatch, error: BaseException):
    """zscore's fit raises `error` in the job of seed 1 only: a combination that fails only when it runs."""
    from tsad.models.zscore import ZScoreDetector

    fit = ZScoreDetector._fit

    def failing_fit(self, train, val):
        if self.seed == 1:
            raise error
        return fit(self, train, val)

    monkeypatch.setattr(ZScoreDetector, "_fit", failing_fit)


def cuda_oom():
    import torch

    return torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB.\nGPU 0 has 8 GiB in all")


@pytest.mark.parametrize("error", [cuda_oom, lambda: RuntimeError("DefaultCPUAllocator: can't allocate memory"),
                                   MemoryError], ids=["cuda", "cpu", "python"])
def test_out_of_memory_is_recorded_as_oom_naming_what_to_lower(tmp_path, monkeypatch, error):
    fit_fails_for_seed_1(monkeypatch, error())
    line = one_line(run_tsad([*FAST, "seed=1"], tmp_path, check=False), 1)
    (folder,) = run_folders(tmp_path)
    record = read_metrics(folder)
    assert record["status"] == "OOM" and "lower trainer.batch_size or model.window" in record["error"]
    assert line == (f"tsad-run: error: the run ended OOM: {record['error']}; the traceback is in "
                    f"{folder / 'run.log'}")
    assert "\n" not in record["error"] and "Traceback" in (folder / "run.log").read_text()


@pytest.mark.parametrize("error, status", [(cuda_oom, "OOM"), (lambda: ValueError("window too long"), "ERROR")],
                         ids=["oom", "error"])
def test_a_failed_sweep_job_is_one_line_of_the_summary_and_the_other_job_goes_on(tmp_path, monkeypatch, error, status):
    fit_fails_for_seed_1(monkeypatch, error())
    result = run_tsad(["-m", *FAST, "seed=0,1"], tmp_path, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr, result.stderr
    records = {read_metrics(folder)["seed"]: (folder, read_metrics(folder)) for folder in run_folders(tmp_path)}
    assert records[0][1]["status"] == "OK" and records[1][1]["status"] == status
    failed, record = records[1]
    assert f"sweep summary: 1 OK, 1 failed (1 {status}) in" in result.stdout
    assert f"  {status:<11} {failed}  {record['error']}" in result.stdout.splitlines()
    assert "Traceback" in (failed / "run.log").read_text()


# ---------------------------------------------------------------------------- --best with the classic models

def classic_sweep(folder, labelled: bool):
    """Runs of two classic models (no training loss) and, with `labelled`, a deep one; all OK."""
    for model in ("iforest", "pca", *(("lstm_vae",) if labelled else ())):
        validation = {"labelled_val": {"series": {"roc_auc": 0.6}}} if labelled else {}
        if model == "lstm_vae":
            validation["val_loss"] = 0.3
        record = {**ok_record("iforest", "synthetic", 0, "series"), "model": model, "validation": validation}
        write_run(folder / f"{model}_synthetic_seed0_0000aaaa", model, "synthetic", 0, record, "series")
    return folder


def test_best_by_loss_names_the_classic_models_it_skipped(tmp_path):
    sweep = classic_sweep(tmp_path / "sweep", labelled=True)
    result = run_tsad_table([str(sweep), "--best", "validation.val_loss"], tmp_path)
    folder, reason, _ = result.stdout.splitlines()
    assert folder.endswith("lstm_vae_synthetic_seed0_0000aaaa")
    assert "skipped 0 not OK, 2 without the metric (iforest, pca)" in reason


def test_best_by_loss_over_classic_models_only_says_how_to_rank_them(tmp_path):
    sweep = classic_sweep(tmp_path / "sweep", labelled=False)
    result = run_tsad_table([str(sweep), "--best", "validation.val_loss"], tmp_path, check=False)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "finished runs have: no validation metrics; iforest, pca train no loss: run them with " \
           "dataset.labelled_val=0.2" in result.stderr
    assert "to rank every model by e.g. validation.labelled_val.series.roc_auc" in result.stderr
