"""Conformance and unit tests of the NAB scorer (tsad/evaluation/nab_*.py, tsad/data/nab_format.py,
scripts/nab_score.py).

Expected numbers come from shared/reference/nab_scoring.md; the corpus tests need the NAB
copy in shared/data/nab and are skipped without it.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tsad.data.nab_format import load_nab_windows, probationary_length, windows_from_labels, windows_to_rows
from tsad.errors import UserError
from tsad.evaluation.nab_files import score_detector_dir, write_nab_results
from tsad.evaluation.nab_scoring import (
    DEFAULT_PROFILES,
    MAX_TP,
    NO_DETECTION_THRESHOLD,
    row_values,
    scaled_sigmoid,
    score_corpus,
)

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared"
NAB_ROOT = SHARED / "data" / "nab"
EXPECTED_PER_FILE = SHARED / "reference" / "nab_expected_per_file_scores.csv"
DETECTORS = ("numenta", "random", "windowedGaussian")
PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
STANDARD = {"standard": DEFAULT_PROFILES["standard"]}

needs_corpus = pytest.mark.skipif(not (NAB_ROOT / "results").is_dir(),
                                  reason=f"the NAB corpus copy is not at {NAB_ROOT}")


# ------------------------------------------------------------------------------------------
# Hand-made examples


def test_scaled_sigmoid_matches_reference_values():
    assert scaled_sigmoid(-1.0) == pytest.approx(0.9866142981514305, abs=1e-15)
    assert scaled_sigmoid(-0.5) == pytest.approx(0.8482836399575131, abs=1e-15)
    assert scaled_sigmoid(0.0) == 0.0
    assert scaled_sigmoid(0.5) == pytest.approx(-0.84828, abs=1e-5)
    assert scaled_sigmoid(1.0) == pytest.approx(-0.98661, abs=1e-5)
    assert scaled_sigmoid(3.0) == pytest.approx(-0.99999939, abs=1e-8)
    assert scaled_sigmoid(3.0001) == -1.0
    np.testing.assert_allclose(scaled_sigmoid([-1.0, 0.0, 4.0]), [MAX_TP, 0.0, -1.0])


@pytest.mark.parametrize("n_rows, expected", [(20, 3), (1243, 186), (4032, 604), (5000, 750), (22695, 750)])
def test_probationary_length(n_rows, expected):
    assert probationary_length(n_rows) == expected


def toy_file():
    """Example A of the spec: 20 rows, window rows [8, 11], five non-zero scores."""
    timestamps = pd.date_range("2014-01-01", periods=20, freq="5min")
    scores = np.zeros(20)
    scores[[1, 5, 9, 10, 13]] = [0.9, 0.8, 0.7, 0.95, 0.6]
    windows = [(str(timestamps[8]), str(timestamps[11]))]
    return {"toy.csv": (timestamps, scores)}, {"toy.csv": windows}


def test_row_values_of_toy_file():
    window, values = row_values(20, [(8, 11)], DEFAULT_PROFILES["standard"])
    np.testing.assert_array_equal(window, [-1] * 8 + [0] * 4 + [-1] * 8)
    np.testing.assert_allclose(values[3:8], -0.11)
    np.testing.assert_allclose(values[8:14], [1.0, 0.966989, 0.859793, 0.562124, -0.075049, -0.102422], atol=1e-6)
    assert values[19] == pytest.approx(-0.11, abs=1e-6)


@pytest.mark.parametrize("threshold, raw, tp, tn, fp, fn", [
    (1.1, -1.0, 0, 13, 0, 4),
    (0.95, 0.8597926, 1, 13, 0, 3),
    (0.9, 0.8597926, 1, 13, 0, 3),
    (0.8, 0.7497926, 1, 12, 1, 3),
    (0.7, 0.8569891, 2, 12, 1, 2),
    (0.6, 0.7545670, 2, 11, 2, 2),
    (0.0, -0.3856537, 4, 0, 13, 0),
])
def test_toy_file_at_fixed_thresholds(threshold, raw, tp, tn, fp, fn):
    files, windows = toy_file()
    result = score_corpus(files, windows, STANDARD, thresholds=threshold)
    assert result["raw_scores"]["standard"] == pytest.approx(raw, abs=1e-7)
    counts = result["per_file"]["standard"]["toy.csv"]
    assert (counts["tp"], counts["tn"], counts["fp"], counts["fn"]) == (tp, tn, fp, fn)


def test_toy_file_optimiser_picks_the_best_threshold():
    files, windows = toy_file()
    result = score_corpus(files, windows, STANDARD)
    assert result["thresholds"]["standard"] == 0.95
    assert result["raw_scores"]["standard"] == pytest.approx(0.8597926, abs=1e-7)
    assert result["scores"]["standard"] == pytest.approx(100 * (0.8597926 + 1) / 2, abs=1e-5)


def test_values_along_a_window_and_after_it():
    _, values = row_values(4032, [(2787, 3189)], DEFAULT_PROFILES["standard"])
    np.testing.assert_allclose(values[[2787, 2988, 3189]], [1.0, 0.86067, 0.0062876], atol=1e-5)
    np.testing.assert_allclose(values[[3190, 3390, 3591, 4031]], [-0.000684, -0.093311, -0.108528, -0.109994],
                               atol=1e-6)


def test_null_and_perfect_detectors_score_0_and_100():
    timestamps = pd.date_range("2020-01-01", periods=400, freq="h")
    windows = {"a.csv": [(timestamps[100], timestamps[140]), (timestamps[300], timestamps[330])], "b.csv": []}
    perfect = np.zeros(400)
    perfect[[100, 300]] = 1.0
    files = {"a.csv": (timestamps, perfect), "b.csv": (timestamps, np.zeros(400))}
    assert score_corpus(files, windows)["scores"] == pytest.approx({p: 100.0 for p in PROFILES})
    null = {name: (timestamps, np.full(400, 0.5)) for name in files}
    best = score_corpus(null, windows)
    assert best["scores"] == pytest.approx({p: 0.0 for p in PROFILES})
    assert best["thresholds"]["standard"] == NO_DETECTION_THRESHOLD


def test_optimiser_detects_nothing_above_scores_beyond_one():
    timestamps = pd.date_range("2020-01-01", periods=100, freq="h")
    scores = np.full(100, 5.0)
    result = score_corpus({"a.csv": (timestamps, scores)}, {"a.csv": [(timestamps[50], timestamps[60])]}, STANDARD)
    assert result["thresholds"]["standard"] > 5.0
    assert result["raw_scores"]["standard"] == -1.0


def reference_file_score(scores, window_rows, cost, threshold):
    """A row-by-row scorer written straight from the spec, to check the vectorised one against."""
    values = []
    for i in range(len(scores)):
        inside = [(k, first, last) for k, (first, last) in enumerate(window_rows) if first <= i <= last]
        before = [(first, last) for first, last in window_rows if last < i]
        if inside:
            k, first, last = inside[0]
            values.append((k, cost["tpWeight"] * float(scaled_sigmoid(-(last - i + 1) / (last - first + 1))) / MAX_TP))
        elif before:
            first, last = before[-1]
            values.append((None, cost["fpWeight"] * float(scaled_sigmoid((i - last) / (last - first)))))
        else:
            values.append((None, -cost["fpWeight"]))
    credit, false_positives = {}, 0.0
    for i in range(probationary_length(len(scores)), len(scores)):
        window, value = values[i]
        if window is not None:
            credit.setdefault(window, -cost["fnWeight"])
            if scores[i] >= threshold:
                credit[window] = max(credit[window], value)
        elif scores[i] >= threshold:
            false_positives += value
    return false_positives + sum(credit.values())


def test_optimiser_agrees_with_brute_force_on_random_corpora():
    rng = np.random.default_rng(7)
    for _ in range(5):
        files, windows, rows_of = {}, {}, {}
        for f in range(3):
            n = int(rng.integers(60, 200))
            timestamps = pd.date_range("2021-01-01", periods=n, freq="min")
            cuts = np.sort(rng.choice(np.arange(n // 5, n), size=4, replace=False))
            rows_of[f"f{f}.csv"] = [(int(cuts[0]), int(cuts[1])), (int(cuts[2]), int(cuts[3]))][: f + 1]
            # Few distinct values, so that ties between rows and between thresholds occur.
            files[f"f{f}.csv"] = (timestamps, rng.integers(0, 12, n) / 11)
            windows[f"f{f}.csv"] = [(timestamps[first], timestamps[last]) for first, last in rows_of[f"f{f}.csv"]]
        for profile, cost in DEFAULT_PROFILES.items():
            candidates = sorted({1.1, *np.concatenate([s[probationary_length(len(s)):] for _, s in files.values()])},
                                reverse=True)
            totals = [sum(reference_file_score(files[name][1], rows_of[name], cost, t) for name in files)
                      for t in candidates]
            result = score_corpus(files, windows, {profile: cost})
            assert result["thresholds"][profile] == candidates[int(np.argmax(totals))]
            assert result["raw_scores"][profile] == pytest.approx(max(totals), abs=1e-12)


def test_window_boundaries_map_to_the_first_occurrence_of_repeated_timestamps():
    timestamps = ["2014-03-09 01:00:00", "2014-03-09 01:05:00", "2014-03-09 01:00:00",
                  "2014-03-09 01:05:00", "2014-03-09 01:10:00", "2014-03-09 01:15:00"]
    windows = [("2014-03-09 01:05:00.000000", "2014-03-09 01:10:00.000000")]
    assert windows_to_rows(timestamps, windows) == [(1, 4)]


def test_bad_windows_are_user_errors():
    timestamps = pd.date_range("2020-01-01", periods=10, freq="h")
    scores = np.zeros(10)
    with pytest.raises(UserError, match="not a timestamp"):
        score_corpus({"a.csv": (timestamps, scores)}, {"a.csv": [("2019-01-01", str(timestamps[3]))]})
    with pytest.raises(UserError, match="no entry in the anomaly windows"):
        score_corpus({"a.csv": (timestamps, scores)}, {})
    with pytest.raises(UserError, match="must not overlap"):
        windows_to_rows(timestamps, [(timestamps[2], timestamps[5]), (timestamps[4], timestamps[8])])


def test_written_results_score_like_the_arrays_they_hold(tmp_path):
    root = tmp_path / "nab"
    rng = np.random.default_rng(3)
    files, windows = {}, {}
    for name, n in (("catA/one.csv", 300), ("catB/two.csv", 250)):
        timestamps = pd.date_range("2015-06-01", periods=n, freq="5min")
        labels = np.zeros(n, dtype=int)
        labels[150:180] = 1
        (root / "data" / name).parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"timestamp": timestamps.strftime("%Y-%m-%d %H:%M:%S"), "value": rng.normal(size=n)}).to_csv(
            root / "data" / name, index=False)
        files[name] = (timestamps, rng.random(n))
        windows[name] = windows_from_labels(timestamps, labels)
        path = write_nab_results(tmp_path / "out", "mydet", name, timestamps, rng.normal(size=n),
                                 files[name][1], labels)
        assert path == tmp_path / "out" / "mydet" / Path(name).parent / f"mydet_{Path(name).name}"
        assert path.read_text().splitlines()[0] == "timestamp,value,anomaly_score,label"
    (root / "labels").mkdir()
    (root / "labels" / "combined_windows.json").write_text(
        json.dumps({name: [[f"{pd.Timestamp(bound):%Y-%m-%d %H:%M:%S}.000000" for bound in window] for window in w]
                    for name, w in windows.items()}))

    from_files = score_detector_dir(root, tmp_path / "out" / "mydet", thresholds="optimize")
    in_memory = score_corpus(files, windows)
    assert from_files["detector"] == "mydet"
    assert from_files["scores"] == pytest.approx(in_memory["scores"], abs=1e-12)
    assert from_files["thresholds"] == in_memory["thresholds"]


# ------------------------------------------------------------------------------------------
# The NAB corpus and its published results

# Spec §6.1: raw corpus score, (tp, tn, fp, fn) rows and windows hit at the published thresholds.
PUBLISHED = {
    ("numenta", "standard"): (46.63445019713757, (240, 299194, 153, 33255), 96),
    ("numenta", "reward_low_FP_rate"): (30.431072517124093, (223, 299219, 128, 33272), 93),
    ("numenta", "reward_low_FN_rate"): (26.634450197137564, (240, 299194, 153, 33255), 96),
    ("random", "standard"): (-76.95029742684193, (62, 298878, 469, 33433), 51),
    ("random", "reward_low_FP_rate"): (-102.62825701794472, (36, 299120, 227, 33459), 35),
    ("random", "reward_low_FN_rate"): (-141.9502974268419, (62, 298878, 469, 33433), 51),
    ("windowedGaussian", "standard"): (-24.013105489140056, (521, 298938, 409, 32974), 73),
    ("windowedGaussian", "reward_low_FP_rate"): (-67.58627288655488, (521, 298938, 409, 32974), 73),
    ("windowedGaussian", "reward_low_FN_rate"): (-67.01310548914005, (521, 298938, 409, 32974), 73),
}
# Spec §6.2: the optimiser's threshold and normalised score.
OPTIMISED = {
    ("numenta", "standard"): (0.543099145074, 70.10105611945583),
    ("numenta", "reward_low_FP_rate"): (0.543099145074, 63.20918500249927),
    ("numenta", "reward_low_FN_rate"): (0.543099145074, 74.3202443095223),
    ("random", "standard"): (0.998405097835, 17.65543969821766),
    ("random", "reward_low_FP_rate"): (0.999595043934, 7.480034938338065),
    ("random", "reward_low_FN_rate"): (0.998405097835, 27.57489083329454),
    ("windowedGaussian", "standard"): (1.0, 39.649523496077585),
    ("windowedGaussian", "reward_low_FP_rate"): (1.0, 20.86798582474138),
    ("windowedGaussian", "reward_low_FN_rate"): (1.0, 47.4100271583046),
}


@functools.cache
def scored(detector: str, thresholds: str) -> dict:
    return score_detector_dir(NAB_ROOT, NAB_ROOT / "results" / detector, thresholds=thresholds)


@needs_corpus
def test_corpus_windows():
    windows = load_nab_windows(NAB_ROOT)
    assert len(windows) == 58
    assert sum(len(w) for w in windows.values()) == 116


@needs_corpus
@pytest.mark.parametrize("detector", DETECTORS)
def test_published_thresholds_reproduce_final_results(detector):
    final_results = json.loads((NAB_ROOT / "results" / "final_results.json").read_text())[detector]
    result = scored(detector, "published")
    for profile in PROFILES:
        assert result["scores"][profile] == pytest.approx(final_results[profile], abs=1e-6)
        raw, (tp, tn, fp, fn), windows_hit = PUBLISHED[detector, profile]
        counts = result["counts"][profile]
        assert result["raw_scores"][profile] == pytest.approx(raw, abs=1e-9)
        assert (counts["tp"], counts["tn"], counts["fp"], counts["fn"]) == (tp, tn, fp, fn)
        assert (counts["windows_detected"], counts["windows"]) == (windows_hit, 116)


@needs_corpus
@pytest.mark.parametrize("detector", DETECTORS)
def test_optimiser_matches_spec(detector):
    result = scored(detector, "optimize")
    for profile in PROFILES:
        threshold, score = OPTIMISED[detector, profile]
        assert result["thresholds"][profile] == threshold
        assert result["scores"][profile] == pytest.approx(score, abs=1e-6)


@needs_corpus
@pytest.mark.skipif(not EXPECTED_PER_FILE.is_file(), reason=f"{EXPECTED_PER_FILE} is absent")
def test_per_file_scores_match_reference():
    expected = pd.read_csv(EXPECTED_PER_FILE)
    assert len(expected) == 3 * 3 * 58
    for row in expected.itertuples():
        got = scored(row.detector, "published")["per_file"][row.profile][row.file]
        assert got["raw_score"] == pytest.approx(row.raw_score, abs=1e-9), (row.detector, row.profile, row.file)
        assert (got["tp"], got["tn"], got["fp"], got["fn"], got["windows"]) == (
            row.tp, row.tn, row.fp, row.fn, row.n_windows), (row.detector, row.profile, row.file)


@needs_corpus
def test_nyc_taxi_worked_example():
    got = scored("numenta", "published")["per_file"]["standard"]["realKnownCause/nyc_taxi.csv"]
    assert got["raw_score"] == pytest.approx(2.4357277324658533, abs=1e-12)
    assert (got["tp"], got["tn"], got["fp"], got["fn"], got["windows_detected"]) == (7, 8534, 1, 1028, 4)


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "nab_score.py"), *args],
                          capture_output=True, text=True, cwd=REPO, timeout=120)


@needs_corpus
def test_script_prints_scores_as_json_on_its_last_line():
    completed = run_script("--nab-root", str(NAB_ROOT), "--detector-dir", str(NAB_ROOT / "results" / "numenta"),
                           "--thresholds", "optimize")
    assert completed.returncode == 0, completed.stderr
    assert "oracle: optimised on the corpus labels" in completed.stdout.splitlines()[0]
    last_line = json.loads(completed.stdout.strip().splitlines()[-1])
    assert list(last_line) == list(PROFILES)
    assert last_line["reward_low_FP_rate"] == pytest.approx(63.20918500249927, abs=1e-6)


@needs_corpus
@pytest.mark.parametrize("args, problem", [
    (("--detector-dir", "no/such/folder"), "does not exist"),
    (("--detector-dir", str(NAB_ROOT / "results" / "numenta"), "--detector-name", "noSuchDetector"),
     "no published thresholds"),
])
def test_script_reports_bad_input_in_one_line(args, problem):
    completed = run_script("--nab-root", str(NAB_ROOT), *args)
    assert completed.returncode == 2
    assert problem in completed.stderr
    assert len(completed.stderr.strip().splitlines()) == 1
    assert "Traceback" not in completed.stderr


def test_script_rejects_a_missing_nab_root():
    completed = run_script("--nab-root", "no/such/root", "--detector-dir", "no/such/folder")
    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines() == [
        "nab_score.py: error: NAB root no/such/root does not exist; point --nab-root at a copy of the NAB repository"]
