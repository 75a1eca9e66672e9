"""NAB as a dataset family and the NAB protocol: loading, selection, causal online scoring, retraining,
NAB-format results that the rescoring script reproduces. Nothing here downloads."""

import hashlib
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import read_metrics, run_folders, run_tsad

from tsad.data import locate as locate_module
from tsad.data.nab import DATA_SHA256, NAB_COMMIT, WINDOWS_SHA256
from tsad.data.nab_format import probationary_length
from tsad.data.registry import dataset_settings
from tsad.errors import UserError
from tsad.models.base import build_detector
from tsad.models.zscore import ZScoreDetector
from tsad.postprocess import running_rank
from tsad.protocols import PROTOCOLS
from tsad.protocols.nab import NAB, check_causal, detect_online
from tsad.run_folder import RunFolder
from tsad.settings.run import RunConfig

REPO = Path(__file__).resolve().parents[1]
SHARED_NAB = Path(__file__).resolve().parents[2] / "shared" / "data" / "nab"
needs_shared_nab = pytest.mark.skipif(not (SHARED_NAB / "labels" / "combined_windows.json").is_file(),
                                      reason=f"shared NAB copy not found at {SHARED_NAB}")
PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")


def protocol_config(root: Path, *overrides: str) -> RunConfig:
    """The run settings tsad-run makes for dataset=nab, with overrides."""
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    with initialize_config_module(version_base="1.3", config_module="tsad.conf"):
        config = compose("config", overrides=["dataset=nab", f"dataset.root={root}", "trainer=fast", "plots=false",
                                              "device=cpu", *overrides])
    return RunConfig.parse(OmegaConf.to_container(config, resolve=True))


def run_nab(settings: RunConfig, run_dir: Path) -> dict:
    return NAB().run(settings, RunFolder(run_dir))


# -- loading ---------------------------------------------------------------------------------------

def load_nab(root=None, **selection):
    """The NAB files that dataset=nab with these settings selects."""
    return dataset_settings({"family": "nab", "root": None if root is None else str(root), **selection}).load()


@needs_shared_nab
def test_shared_corpus_loads_every_file_in_file_order():
    corpus = load_nab(SHARED_NAB)
    assert len(corpus.files) == 58
    assert len({f.category for f in corpus.files}) == 7
    assert sum(len(f.values) for f in corpus.files) == 365_558
    assert sum(len(f.window_rows) for f in corpus.files) == 116
    assert sum(int(f.labels.sum()) for f in corpus.files) == 33_495
    assert sum(f.probation for f in corpus.files) == 32_716
    machine = next(f for f in corpus.files if f.name == "realKnownCause/machine_temperature_system_failure.csv")
    raw = pd.read_csv(SHARED_NAB / "data" / machine.name)
    np.testing.assert_array_equal(machine.values, raw["value"].to_numpy())
    np.testing.assert_array_equal(machine.timestamps, raw["timestamp"].to_numpy())
    assert machine.timestamps[10149] < machine.timestamps[10148], "time goes back here and rows stay as written"
    assert machine.window_rows == [(2126, 2692), (3703, 4269), (16057, 16623), (19232, 19798)]


@needs_shared_nab
def test_shared_corpus_selects_a_category_or_a_list_of_files():
    known_cause = load_nab(SHARED_NAB, category="realKnownCause")
    assert len(known_cause.files) == 7 and {f.category for f in known_cause.files} == {"realKnownCause"}
    chosen = load_nab(SHARED_NAB, files=["realTraffic/speed_7578.csv", "realKnownCause/nyc_taxi"])
    assert [f.name for f in chosen.files] == ["realTraffic/speed_7578.csv", "realKnownCause/nyc_taxi.csv"]
    assert chosen.files[0].window_rows == [(303, 331), (740, 768), (909, 937), (945, 973)]


