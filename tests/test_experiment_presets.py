"""Presets (tsad/conf/experiment/, tsad/conf/hparams_search/): each passes tsad-run's door, and the one-run presets
run end to end on small copies of the data they are made for (a NAB-format corpus, a UCR-format ECG5000)."""

from pathlib import Path

import numpy as np
import pytest
from conftest import read_metrics, run_folders, run_tsad
from hydra import compose, initialize_config_module

import tsad.conf
from tsad.cli import check_command_line

CONF = Path(tsad.conf.__file__).parent
RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results.md"


def presets(group: str) -> list[str]:
    return sorted(path.stem for path in (CONF / group).glob("*.yaml"))


@pytest.fixture(scope="module")
def ecg_mini(tmp_path_factory) -> Path:
    """ECG5000_TRAIN.tsv and ECG5000_TEST.tsv as UCR writes them (class, then the 140 values of one beat): class 1
    a smooth beat, classes 2-5 a beat whose peak is displaced, flattened or doubled."""
    rng = np.random.default_rng(0)
    t = np.linspace(0, 1, 140)

    def beat(label: int) -> np.ndarray:
        peak = {1: 0.3, 2: 0.6, 3: 0.3, 4: 0.3, 5: 0.3}[label]
        height = {1: 3.0, 2: 3.0, 3: 0.5, 4: 3.0, 5: 3.0}[label]
        wave = np.sin(2 * np.pi * t) + height * np.exp(-((t - peak) / 0.03) ** 2)
        if label == 4:
            wave += height * np.exp(-((t - 0.7) / 0.03) ** 2)
        if label == 5:
            wave = -wave
        return wave + 0.05 * rng.normal(size=140)

    root = tmp_path_factory.mktemp("ecg_mini")
    for part, labels in (("TRAIN", [1] * 60 + [2, 3, 4, 5] * 3), ("TEST", [1] * 40 + [2, 3, 4, 5] * 5)):
        rows = [[label, *np.round(beat(label), 4)] for label in rng.permutation(labels)]
        (root / f"ECG5000_{part}.tsv").write_text("\n".join("\t".join(map(str, row)) for row in rows) + "\n")
    return root


def roots(nab: Path, ecg: Path) -> dict[str, list[str]]:
    return {"nab": [f"dataset.root={nab}"], "ecg5000": [f"dataset.root={ecg}"]}


@pytest.mark.parametrize("preset", presets("experiment"))
def test_every_experiment_preset_passes_the_door(preset, nab_mini, ecg_mini):
    check_command_line([f"experiment={preset}", *roots(nab_mini, ecg_mini).get(preset, [])])


@pytest.mark.parametrize("preset", presets("hparams_search"))
def test_every_search_preset_passes_the_door_with_the_labelled_split_it_scores_on(preset):
    check_command_line([f"+hparams_search={preset}", "dataset.labelled_val=0.3"])


def test_the_nab_preset_runs_online_on_a_nab_corpus_and_reports_its_scores(nab_mini, tmp_path):
    result = run_tsad(["experiment=nab", f"dataset.root={nab_mini}"], tmp_path)
    (folder,) = run_folders(tmp_path)
    record = read_metrics(folder)
    assert record["status"] == "OK" and record["level"] == "point" and record["data"]["n_files"] == 3
    label_free, oracle = record["nab_label_free"], record["oracle_nab"]
    assert set(label_free) == set(oracle) and "standard" in label_free
    assert all(np.isfinite(score) and score <= 100 for score in [*label_free.values(), *oracle.values()])
    assert label_free["standard"] <= oracle["standard"], "no threshold beats the one chosen on the labels"
    assert label_free["standard"] > 0, "the spike and the glitch are found: better than no alarm at all"
    assert record["headline"]["nab_label_free_standard"] == label_free["standard"]
    assert f"nab_label_free_standard={label_free['standard']:.4f}" in result.stdout
    results = folder / "nab_results"
    assert len(list(results.rglob("*.csv"))) == 3, "one scored file per corpus file, as NAB's scorer reads them"
    assert (folder / "plots" / "oracle_nab_examples.png").is_file()


def test_the_ecg5000_preset_runs_on_ucr_files_and_tells_the_beat_classes_apart(ecg_mini, tmp_path):
    run_tsad(["experiment=ecg5000", f"dataset.root={ecg_mini}", "plots=false"], tmp_path)
    (folder,) = run_folders(tmp_path)
    record = read_metrics(folder)
    assert record["status"] == "OK" and record["level"] == "series"
    assert record["data"]["test_class_counts"] == {"1": 40, "2": 5, "3": 5, "4": 5, "5": 5}, \
        "every beat of the test file is scored, class 1 the normal one"
    assert record["data"]["n_train"] == 60, "every normal TRAIN beat trains"
    assert record["metrics"]["series"]["roc_auc"] > 0.9


def test_a_preset_setting_can_still_be_overridden():
    with initialize_config_module("tsad.conf", version_base="1.3"):
        cfg = compose("config", overrides=["experiment=ecg5000", "seed=2", "model.n_components=8"])
    assert cfg.seed == 2 and cfg.model.n_components == 8 and cfg.dataset.seed == 2


@pytest.mark.parametrize("preset", ["nab", "ecg5000"])
def test_the_results_page_gives_the_command_of_each_one_run_preset(preset):
    assert f"tsad-run experiment={preset} dataset.root=" in RESULTS.read_text()
