"""The run record's statuses, the config hash and which config keys count, JSON files, a table's row of a run."""

import pytest

from tsad.config_hash import INCIDENTAL_KEYS, NOT_COMPARED_KEYS, config_hash, is_under
from tsad.errors import NaNLossError, UserError
from tsad.json_files import read_json, write_json_atomic
from tsad.results import failure_status
from tsad.table.rows import read_run

SMALL_CONFIG = {"model": {"name": "iforest", "window": 32}, "seed": 0, "tags": ["a"], "device": "auto", "plots": False,
                "paths": {"output_dir": "a"}, "resume": False, "objective": None,
                "trainer": {"lr": 0.001, "resume_from": None, "progress": "auto"},
                "gpu_pool": {"gpus": "auto", "jobs_per_gpu": 1},
                "dataset": {"name": "synthetic", "seed": 0, "n_test": 30}}


def test_the_config_hash_of_a_given_config_never_changes():
    """Sweep job folders end with the hash and metrics.json records it: a new digest would orphan every earlier run."""
    assert config_hash(SMALL_CONFIG) == "64e1afa5bac6aff8"


def test_config_hash_ignores_where_and_how_a_job_runs():
    config = {"model": {"name": "iforest", "window": 32}, "seed": 0, "paths": {"output_dir": "a"}, "resume": False,
              "trainer": {"lr": 0.001, "resume_from": None, "progress": "auto"}, "gpu_pool": {"gpus": "auto"}}
    digest = config_hash(config)
    moved = {**config, "paths": {"output_dir": "b"}, "resume": True, "gpu_pool": {"gpus": [0]},
             "trainer": {"lr": 0.001, "resume_from": "x/last.pt", "progress": False}}
    assert config_hash(moved) == digest
    assert config_hash({**config, "seed": 1}) != digest
    assert config_hash({**config, "model": {"name": "iforest", "window": 64}}) != digest
    assert config["trainer"]["resume_from"] is None  # the config itself is left alone


def test_a_table_compares_less_than_the_hash_tells_apart():
    assert set(INCIDENTAL_KEYS) < set(NOT_COMPARED_KEYS)
    for key in set(NOT_COMPARED_KEYS) - set(INCIDENTAL_KEYS):  # seed, device, plots, tags: other runs, same cell
        assert config_hash({**SMALL_CONFIG, key: "other"}) != config_hash(SMALL_CONFIG), key
    assert is_under("paths.output_dir", NOT_COMPARED_KEYS) and is_under("seed", NOT_COMPARED_KEYS)
    assert not is_under("dataset.seed", NOT_COMPARED_KEYS) and not is_under("trainer.lr", NOT_COMPARED_KEYS)


@pytest.mark.parametrize("error, status", [
    (NaNLossError("non-finite training loss"), "NAN"),
    (MemoryError(), "OOM"),
    (RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"), "OOM"),
    (KeyboardInterrupt(), "INTERRUPTED"),
    (UserError("seed must be an integer"), "ERROR"),
    (ValueError("boom"), "ERROR"),
])
def test_failure_status(error, status):
    assert failure_status(error) == status


def test_json_is_written_atomically_and_read_back_only_as_an_object(tmp_path):
    import numpy as np

    write_json_atomic(tmp_path / "a.json", {"x": np.float32(0.5), "y": np.arange(2), "z": tmp_path})
    assert read_json(tmp_path / "a.json") == {"x": 0.5, "y": [0, 1], "z": str(tmp_path)}
    assert not list(tmp_path.glob(".*.tmp"))
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "broken.json").write_text("{")
    assert read_json(tmp_path / "list.json") is None and read_json(tmp_path / "broken.json") is None
    assert read_json(tmp_path / "missing.json") is None


def test_a_run_folder_with_an_unreadable_record_is_a_row_that_says_so(tmp_path):
    (tmp_path / "metrics.json").write_text("[]")
    row = read_run(tmp_path)
    assert row["status"] == "UNREADABLE" and row["error"].startswith("metrics.json: ")
