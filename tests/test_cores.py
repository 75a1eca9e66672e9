"""A run's thread count: the cores it is allowed (affinity, cgroup quota), shared with the tsad runs beside it."""

import os
import subprocess
import sys

import pytest
import torch
from conftest import TINY_SERIES, read_metrics, run_folders, run_tsad

from tsad import cores
from tsad.cores import CoreShare, allowed_cores, computing_runs


@pytest.fixture
def shared(monkeypatch, tmp_path):
    """Share-making conditions: no OMP_NUM_THREADS pin, four allowed cores, a runs folder of the test's own."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(cores, "allowed_cores", lambda: 4)
    monkeypatch.setenv("TSAD_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path / "runs"


def write_cgroup(tmp_path, monkeypatch, cpu_max_by_group: dict, own_group: str = "job/step"):
    monkeypatch.setattr(cores, "CGROUP_ROOT", tmp_path / "cgroup")
    monkeypatch.setattr(cores, "PROC_CGROUP", tmp_path / "proc_cgroup")
    (tmp_path / "proc_cgroup").write_text(f"0::/{own_group}\n")
    for group, cpu_max in cpu_max_by_group.items():
        folder = tmp_path / "cgroup" / group
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "cpu.max").write_text(cpu_max + "\n")


def test_a_cgroup_v2_quota_caps_the_cores_at_its_tightest_level(tmp_path, monkeypatch):
    write_cgroup(tmp_path, monkeypatch, {"job": "250000 100000", "job/step": "max 100000"})
    assert cores.cgroup_quota() == 2.5
    assert allowed_cores() == min(len(os.sched_getaffinity(0)), 3)
    write_cgroup(tmp_path, monkeypatch, {"job": "max 100000", "job/step": "max 100000"})
    assert cores.cgroup_quota() is None
    assert allowed_cores() == len(os.sched_getaffinity(0))


def test_a_cgroup_v1_quota_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr(cores, "CGROUP_ROOT", tmp_path)
    monkeypatch.setattr(cores, "PROC_CGROUP", tmp_path / "proc_cgroup")
    (tmp_path / "proc_cgroup").write_text("4:cpu,cpuacct:/slurm/job1\n3:memory:/slurm/job1\n")
    folder = tmp_path / "cpu" / "slurm" / "job1"
    folder.mkdir(parents=True)
    (folder / "cpu.cfs_quota_us").write_text("100000\n")
    (folder / "cpu.cfs_period_us").write_text("100000\n")
    assert cores.cgroup_quota() == 1.0
    assert allowed_cores() == 1


def test_runs_computing_at_once_share_the_cores_and_a_run_alone_gets_them_back(shared):
    first, second = CoreShare(0, shared), CoreShare(0, shared)
    first.join()
    assert torch.get_num_threads() == 4
    second.join()
    assert second.used == [2] and first.rebalance() == 2 and torch.get_num_threads() == 2
    second.leave()
    assert first.rebalance() == 4
    assert first.record() == {"policy": "shared", "allowed_cores": 4, "used": [4, 2, 4]}
    first.leave()
    assert computing_runs(shared) == 0


def test_share_now_is_the_current_runs_share_and_the_allowed_cores_outside_a_run(shared):
    assert cores.share_now() == 4
    neighbour = CoreShare(0, shared)
    neighbour.join()
    with cores.shared_cores(0):
        assert cores.share_now() == 2
        neighbour.leave()
        assert cores.share_now() == 4
    assert cores.share_now() == 4 and computing_runs(shared) == 0


def test_leaving_puts_back_the_thread_count_from_before_the_run(shared):
    torch.set_num_threads(1)
    share = CoreShare(0, shared)
    share.join()
    assert torch.get_num_threads() == 4
    share.leave()
    assert torch.get_num_threads() == 1


def test_the_lock_file_of_a_run_that_died_is_removed_and_not_counted(shared):
    shared.mkdir()
    (shared / "12345-1.lock").write_bytes(b"")  # nobody holds its lock
    assert computing_runs(shared) == 0
    assert not (shared / "12345-1.lock").exists()


def test_a_run_in_another_process_is_counted_until_it_ends(shared):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from pathlib import Path; from tsad.cores import CoreShare; "
                               "share = CoreShare(1, Path(sys.argv[1])); share.join(); print('in', flush=True); "
                               "sys.stdin.read()",
         str(shared)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "in"
        share = CoreShare(0, shared)
        share.join()
        assert share.used == [2]
    finally:
        holder.communicate("", timeout=60)  # it ends without leaving: its lock goes with the process
    assert share.rebalance() == 4
    share.leave()


def test_threads_n_and_omp_num_threads_pin_the_count(shared, monkeypatch):
    other = CoreShare(0, shared)
    other.join()
    assert CoreShare(3, shared).share() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert CoreShare(0, shared).share() == 2
    assert CoreShare(0, shared).record()["policy"] == "pinned"
    other.leave()


def test_a_run_records_the_thread_counts_it_used(tmp_path):
    before = torch.get_num_threads()
    run_tsad([*TINY_SERIES, "threads=2"], tmp_path)
    [folder] = run_folders(tmp_path)
    record = read_metrics(folder)
    assert record["threads"]["policy"] == "pinned" and record["threads"]["used"] == [2]
    assert torch.get_num_threads() == before
