"""The TSB-AD family and protocol: file names, selection, reading, fit rows, per_file.csv, metrics.json's means,
workers, the preset end to end, and bad inputs in one line."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import read_metrics, run_folders, run_tsad

from tsad.data.registry import dataset_settings
from tsad.data.tsb_ad import list_files, parse_name, read_tsb_file
from tsad.errors import UserError
from tsad.evaluation.tsb_ad_metrics import METRIC_KEYS
from tsad.models.base import MODELS
from tsad.models.zscore import ZScoreDetector
from tsad.protocols import tsb_ad as tsb_ad_protocol
from tsad.protocols.tsb_ad import TSBAD
from tsad.settings.run import RunConfig

DATA = Path(__file__).parent / "data" / "tsb_ad"
REPO = Path(__file__).resolve().parents[1]
NAB = REPO.parent / "shared" / "data" / "nab"
SAMPLE = DATA / "001_NAB_id_1_Facility_tr_1007_1st_2014.csv"
TUNING_NAB = sorted(p.name for p in DATA.glob("*.csv") if p.name in list_files("TSB-AD-U-Tuning"))
FAST = ["model=knn", "model.window=16", "model.max_train_windows=300", "plots=false", "dataset.list=TSB-AD-U-Tuning",
        "dataset.window_from_period=null"]


def settings(**keys):
    return dataset_settings({"family": "tsb_ad_u", "root": str(DATA), **keys})


def write_m_file(folder: Path, name: str, rows: int = 300, seed: int = 0) -> Path:
    """A small multivariate TSB-AD file: two channels, then Label, labelled 1 from its name's 1st for 20 rows."""
    first = parse_name(name).first_anomaly
    rng = np.random.default_rng(seed)
    t = np.arange(rows)
    frame = pd.DataFrame({"a": np.sin(t / 5) + 0.1 * rng.normal(size=rows), "b": np.cos(t / 7), "Label": 0})
    frame.loc[first:first + 19, "Label"] = 1
    frame.loc[first:first + 19, "a"] += 3
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / name, index=False)
    return folder / name


def test_a_file_name_says_source_training_part_and_first_anomaly():
    name = parse_name("057_SMD_id_1_Facility_tr_4529_1st_4629.csv")
    assert (name.source, name.train_end, name.first_anomaly) == ("SMD", 4529, 4629)
    assert parse_name("003_NAB_id_3_WebService_tr_1362_1st_1462.csv").source == "NAB"
    with pytest.raises(UserError, match=r"^nab_1\.csv: not a TSB-AD file name; TSB-AD names files <NNN>_"):
        parse_name("nab_1.csv")


def test_every_shipped_list_entry_parses():
    for list_name in ("TSB-AD-U", "TSB-AD-M"):
        assert all(parse_name(file) for file in list_files(list_name))
    assert len(list_files("TSB-AD-U-Tuning")) == 48 and len(list_files("TSB-AD-M-Eva")) == 180


def test_the_sample_reads_as_tsb_ad_reads_it():
    tsb_file = read_tsb_file(SAMPLE)
    expected = pd.read_csv(SAMPLE).dropna()
    assert tsb_file.values.shape == (4031, 1) and tsb_file.columns == ["Data"]
    np.testing.assert_array_equal(tsb_file.values[:, 0], expected["Data"].to_numpy(dtype=float))
    assert int(np.argmax(tsb_file.labels)) == 2014 and tsb_file.labels.sum() == 343


@pytest.mark.skipif(not NAB.is_dir(), reason="needs the shared NAB copy")
def test_the_nab_derivation_equals_tsb_ad_s_sample_and_every_nab_name(tmp_path):
    script = [sys.executable, str(REPO / "scripts" / "tsb_ad_from_nab.py"), "--nab", str(NAB)]
    checked = subprocess.run([*script, "--check-sample", str(SAMPLE)], capture_output=True, text=True)
    assert checked.returncode == 0 and "labels identical" in checked.stdout, checked.stdout + checked.stderr
    written = subprocess.run([*script, "--out", str(tmp_path)], capture_output=True, text=True)
    assert written.returncode == 0, written.stderr  # the script checks each file's 1st against its name
    assert len(list(tmp_path.glob("*_NAB_*.csv"))) == 28
    for path in tmp_path.glob("*.csv"):
        read_tsb_file(path)


