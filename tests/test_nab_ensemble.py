"""scripts/nab_ensemble.py: two NAB runs' raw scores combined score as the combined detector's run would."""

import subprocess
import sys

import numpy as np
from conftest import SCRIPTS, load_script, nab_run, read_metrics

PRESET = ["dataset=nab", "model=knn", "postprocess=likelihood_spatial_rest", "threshold=fixed", "threshold.value=0.5",
          "plots=false"]


def test_combining_a_run_with_itself_by_mean_or_max_gives_its_own_scores(nab_mini, tmp_path):
    run = nab_run(nab_mini, tmp_path, *PRESET, "model.window=8")
    combined = load_script("nab_ensemble").score_pair(run, run, ["mean", "max"])
    for how in ("mean", "max"):
        assert combined[how, "full"] == {"label_free": read_metrics(run)["nab_label_free"],
                                         "oracle": read_metrics(run)["oracle_nab"]}


def test_combinations_row_by_row():
    combine = load_script("nab_ensemble").combine
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
    everything = nab_run(nab_mini, tmp_path / "all", *PRESET, "model.window=8")
    one_category = nab_run(nab_mini, tmp_path / "one", *PRESET, "model.window=8", "dataset.category=synthA")
    result = subprocess.run([sys.executable, str(SCRIPTS / "nab_ensemble.py"), str(everything), str(one_category)],
                            capture_output=True, text=True)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "ran over other NAB files" in result.stderr
