"""tsad-table --leaderboard: TSB-AD runs beside TSB-AD's published leaderboard, on the files the runs scored."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_tsad_table

from tsad.table.leaderboard import compare, leaderboard_table
from tsad.table.tsb_ad_reference import load_leaderboard

ROOT = Path(__file__).resolve().parents[1]
NAB_1 = "001_NAB_id_1_Facility_tr_1007_1st_2014.csv"
NAB_2 = "002_NAB_id_2_WebService_tr_1500_1st_4106.csv"
YAHOO_1 = "551_YAHOO_id_1_Synthetic_tr_500_1st_893.csv"
YAHOO_2 = "552_YAHOO_id_2_Synthetic_tr_500_1st_893.csv"
TUNING_NAB = "003_NAB_id_3_WebService_tr_1362_1st_1462.csv"  # on TSB-AD-U-Tuning, so not on the leaderboard
SOURCES = {NAB_1: "NAB", NAB_2: "NAB", YAHOO_1: "YAHOO", YAHOO_2: "YAHOO", TUNING_NAB: "NAB"}
KNN = {NAB_1: 0.5, NAB_2: 0.3, YAHOO_1: 0.9, TUNING_NAB: 0.7}
IFOREST = {NAB_1: 0.2, NAB_2: 0.1, YAHOO_1: 0.4, YAHOO_2: 0.8}
COVERED = [NAB_1, NAB_2, YAHOO_1]  # on the leaderboard and scored by both runs


def write_tsb_ad_run(folder: Path, model: str, vus_pr: dict[str, float], dataset: dict, status: str = "OK",
                     seed: int = 0, sources: dict[str, str] = SOURCES) -> Path:
    """A finished TSB-AD run folder as the protocol writes it: config, metrics.json and per_file.csv."""
    (folder / ".hydra").mkdir(parents=True)
    config = {"model": {"name": model}, "seed": seed, "dataset": {"name": dataset["family"], **dataset}}
    (folder / ".hydra" / "config.yaml").write_text(json.dumps(config))  # JSON is YAML
    record = {"status": status, "model": model, "dataset": dataset["family"], "seed": seed, "level": "point"}
    if status == "OK":
        record["metrics"] = {"point": {"vus_pr": sum(vus_pr.values()) / len(vus_pr)}}
        rows = [{"file": name, "source": sources[name], "rows": 1000, "vus_pr": value, "vus_roc": value,
                 "auc_pr": value, "auc_roc": value} for name, value in vus_pr.items()]
        pd.DataFrame(rows).to_csv(folder / "per_file.csv", index=False)
    (folder / "metrics.json").write_text(json.dumps(record))
    return folder


@pytest.fixture
def u_runs(tmp_path: Path) -> Path:
    """Two finished TSB-AD-U runs, a failed one, and a run on other data."""
    sweep = tmp_path / "outputs" / "multiruns" / "2026-12-01" / "10-00-00"
    u = {"family": "tsb_ad_u", "list": "TSB-AD-U-Eva"}
    write_tsb_ad_run(sweep / "0", "knn", KNN, u)
    write_tsb_ad_run(sweep / "1", "iforest", IFOREST, u)
    write_tsb_ad_run(sweep / "2", "pca", {}, u, status="ERROR")
    write_tsb_ad_run(sweep / "3", "knn", {}, {"family": "synthetic"}, status="ERROR")
    return sweep


def test_the_shipped_leaderboards_hold_the_published_means_on_the_eva_lists():
    """The leaderboard's VUS-PR (mean over the Eva list, two decimals as published) and its order."""
    published = {"U": {"Sub-PCA": 0.42, "KShapeAD": 0.40, "POLY": 0.39, "Series2Graph": 0.39, "MOMENT (FT)": 0.39},
                 "M": {"CNN": 0.31, "OmniAnomaly": 0.31, "PCA": 0.31, "LSTMAD": 0.31, "USAD": 0.30}}
    for benchmark, files in (("U", 350), ("M", 180)):
        leaderboard = load_leaderboard(benchmark)
        assert leaderboard.file_list == f"TSB-AD-{benchmark}-Eva"
        assert leaderboard.vus_pr.shape[0] == files and leaderboard.vus_pr.index.is_unique
        assert leaderboard.vus_pr.notna().all().all() and "ts_len" not in leaderboard.methods
        means = leaderboard.vus_pr.mean().sort_values(ascending=False)
        assert list(means.index[:5]) == list(published[benchmark])
        for method, value in published[benchmark].items():
            assert round(means[method], 2) == value, method
    assert {"IForest", "Sub-KNN", "LSTMAD", "USAD", "AutoEncoder"} <= set(load_leaderboard("U").methods)