def test_list_sources_and_files_select(tmp_path):
    assert [f.file for f in settings(list="TSB-AD-U-Tuning").load().files] == TUNING_NAB
    assert len(settings(list=None).load().files) == len(TUNING_NAB) + 1  # the folder: the Eva sample too
    chosen = settings(list=None, files=[TUNING_NAB[1], TUNING_NAB[0].removesuffix(".csv")]).load().files
    assert [f.file for f in chosen] == [TUNING_NAB[1], TUNING_NAB[0]]
    folder = tmp_path / "mixed"
    shutil.copytree(DATA, folder)
    write_m_file(folder, "900_YAHOO_id_1_WebService_tr_100_1st_200.csv")
    yahoo = dataset_settings({"family": "tsb_ad_u", "root": str(folder), "list": None, "sources": ["YAHOO"]})
    assert [f.source for f in yahoo.load().files] == ["YAHOO"]
    with pytest.raises(UserError, match="dataset.sources: UCR is not a source of the selected files; choose from "
                                        "NAB, YAHOO"):
        dataset_settings({"family": "tsb_ad_u", "root": str(folder), "list": None, "sources": "UCR"}).load()


def test_a_partial_folder_runs_what_is_there_and_an_empty_one_is_refused(tmp_path):
    corpus = settings(list="TSB-AD-U-Tuning").load()
    assert [w["code"] for w in corpus.warnings.entries] == ["missing_files"]
    assert f"lacks {48 - len(TUNING_NAB)} of the 48 selected files" in corpus.warnings.entries[0]["message"]
    with pytest.raises(UserError, match="holds none of the 180 selected TSB-AD-M files"):
        dataset_settings({"family": "tsb_ad_m", "root": str(DATA)}).load()


@pytest.mark.parametrize("train, rows", [("semi_supervised", 1007), ("unsupervised", 1537)])
def test_the_detector_fits_on_the_training_part_or_on_every_row(monkeypatch, train, rows):
    from tsad.models.base import Detector
    from tsad.protocols.tsb_ad import run_file
    from tsad.settings.run import RunConfig

    file = "004_NAB_id_4_Facility_tr_1007_1st_1437.csv"
    config = RunConfig.parse({"model": {"name": "knn", "window": 16}, "dataset": {
        "family": "tsb_ad_u", "root": str(DATA), "train": train, "files": [file], "list": None}})
    seen = []
    original = Detector.fit
    monkeypatch.setattr(Detector, "fit", lambda self, data, val=None: (seen.append(int(data.lengths[0])),
                                                                       original(self, data))[1])
    result = run_file(config, "cpu", config.dataset.load().files[0])
    assert seen == [rows] and result.train_rows == rows and result.error == ""
    assert len(result.scores) == 1537


@pytest.mark.parametrize("multiple", [1, 2.5])
def test_window_from_period_sets_each_file_s_window_from_its_sliding_window(multiple):
    from tsad.protocols.tsb_ad import run_file
    from tsad.settings.run import RunConfig

    config = RunConfig.parse({"model": {"name": "knn", "window": 16, "max_train_windows": 300}, "dataset": {
        "family": "tsb_ad_u", "root": str(DATA), "list": None, "window_from_period": multiple,
        "files": ["021_NAB_id_21_WebService_tr_500_1st_565.csv", "004_NAB_id_4_Facility_tr_1007_1st_1437.csv"]}})
    results = [run_file(config, "cpu", tsb_file) for tsb_file in config.dataset.load().files]
    assert [r.error for r in results] == ["", ""]
    assert [r.model_window for r in results] == [round(multiple * r.sliding_window) for r in results]
    assert len({r.model_window for r in results}) == 2  # the two files' periods differ


