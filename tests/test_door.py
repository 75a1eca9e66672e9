"""tsad-run's door: the whole config is parsed into typed settings before any work, so a bad value anywhere, or an
output folder that cannot be made, ends in one line and exit code 2 with nothing written."""

from __future__ import annotations

import pytest
from conftest import run_tsad


@pytest.mark.parametrize(("override", "message"), [
    ("trainer.lr=nan", "trainer.lr=nan is out of range"),
    ("model.dropout=2", "model.dropout=2 is out of range"),
    ("seed=99999999999999999999", "seed=99999999999999999999 is out of range"),
    ("dataset.n_train=-3", "dataset.n_train=-3 is out of range"),
    ("tta.n=0", "tta.n=0 is out of range"),
    ("postprocess=likelihood postprocess.average_window=0", "postprocess.average_window=0 is out of range"),
    ("threshold.q=101", "threshold.q=101 is out of range"),
    ("tags=hello", "tags=hello has the wrong type"),
    ("plots=maybe", "plots=maybe has the wrong type"),
    ("device=gpu", "device=gpu is not a device"),
    ("tta.n=5000", "tta.n=5000 is out of range: allowed an integer >= 1 and <= 1000"),
    ("dataset.max_length=100000000", "dataset.max_length=100000000 is out of range"),
    ("model=iforest trainer.resume_from=somewhere", "model iforest has none to continue; set trainer.resume_from=null"),
])
def test_a_bad_value_anywhere_fails_in_one_line_before_any_work(tmp_path, override, message):
    result = run_tsad(override.split(), tmp_path, check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == f"tsad-run: error: {result.stderr.strip().removeprefix('tsad-run: error: ')}"
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not any(tmp_path.rglob("*.json")), "nothing is run"


def test_an_output_folder_under_a_file_is_refused_before_any_work(tmp_path):
    blocker = tmp_path / "results"
    blocker.write_text("a user's file\n")
    for arguments in ([], ["-m", "seed=0,1"]):
        result = run_tsad(arguments, blocker, cwd=tmp_path, check=False)
        assert result.returncode == 2 and f"{blocker} is a file, not a folder" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert blocker.read_text() == "a user's file\n"