def test_the_leaderboard_tables_and_tsb_ad_lists_ship_as_package_data():
    """pyproject's package-data patterns name the shipped tables and their attribution (else a wheel lacks them)."""
    pyproject = (ROOT / "pyproject.toml").read_text()
    package_data = {package: re.findall(r'"([^"]+)"', patterns)
                    for package, patterns in re.findall(r'^"([\w.]+)" = \[(.*?)\]', pyproject, re.M)}
    shipped = {path for pattern in package_data["tsad.table"] for path in (ROOT / "tsad" / "table").glob(pattern)}
    folder = ROOT / "tsad" / "table" / "tsb_ad_leaderboard"
    assert shipped == {folder / "uni_vus_pr.csv", folder / "multi_vus_pr.csv", folder / "README.md"}
    assert "tsb_ad_lists/*.csv" in package_data["tsad.data"]


def test_coverage_ranks_and_per_source_means_by_hand(u_runs: Path, monkeypatch):
    monkeypatch.chdir(u_runs)  # runs are named relative to the working folder
    comparison = compare([u_runs])
    assert comparison.coverage == "3 of 350 files of TSB-AD-U-Eva covered"
    assert sorted(comparison.values.index) == sorted(COVERED)
    assert comparison.tsad_rows == ["tsad: knn", "tsad: iforest"]
    assert comparison.notes[0] == "left out 1 run(s) that are not TSB-AD runs"
    assert comparison.notes[1] == "left out 1 TSB-AD run(s) that did not finish OK or have no per_file.csv: 2"
    assert comparison.notes[2].startswith(f"1 file(s) the runs scored are not on the leaderboard (TSB-AD-U-Eva) and "
                                          f"are left out: {TUNING_NAB}")
    assert comparison.notes[3] == f"1 leaderboard file(s) that not every run scored are left out: {YAHOO_2}"

    table = leaderboard_table(comparison)
    assert table["columns"] == ["all", "NAB", "YAHOO"]
    board = load_leaderboard("U").vus_pr
    by_hand = {"tsad: knn": {"all": (0.5 + 0.3 + 0.9) / 3, "NAB": (0.5 + 0.3) / 2, "YAHOO": 0.9},
               "tsad: iforest": {"all": (0.2 + 0.1 + 0.4) / 3, "NAB": (0.2 + 0.1) / 2, "YAHOO": 0.4}}
    for method in board.columns:
        nab_1, nab_2, yahoo_1 = (board.loc[name, method] for name in COVERED)
        by_hand[method] = {"all": (nab_1 + nab_2 + yahoo_1) / 3, "NAB": (nab_1 + nab_2) / 2, "YAHOO": yahoo_1}
    order = sorted(by_hand, key=lambda name: -by_hand[name]["all"])
    assert len(table["rows"]) == len(order) == len(board.columns) + 2
    for row in table["rows"]:
        rank, method = row.split(". ", 1)
        assert int(rank) == 1 + sum(by_hand[other]["all"] > by_hand[method]["all"] for other in by_hand)
        for column, files in (("all", 3), ("NAB", 2), ("YAHOO", 1)):
            cell = table["cells"][row, column]
            assert cell["mean"] == pytest.approx(by_hand[method][column], abs=1e-12) and cell["n"] == files
    assert [row.split(". ", 1)[1] for row in table["rows"]] == order
    assert table["best"]["YAHOO"] == max(values["YAHOO"] for values in by_hand.values())