def test_a_run_writes_per_file_rows_and_their_means(tmp_path):
    run_tsad(["experiment=tsb_ad_u", f"dataset.root={DATA}", "dataset.workers=1", *FAST], tmp_path)
    [folder] = run_folders(tmp_path)
    per_file = pd.read_csv(folder / "per_file.csv")
    assert list(per_file.columns) == ["file", "source", "rows", "train_rows", "sliding_window", "model_window",
                                      "fit_seconds", "score_seconds", *METRIC_KEYS, "error"]
    assert (per_file["model_window"] == 16).all()
    assert per_file["file"].tolist() == TUNING_NAB and set(per_file["source"]) == {"NAB"}
    assert per_file["error"].isna().all()
    record = read_metrics(folder)
    for key in METRIC_KEYS:
        assert record["tsb_ad"]["means"][key] == pytest.approx(per_file[key].mean())
        assert record["metrics"]["point"][key] == record["tsb_ad"]["means"][key]
    assert list(record["headline"])[0] == "vus_pr"
    assert record["tsb_ad"] | {"means": None} == {"benchmark": "U", "list": "TSB-AD-U-Tuning", "train":
                                                  "semi_supervised", "n_files": len(TUNING_NAB), "n_failed": 0,
                                                  "means": None}
    steps = pd.read_csv(folder / "scores" / "test_steps.csv.gz")
    assert len(steps) == per_file["rows"].sum()


def test_two_workers_give_what_one_gives(tmp_path):
    results = {}
    for workers in (1, 2):
        (tmp_path / str(workers)).mkdir()
        run_tsad(["experiment=tsb_ad_u", f"dataset.root={DATA}", f"dataset.workers={workers}",
                  f"dataset.files=[{TUNING_NAB[0]},{TUNING_NAB[-1]}]", *FAST], tmp_path / str(workers))
        [folder] = run_folders(tmp_path / str(workers))
        results[workers] = (pd.read_csv(folder / "per_file.csv").drop(columns=["fit_seconds", "score_seconds"]),
                            pd.read_csv(folder / "scores" / "test_steps.csv.gz"))
    pd.testing.assert_frame_equal(results[1][0], results[2][0])
    pd.testing.assert_frame_equal(results[1][1], results[2][1])


def test_a_failing_file_is_one_row_s_error_and_the_run_goes_on(tmp_path):
    folder = tmp_path / "data"
    write_m_file(folder, "001_SMD_id_1_Facility_tr_100_1st_200.csv")
    write_m_file(folder, "002_SMD_id_2_Facility_tr_20_1st_200.csv")  # 20 training rows: fewer than k windows
    (tmp_path / "out").mkdir()
    run_tsad(["dataset=tsb_ad_m", f"dataset.root={folder}", "dataset.list=null", "dataset.workers=1", "model=knn",
              "model.window=16", "model.stride=8", "model.k=5", "plots=false"], tmp_path / "out")
    [run] = run_folders(tmp_path / "out")
    per_file = pd.read_csv(run / "per_file.csv")
    assert per_file["error"].isna().tolist() == [True, False], per_file["error"].tolist()
    assert read_metrics(run)["tsb_ad"]["n_failed"] == 1


@pytest.mark.parametrize("content, message", [
    ("Data,Value\n1,0\n", "TSB-AD files hold the value columns then Label, got columns Data,Value"),
    ("Data,Label\n1,0\nx,0\n", "line 3, column Data: 'x' is not a number"),
    ("Data,Label\n1,0\n2,0\n3,0\n", "no row is labelled 1, but its name says the first anomaly is row 1"),
    ("Data,Label\n1,0\n2,0\n3,1\n", "its first row labelled 1 is row 2, but its name says 1st_1"),
])
def test_a_bad_file_is_one_line_naming_it(tmp_path, content, message):
    path = tmp_path / "001_NAB_id_1_Facility_tr_1_1st_1.csv"
    path.write_text(content)
    with pytest.raises(UserError, match=message):
        read_tsb_file(path)