def test_mini_corpus_keeps_rows_by_position_and_labels_windows_inclusively(nab_mini):
    corpus = load_nab(nab_mini)
    assert [f.name for f in corpus.files] == ["synthA/cos_glitch.csv", "synthA/sine_spike.csv",
                                              "synthB/exchange-2_flat.csv"]
    glitch = corpus.files[0]
    assert len(glitch.values) == 400 and glitch.timestamps[101] == glitch.timestamps[100]
    assert glitch.window_rows == [(300, 330)]
    assert np.flatnonzero(glitch.labels).tolist() == list(range(300, 331))
    assert corpus.files[2].labels.sum() == 0 and corpus.files[2].probation == 45
    assert [f.name for f in load_nab(nab_mini, category=["synthB"]).files] == ["synthB/exchange-2_flat.csv"]


def test_selection_mistakes_are_one_line_errors(nab_mini):
    with pytest.raises(UserError, match="not a NAB category; choose from synthA, synthB"):
        load_nab(nab_mini, category="realTweets")
    with pytest.raises(UserError, match="synthA/nope.csv is not a NAB file"):
        load_nab(nab_mini, files=["synthA/nope.csv"])
    with pytest.raises(UserError, match="lacks data/synthA/missing.csv"):
        load_nab(_with_missing_file(nab_mini), files=["synthA/missing.csv"])


@pytest.mark.parametrize("settings, message", [
    ({"category": "synthA", "files": ["synthA/sine_spike.csv"]}, "either dataset.category or dataset.files"),
    ({"files": []}, "dataset.files is empty"),
    ({"files": ["synthA/sine_spike", "synthA/sine_spike.csv"]}, "dataset.files lists a file twice"),
    ({"category": []}, "dataset.category is an empty list"),
    ({"retrain_every": 0}, "dataset.retrain_every=0 is out of range: allowed an integer >= 1"),
    ({"level": "series"}, "dataset.level=series is not allowed: choose one of point"),
    ({"protocol": "offline"}, "dataset.protocol=offline is not allowed: choose one of nab"),
    ({"window": 3}, "unknown key 'dataset.window'"),
])
def test_settings_mistakes_are_one_line_errors_before_any_file_is_read(settings, message):
    with pytest.raises(UserError, match=message) as error:
        dataset_settings({"family": "nab", "root": "/nonexistent", **settings})
    assert "\n" not in str(error.value)


def _with_missing_file(root: Path) -> Path:
    """A copy of the windows file that lists a file absent from data/."""
    copy = root.parent / "nab_missing"
    (copy / "labels").mkdir(parents=True, exist_ok=True)
    windows = json.loads((root / "labels" / "combined_windows.json").read_text())
    (copy / "labels" / "combined_windows.json").write_text(json.dumps({**windows, "synthA/missing.csv": []}))
    return copy


@needs_shared_nab
def test_missing_files_download_from_the_pinned_commit_and_are_verified(tmp_path, monkeypatch):
    """The download fallback, with the network replaced by the shared copy: URLs, layout and checksums."""
    fetched = []

    def fetch(url, destination):
        prefix = f"https://raw.githubusercontent.com/numenta/NAB/{NAB_COMMIT}/"
        assert url.startswith(prefix), url
        fetched.append(url[len(prefix):])
        Path(destination).write_bytes((SHARED_NAB / url[len(prefix):]).read_bytes())

    monkeypatch.setattr(locate_module, "fetch", fetch)
    monkeypatch.setenv("TSAD_DATA_DIR", str(tmp_path))
    corpus = load_nab(files=["realTraffic/speed_7578.csv"])
    assert corpus.folder == tmp_path / "NAB"
    assert fetched == ["labels/combined_windows.json", "data/realTraffic/speed_7578.csv"]
    assert len(corpus.files[0].values) == 1127
    load_nab(files=["realTraffic/speed_7578.csv"])
    assert len(fetched) == 2, "cached files are not fetched again"


@needs_shared_nab
def test_pinned_checksums_match_the_shared_copy():
    assert hashlib.sha256((SHARED_NAB / "labels" / "combined_windows.json").read_bytes()).hexdigest() == WINDOWS_SHA256
    windows = json.loads((SHARED_NAB / "labels" / "combined_windows.json").read_text())
    assert sorted(DATA_SHA256) == sorted(windows)
    for name, digest in DATA_SHA256.items():
        assert hashlib.sha256((SHARED_NAB / "data" / name).read_bytes()).hexdigest() == digest, name