def test_tsad_table_leaderboard_writes_every_format_beside_the_runs(u_runs: Path):
    result = run_tsad_table([str(u_runs), "--leaderboard"], cwd=u_runs)
    lines = result.stdout.splitlines()
    assert lines[0] == "3 of 350 files of TSB-AD-U-Eva covered"
    warnings = [line for line in lines if line.startswith("warning: ")]
    assert len(warnings) == 4 and TUNING_NAB in warnings[2]
    out = u_runs / "tables"
    assert f"tables in {out.resolve()}" in lines
    for name in ("leaderboard_vus_pr.md", "leaderboard_vus_pr.tex", "leaderboard_vus_pr.csv",
                 "figure_leaderboard_vus_pr.png"):
        assert (out / name).is_file() and f"wrote {out / name}" in lines
    markdown = (out / "leaderboard_vus_pr.md").read_text()
    assert re.search(r"^\| \d+\. tsad: knn \| 0\.567 \(3\) \| 0\.400 \(2\) \| 0\.900 \(1\) \|$", markdown, re.M)
    assert "3 of 350 files of TSB-AD-U-Eva covered" in markdown
    frame = pd.read_csv(out / "leaderboard_vus_pr.csv")
    knn = frame[frame["method"] == "tsad: knn"].set_index("source")
    assert knn["tsad_run"].all() and knn.loc["NAB", "files"] == 2
    assert knn.loc["all", "vus_pr"] == pytest.approx(1.7 / 3)
    sub_pca = frame[frame["method"] == "Sub-PCA"].set_index("source")
    assert not sub_pca["tsad_run"].any() and sub_pca.loc["YAHOO", "vus_pr"] == pytest.approx(0.001678, abs=1e-6)


def test_a_multivariate_run_uses_the_m_leaderboard_and_dataset_benchmark_says_which(tmp_path: Path):
    board = load_leaderboard("M").vus_pr
    names = list(board.index[:2])
    run = write_tsb_ad_run(tmp_path / "run", "pca", dict(zip(names, (0.3, 0.6))), {"family": "tsb_ad",
                                                                                     "benchmark": "M"},
                           sources={name: name.split("_")[1] for name in names})
    result = run_tsad_table([str(run), "--leaderboard", "--format", "md", "--out", str(tmp_path / "t")], cwd=tmp_path)
    assert result.stdout.splitlines()[0] == "2 of 180 files of TSB-AD-M-Eva covered"
    assert "tsad: pca | 0.450 (2)" in result.stdout


@pytest.mark.parametrize("case, message", [
    ("no_tsb_ad", r"no TSB-AD run \(dataset.family tsb_ad_\*\) among the 1 runs under .*leave out --leaderboard"),
    ("mixed", r"runs of TSB-AD-U and TSB-AD-M mixed \(TSB-AD-M: runs/m; TSB-AD-U: runs/u\); .*one benchmark"),
    ("metric", r"--leaderboard compares vus_pr, .*leave out --metric roc_auc"),
    ("best", r"--leaderboard and --best do not go together; give one of them"),
    ("no_common_file", r"no file of TSB-AD-U-Eva was scored by every TSB-AD run under .*dataset.list=TSB-AD-U-Eva\)"),
])
def test_leaderboard_errors_are_one_line_and_write_nothing(tmp_path: Path, case: str, message: str):
    runs = tmp_path / "runs"
    if case == "no_tsb_ad":
        write_tsb_ad_run(runs / "synthetic", "knn", {NAB_1: 0.5}, {"family": "synthetic"})
    elif case == "mixed":
        write_tsb_ad_run(runs / "u", "knn", {NAB_1: 0.5}, {"family": "tsb_ad_u"})
        m_file = load_leaderboard("M").vus_pr.index[0]
        write_tsb_ad_run(runs / "m", "knn", {m_file: 0.5}, {"family": "tsb_ad_m"}, sources={m_file: "Genesis"})
    else:
        write_tsb_ad_run(runs / "a", "knn", {NAB_1: 0.5}, {"family": "tsb_ad_u"})
        write_tsb_ad_run(runs / "b", "knn", {NAB_2: 0.5}, {"family": "tsb_ad_u"})
    extra = {"metric": ["--metric", "roc_auc"], "best": ["--best", "validation.val_loss"]}.get(case, [])
    result = run_tsad_table([str(runs), "--leaderboard", *extra], cwd=tmp_path, check=False)
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert re.fullmatch(f"tsad-table: error: {message}", result.stderr.strip()), result.stderr
    assert not (tmp_path / "tables").exists()
