"""scripts/nab_ensemble.py: two NAB runs' raw scores combined score as the combined detector's run would."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
from conftest import read_metrics, run_folders, run_tsad

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "nab_ensemble.py"
PRESET = ["model=knn", "postprocess=likelihood_spatial_rest", "threshold=fixed", "threshold.value=0.5",
          "plots=false"]


def load_script():
    sys.path.insert(0, str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("nab_ensemble", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def nab_run(root: Path, output_dir: Path, *overrides: str) -> Path:
    output_dir.mkdir(parents=True, exist_ok=True)
    run_tsad(["dataset=nab", f"dataset.root={root}", *PRESET, *overrides], output_dir)
    (folder,) = run_folders(output_dir)
    return folder


def test_combining_a_run_with_itself_by_mean_or_max_gives_its_own_scores(nab_mini, tmp_path):
    run = nab_run(nab_mini, tmp_path, "model.window=8")
    combined = load_script().score_pair(run, run, ["mean", "max"])
    for how in ("mean", "max"):
        assert combined[how, "full"] == {"label_free": read_metrics(run)["nab_label_free"],
                                         "oracle": read_metrics(run)["oracle_nab"]}


def test_combinations_row_by_row():
    combine = load_script().combine
    first = np.array([np.nan, 2.0, 4.0, 1.0, 6.0])
    second = np.array([np.nan, np.nan, 1.0, 3.0, 2.0])
    np.testing.assert_array_equal(combine(first, second, 4, "mean"), [np.nan, 2.0, 2.5, 2.0, 4.0])
    np.testing.assert_array_equal(combine(first, second, 4, "max"), [np.nan, 2.0, 4.0, 3.0, 6.0])
    # probationary means (rows 0-3, scored ones only): first 7/3, second 2
    np.testing.assert_allclose(combine(first, second, 4, "scaled_mean"),
                               [np.nan, 2 / (7 / 3), (4 / (7 / 3) + 0.5) / 2, (1 / (7 / 3) + 1.5) / 2,
                                (6 / (7 / 3) + 1.0) / 2])
    flat = np.zeros(5)
    np.testing.assert_array_equal(combine(flat, flat, 4, "scaled_mean"), flat)  # a flat file keeps its zeros


def test_runs_over_other_files_are_refused_in_one_line(nab_mini, tmp_path):
    everything = nab_run(nab_mini, tmp_path / "all", "model.window=8")
    one_category = nab_run(nab_mini, tmp_path / "one", "model.window=8", "dataset.category=synthA")
    result = subprocess.run([sys.executable, str(SCRIPT), str(everything), str(one_category)], capture_output=True,
                            text=True)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "ran over other NAB files" in result.stderr