# -- the protocol ----------------------------------------------------------------------------------

def test_running_rank_is_causal_counts_ties_low_and_gives_warm_up_rows_zero():
    raw = np.array([np.nan, np.nan, 3.0, 1.0, 2.0, 3.0, 5.0, 1.0])
    np.testing.assert_allclose(running_rank(raw), [0, 0, 1.0, 1 / 2, 2 / 3, 3 / 4, 1.0, 1 / 6])
    np.testing.assert_allclose(running_rank(np.full(4, 2.0)), [1.0, 1 / 2, 1 / 3, 1 / 4])


def series_with_spike(n_rows: int = 400, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = np.sin(np.arange(n_rows) * 2 * np.pi / 25) + 0.1 * rng.normal(size=n_rows)
    values[300:304] += 3.0
    return values


def tiny_lstm_vae():
    return build_detector("lstm_vae", {"window": 16, "train_stride": 2, "hidden_size": 8, "latent_size": 4},
                          trainer={"max_epochs": 1, "max_batches_per_epoch": 3, "progress": False}, causal=True)


# Fresh detectors, built for causal scoring as the protocol builds them.
DETECTORS = {
    "zscore": lambda: build_detector("zscore", causal=True),
    "zscore_rolling": lambda: build_detector("zscore", {"mode": "rolling", "window": 20}, causal=True),
    "iforest": lambda: build_detector("iforest", {"window": 16, "stride": 2, "n_estimators": 25}, causal=True),
    "knn_growing": lambda: build_detector("knn", {"window": 16, "block": 2, "memory": "growing", "stride": 1, "k": 1},
                                          causal=True),
    "lstm_vae": tiny_lstm_vae,
}


@pytest.fixture
def one_torch_thread():
    """Small torch models run faster on one thread, above all on a shared machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", DETECTORS)
def test_changing_a_row_never_changes_earlier_scores(name, one_torch_thread):
    values = series_with_spike()
    before = detect_online(DETECTORS[name], values)
    changed_row = 250
    altered = values.copy()
    altered[changed_row] += 5.0
    after = detect_online(DETECTORS[name], altered)
    np.testing.assert_array_equal(after.raw_scores[:changed_row], before.raw_scores[:changed_row])
    np.testing.assert_array_equal(after.anomaly_scores[:changed_row], before.anomaly_scores[:changed_row])
    assert after.raw_scores[changed_row] != before.raw_scores[changed_row], "the changed row itself is rescored"
    assert np.all((before.anomaly_scores >= 0) & (before.anomaly_scores <= 1))


def test_online_scoring_of_a_torch_model_raises_no_warning(one_torch_thread):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. torch's "the given NumPy array is not writable"
        detection = detect_online(DETECTORS["lstm_vae"], series_with_spike())
    assert np.isfinite(detection.raw_scores[-1])


def test_a_window_model_scores_each_row_from_the_window_ending_at_it_alone():
    values = series_with_spike()
    detection = detect_online(DETECTORS["iforest"], values)
    detector = detection.pipeline.detector
    normalised = detector.normaliser.transform([values[:, None].astype(np.float32)])[0][:, 0]
    for row in (15, 77, 250, 301, 399):
        window = normalised[row - 15:row + 1][None, :]
        assert detection.raw_scores[row] == pytest.approx(-detector.estimator.score_samples(window)[0], abs=1e-12)


def test_window_models_leave_rows_before_the_first_full_window_unscored():
    detection = detect_online(DETECTORS["iforest"], series_with_spike())
    assert np.isnan(detection.raw_scores[:15]).all() and np.isfinite(detection.raw_scores[15:]).all()
    assert (detection.anomaly_scores[:15] == 0).all()


class FitSpy(ZScoreDetector):
    """Records the rows every fit sees and the rows every score call is given."""

    fits: list = []

    def fit(self, train, val=None):
        FitSpy.fits.append((self, np.concatenate(train.values)[:, 0].copy(), val))
        return super().fit(train, val)


def test_the_detector_learns_from_exactly_the_probationary_rows():
    FitSpy.fits = []
    values = series_with_spike(1000)
    detect_online(FitSpy, values)
    ((_, seen, val),) = FitSpy.fits
    assert probationary_length(1000) == 150
    np.testing.assert_array_equal(seen, values[:150].astype(np.float32))
    assert val is None


def test_retraining_fits_fresh_detectors_on_the_rows_seen_so_far_and_stays_causal():
    FitSpy.fits = []
    values = series_with_spike(1000)
    detection = detect_online(FitSpy, values, retrain_every=300)
    seen = [len(rows) for _, rows, _ in FitSpy.fits]
    assert seen == [150, 450, 750] and detection.n_fits == 3
    assert len({id(detector) for detector, _, _ in FitSpy.fits}) == 3, "each fit is a fresh detector"
    np.testing.assert_array_equal(FitSpy.fits[2][1], values[:750].astype(np.float32))
    altered = values.copy()
    altered[600] += 5.0
    after = detect_online(FitSpy, altered, retrain_every=300)
    np.testing.assert_array_equal(after.anomaly_scores[:600], detection.anomaly_scores[:600])
    # Rows 600-749 are scored by the detector fitted on rows < 450, so only the altered row itself changes;
    # the fit at row 750 has seen it and shifts the z-score statistics of every later row.
    changed = np.flatnonzero(after.raw_scores != detection.raw_scores)
    assert changed[0] == 600 and changed[1] == 750 and len(changed) == 1 + 250


def test_models_that_read_whole_series_or_windows_longer_than_the_probation_are_refused():
    with pytest.raises(UserError, match="reads whole series at once"):
        check_causal(build_detector("dagmm", causal=True))
    with pytest.raises(UserError, match="model.window=64 is longer than the 60 rows"):
        detect_online(lambda: build_detector("iforest", {"window": 64}, causal=True), np.zeros(400))
    with pytest.raises(TypeError, match="causal=True"):
        detect_online(lambda: build_detector("iforest", {"window": 16}), np.zeros(400))


def test_protocol_run_writes_nab_results_that_the_rescoring_script_reproduces(nab_mini, tmp_path):
    config = protocol_config(nab_mini, "model=iforest", "model.window=16", "model.n_estimators=25",
                             "threshold=fixed", "threshold.value=1.0")
    assert PROTOCOLS.get("nab") is NAB
    record = run_nab(config, tmp_path)
    assert record["level"] == "point" and set(record["oracle_nab"]) == set(PROFILES)
    assert record["data"]["n_files"] == 3 and record["data"]["n_windows"] == 2 and record["data"]["n_fits"] == 3
    assert record["threshold"]["values"]["point"] == 1.0 and set(record["nab_label_free"]) == set(PROFILES)
    assert record["metrics"]["point"]["n"] == 1300 - (90 + 60 + 45), "probationary rows are not evaluated"

    results = tmp_path / "nab_results" / "iforest"
    files = sorted(p.relative_to(results).as_posix() for p in results.rglob("*.csv"))
    assert files == ["synthA/iforest_cos_glitch.csv", "synthA/iforest_sine_spike.csv",
                     "synthB/iforest_exchange-2_flat.csv"]
    glitch = pd.read_csv(results / "synthA" / "iforest_cos_glitch.csv")
    assert list(glitch.columns) == ["timestamp", "value", "anomaly_score", "label"] and len(glitch) == 400
    assert glitch["label"].sum() == 31 and glitch["anomaly_score"].between(0, 1).all()
    assert (tmp_path / "scores" / "test_steps.csv.gz").is_file() and (tmp_path / "nab_per_file.csv").is_file()

    out = subprocess.run([sys.executable, str(REPO / "scripts" / "nab_score.py"), "--nab-root", str(nab_mini),
                          "--detector-dir", str(results), "--thresholds", "optimize"],
                         capture_output=True, text=True, check=True)
    rescored = json.loads(out.stdout.strip().splitlines()[-1])
    for profile in PROFILES:
        assert rescored[profile] == pytest.approx(record["oracle_nab"][profile], abs=1e-9)


def test_scores_that_read_the_labels_say_so_and_the_headline_is_label_free(nab_mini, tmp_path):
    # A low threshold raises many false alarms, so the label-free score is far below the oracle one.
    config = protocol_config(nab_mini, "model=zscore", "threshold=fixed", "threshold.value=0.5")
    record = run_nab(config, tmp_path)
    assert "nab" not in record, "the label-optimised NAB score is oracle_nab, never a bare nab"
    assert set(record["oracle_nab"]) == set(record["nab_label_free"]) == set(PROFILES)
    detail = record["nab_detail"]
    assert set(detail["oracle_thresholds"]) == set(PROFILES) and detail["label_free_threshold"] == 0.5
    assert not [key for key in detail if key.startswith("nab_")], "detail keys say oracle_ or label_free_"
    headline = record["headline"]
    assert "nab_standard" not in headline
    assert headline["nab_label_free_standard"] == record["nab_label_free"]["standard"]
    assert headline["oracle_nab_standard"] == record["oracle_nab"]["standard"]
    assert headline["nab_label_free_standard"] < headline["oracle_nab_standard"], "the run must tell them apart"
    assert list(headline).index("nab_label_free_standard") < list(headline).index("oracle_nab_standard")

    per_file = pd.read_csv(tmp_path / "nab_per_file.csv")
    assert list(per_file.columns[:4]) == ["threshold_source", "profile", "threshold", "file"]
    assert len(per_file) == 2 * len(PROFILES) * 3
    for source, thresholds, raw_scores in [
            ("label_free", dict.fromkeys(PROFILES, 0.5), detail["label_free_raw_scores"]),
            ("oracle_label_optimised", detail["oracle_thresholds"], detail["oracle_raw_scores"])]:
        for profile in PROFILES:
            rows = per_file[(per_file["threshold_source"] == source) & (per_file["profile"] == profile)]
            assert len(rows) == 3 and (rows["threshold"] == thresholds[profile]).all()
            assert rows["raw_score"].sum() == pytest.approx(raw_scores[profile], abs=1e-9)


def test_dataset_config_reads_lists_of_files_and_rejects_unknown_keys(nab_mini, tmp_path):
    config = protocol_config(nab_mini, "dataset.files=[synthA/sine_spike.csv,synthB/exchange-2_flat.csv]",
                             "model=zscore")
    assert config.dataset.protocol == "nab"
    assert list(config.dataset.files) == ["synthA/sine_spike.csv", "synthB/exchange-2_flat.csv"]
    record = run_nab(config, tmp_path)
    assert record["data"]["n_files"] == 2
    with pytest.raises(UserError, match="unknown key 'dataset.window'"):
        protocol_config(nab_mini, "+dataset.window=3")
    with pytest.raises(UserError, match="dataset.retrain_every=0 is out of range"):
        protocol_config(nab_mini, "dataset.retrain_every=0")


def test_tsad_run_runs_nab_under_the_protocol(nab_mini, tmp_path):
    result = run_tsad(["dataset=nab", f"dataset.root={nab_mini}", "dataset.category=synthA", "model=zscore",
                       "plots=true"], tmp_path)
    assert "nab_label_free_standard=" in result.stdout and "oracle_nab_standard=" in result.stdout
    assert " nab_standard=" not in result.stdout
    (folder,) = run_folders(tmp_path)
    record = read_metrics(folder)
    assert record["status"] == "OK" and record["level"] == "point" and record["data"]["n_files"] == 2
    assert set(record["oracle_nab"]) == set(record["nab_label_free"]) == set(PROFILES) and "nab" not in record
    assert sorted(p.name for p in (folder / "nab_results" / "zscore" / "synthA").iterdir()) == [
        "zscore_cos_glitch.csv", "zscore_sine_spike.csv"]
    assert (folder / "plots" / "oracle_nab_examples.png").is_file()
    assert not (folder / "plots" / "nab_examples.png").exists()
