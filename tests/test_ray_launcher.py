"""hydra/launcher=ray: what each job asks Ray for, and real sweeps on a Ray started for them (slow: Ray takes
tens of seconds to start on a small machine; they need the ray extra, `make install-ray`)."""

import importlib.util
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import TINY_SERIES, TSAD_RUN, read_metrics, run_folders, run_tsad

from tsad.sweeps import ray_resources
from tsad.sweeps.ray_resources import job_cpus, job_gpus, job_threads

needs_ray = pytest.mark.skipif(
    not (importlib.util.find_spec("ray") and importlib.util.find_spec("hydra_plugins.hydra_ray_launcher")),
    reason="Ray and its Hydra launcher are not installed (make install-ray)")


def test_a_machine_with_gpus_gives_each_job_one_gpu_and_its_share_of_the_cores(monkeypatch):
    monkeypatch.setattr(ray_resources, "allowed_cores", lambda: 16)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5,7")
    assert (job_gpus(), job_cpus()) == (1, 5)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,-1,3")  # CUDA stops at the first invalid entry
    assert (job_gpus(), job_cpus()) == (1, 16)


def test_a_machine_without_gpus_gives_each_job_one_core(monkeypatch):
    monkeypatch.setattr(ray_resources, "allowed_cores", lambda: 16)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert (job_gpus(), job_cpus()) == (0, 1)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setenv("PATH", "")  # no nvidia-smi either
    assert (job_gpus(), job_cpus()) == (0, 1)


@pytest.mark.parametrize("num_cpus, threads", [(1, "1"), (8, "8"), (2.5, "2"), (0.5, "1")])
def test_a_job_gets_as_many_threads_as_whole_cores(num_cpus, threads):
    assert job_threads(num_cpus) == threads


@pytest.mark.slow
@needs_ray
def test_a_ray_sweep_runs_every_job_and_a_resumed_one_skips_the_finished_ones(tmp_path):
    sweep = [f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    result = run_tsad(["-m", "hydra/launcher=ray", "model=random,iforest", "seed=0,1", *TINY_SERIES, *sweep], tmp_path)
    folders = run_folders(tmp_path)
    assert {(read_metrics(f)["model"], read_metrics(f)["seed"], read_metrics(f)["status"]) for f in folders} == {
        ("random", 0, "OK"), ("random", 1, "OK"), ("iforest", 0, "OK"), ("iforest", 1, "OK")}
    assert "sweep summary: 4 OK, 0 failed" in result.stdout
    finished = {f: (f / "metrics.json").stat().st_mtime_ns for f in folders}

    result = run_tsad(["-m", "hydra/launcher=ray", "model=random,iforest", "seed=0,1", *TINY_SERIES, *sweep,
                       "resume=true"], tmp_path)
    assert "sweep summary: 4 OK (4 finished earlier, skipped), 0 failed" in result.stdout
    assert {f: (f / "metrics.json").stat().st_mtime_ns for f in run_folders(tmp_path)} == finished


@pytest.mark.slow
@needs_ray
def test_a_failing_ray_job_is_recorded_and_the_others_finish(tmp_path):
    result = run_tsad(["-m", "hydra/launcher=ray", "model=random,lstm_vae", "trainer.lr=1e30", *TINY_SERIES],
                      tmp_path, check=False)
    assert result.returncode == 1
    records = {read_metrics(f)["model"]: read_metrics(f) for f in run_folders(tmp_path)}
    assert records["random"]["status"] == "OK"
    assert records["lstm_vae"]["status"] == "NAN" and "NaNLossError" in records["lstm_vae"]["error"]
    assert "sweep summary: 1 OK, 1 failed (1 NAN)" in result.stdout


@pytest.mark.slow
@needs_ray
def test_a_ray_job_stopped_by_ctrl_c_resumes_from_its_checkpoint(tmp_path):
    args = ["-m", "hydra/launcher=ray", "model=lstm_vae", *TINY_SERIES, "trainer.max_epochs=40",
            "trainer.max_batches_per_epoch=null", "trainer.patience=40", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    process = subprocess.Popen([TSAD_RUN, *args, f"paths.output_dir={tmp_path}"], cwd=tmp_path, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and not list(tmp_path.rglob("checkpoints/last.pt")):
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C does: the whole process group gets SIGINT
    stdout, _ = process.communicate(timeout=120)
    assert process.returncode == 130 and "sweep summary: 0 OK, 1 failed (1 NO RESULT)" in stdout
    assert not run_folders(tmp_path)

    run_tsad([*args, "resume=true"], tmp_path)
    (folder,) = run_folders(tmp_path)
    record = read_metrics(folder)
    assert record["status"] == "OK" and record["resumed_from_checkpoint"].endswith("checkpoints/last.pt")


THREADS_APP = """
import os
from pathlib import Path

import hydra

import tsad.cli  # noqa: F401  (the resolvers of tsad's launcher presets)


@hydra.main(version_base="1.3", config_path=".", config_name="app")
def app(cfg):
    import torch

    Path(cfg.out, f"{cfg.n}.txt").write_text(f"{os.environ['OMP_NUM_THREADS']} {torch.get_num_threads()}")


app()
"""


@pytest.mark.slow
@needs_ray
def test_each_ray_job_gets_as_many_threads_as_cores_it_asked_for(tmp_path):
    """Whatever OMP_NUM_THREADS the sweep was started with (the tests run with 1)."""
    (tmp_path / "app.py").write_text(THREADS_APP)
    (tmp_path / "app.yaml").write_text("hydra:\n  searchpath: [pkg://tsad.conf]\nn: 0\nout: .\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "app.py", "-m", "hydra/launcher=ray", "+hydra.launcher.ray.init.num_cpus=2",
                           "hydra.launcher.ray.remote.num_cpus=2", "n=0,1", f"out={tmp_path}",
                           f"hydra.sweep.dir={tmp_path / 'sweep'}"], cwd=tmp_path, env=env, timeout=300,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [(tmp_path / f"{n}.txt").read_text() for n in (0, 1)] == ["2 2", "2 2"]