@pytest.mark.parametrize("override, message", [
    ("dataset.list=TSB-AD-U-Eval", "dataset.list=TSB-AD-U-Eval is not a TSB-AD-U file list; choose from TSB-AD-U, "
                                   "TSB-AD-U-Eva, TSB-AD-U-Eva-Full, TSB-AD-U-Tuning"),
    ("dataset.files=[nab_1.csv]", "nab_1.csv: not a TSB-AD file name"),
    ("dataset.train=supervised", "dataset.train"),
    ("dataset.window_from_period=0", "dataset.window_from_period"),
    ("model=dagmm", "model=dagmm cannot run under the TSB-AD protocol: it learns from a set of training series, "
                    "and a TSB-AD file is one series"),
    ("model=series_nn", "model=series_nn cannot run under the TSB-AD protocol: it gives every step its series' "
                        "score, and a TSB-AD file is one series, so its scores would be constant"),
    ("model=zscore dataset.window_from_period=1", "dataset.window_from_period=1.0 sets a window model's window, and "
                                                  "model=zscore has none"),
])
def test_bad_settings_are_one_line_before_any_work(tmp_path, override, message):
    result = run_tsad(["experiment=tsb_ad_u", f"dataset.root={DATA}", *override.split()], tmp_path, check=False)
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert run_folders(tmp_path) == []


# The models a one-series file cannot serve, by the capability they declare (tsad/models/base.py).
REFUSED = {"dagmm": "it learns from a set of training series", "series_nn": "it gives every step its series' score"}


@pytest.mark.parametrize("name", MODELS.names())
def test_every_model_but_the_refused_passes_the_protocol_s_check(name):
    config = RunConfig.parse({"model": {"name": name}, "dataset": {"family": "tsb_ad_u", "root": str(DATA)}})
    if name in REFUSED:
        with pytest.raises(UserError, match=f"^model={name} cannot run under the TSB-AD protocol: {REFUSED[name]}"):
            TSBAD().check(config)
    else:
        TSBAD().check(config)


@pytest.mark.parametrize("capability, message", [("learns_from_one_series", REFUSED["dagmm"]),
                                                 ("scores_vary_within_series", REFUSED["series_nn"])])
def test_a_model_is_refused_by_the_capability_it_declares_not_by_its_name(capability, message):
    lacking = type("Lacking", (ZScoreDetector,), {capability: False})
    with pytest.raises(UserError, match=f"^model=zscore cannot run under the TSB-AD protocol: {message}"):
        TSBAD().check_detector(lacking())
    TSBAD().check_detector(ZScoreDetector())


def test_the_benchmark_script_prints_seconds_per_file_and_the_eva_list_extrapolation():
    script = [sys.executable, str(REPO / "scripts" / "bench_tsb_ad.py"), "--root", str(DATA), "--cores", "2",
              "model=knn", "model.window=16", "model.max_train_windows=300",
              f"dataset.files=[{TUNING_NAB[0]},{TUNING_NAB[-1]}]"]
    done = subprocess.run(script, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines[:2]] == [TUNING_NAB[0], TUNING_NAB[-1]]
    assert lines[2].startswith("mean per file over 2 file(s)")
    assert lines[3].startswith("TSB-AD-U Eva list: 350 files") and "on 2 core(s)" in lines[3]
    refused = subprocess.run([*script[:2], "--root", str(DATA), "model=dagmm"], capture_output=True, text=True)
    assert refused.returncode == 2 and refused.stderr.startswith("error: model=dagmm cannot run")


def test_the_default_worker_count_is_the_runs_share_of_the_cores(monkeypatch):
    monkeypatch.setattr(tsb_ad_protocol, "share_now", lambda: 3)
    assert tsb_ad_protocol.worker_count(None, 10) == 3
    assert tsb_ad_protocol.worker_count(None, 2) == 2  # never more than there are files
    assert tsb_ad_protocol.worker_count(5, 10) == 5
