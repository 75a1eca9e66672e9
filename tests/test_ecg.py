"""ECG5000 and TwoLeadECG on the shared copies: protocol counts, the Seq2GMM subset, and one tsad-run."""

import numpy as np
import pytest
from conftest import SHARED_DATA, read_metrics, run_folders, run_tsad

from tsad.data.registry import dataset_settings
from tsad.errors import UserError

ECG5000 = SHARED_DATA / "ECG5000"
TWOLEAD = SHARED_DATA / "TwoLeadECG"
needs_ecg5000 = pytest.mark.skipif(not (ECG5000 / "ECG5000_TEST.tsv").is_file(),
                                   reason=f"shared ECG5000 copy not found at {ECG5000}")
needs_twolead = pytest.mark.skipif(not (TWOLEAD / "TwoLeadECG_TEST.tsv").is_file(),
                                   reason=f"shared TwoLeadECG copy not found at {TWOLEAD}")


def dataset_config(option: str, **overrides) -> dict:
    """The dataset group `option` as tsad-run composes it (seed 0), with overrides."""
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    with initialize_config_module("tsad.conf", version_base="1.3"):
        config = compose("config", overrides=[f"dataset={option}", "seed=0"])
    return {**OmegaConf.to_container(config.dataset, resolve=True), **overrides}


def build_dataset(config: dict):
    return dataset_settings(config).build()


def rows(data_split) -> list[int]:
    """File row numbers, which the loader keeps in the series names (split_row_classK)."""
    return [int(name.split("_")[-2]) for name in data_split.names]


def seq2gmm_reference_rows(test_file) -> np.ndarray:
    """The test rows of the Seq2GMM reference code, restated: global legacy seed 1, shuffle, first 10%."""
    classes = np.loadtxt(test_file)[:, 0]
    normal, anomalous = np.where(classes == 1)[0], np.where(classes != 1)[0]
    state = np.random.get_state()
    np.random.seed(1)
    np.random.shuffle(anomalous)
    np.random.set_state(state)
    anomalous = anomalous[0:int(len(normal) * 0.1)]
    return np.sort(np.concatenate((normal, anomalous)))


@needs_ecg5000
def test_ecg5000_default_trains_on_normal_beats_and_tests_on_every_row():
    data = build_dataset(dataset_config("ecg5000", root=str(ECG5000)))
    assert (len(data.train), len(data.val), len(data.test)) == (234, 58, 4500)
    assert data.level == "series" and data.n_channels == 1
    assert all(v.shape == (140, 1) for v in data.test.values[:50])
    assert data.train.series_labels.sum() == 0 and data.val.series_labels.sum() == 0
    assert set(rows(data.train)).isdisjoint(rows(data.val)) and len(set(rows(data.train) + rows(data.val))) == 292
    assert data.test.series_labels.sum() == 1590 + 86 + 175 + 22
    assert data.info["test_class_counts"] == {1: 2627, 2: 1590, 3: 86, 4: 175, 5: 22}
    classes = np.array([int(name.rsplit("class", 1)[1]) for name in data.test.names])
    np.testing.assert_array_equal(data.test.series_labels, (classes != 1).astype(int))
    raw = np.loadtxt(ECG5000 / "ECG5000_TEST.tsv", max_rows=3)
    np.testing.assert_allclose(data.test.values[2][:, 0], raw[2, 1:], rtol=1e-6)


@needs_ecg5000
def test_ecg5000_seq2gmm_preset_follows_the_reference_code():
    data = build_dataset(dataset_config("ecg5000_seq2gmm", root=str(ECG5000)))
    assert (len(data.train), len(data.test), int(data.test.series_labels.sum())) == (292, 2627 + 262, 262)
    assert rows(data.val) == rows(data.train), "val_fraction=0 trains on every normal beat"
    assert rows(data.test) == seq2gmm_reference_rows(ECG5000 / "ECG5000_TEST.tsv").tolist()


@needs_ecg5000
def test_ecg5000_anomaly_ratio_and_val_split_are_configurable_and_checked():
    data = build_dataset(dataset_config("ecg5000", root=str(ECG5000), anomaly_ratio=0.5, val_fraction=0.5, seed=3))
    assert int(data.test.series_labels.sum()) == int(0.5 * 2627) and len(data.train) == len(data.val) == 146
    other_seed = build_dataset(dataset_config("ecg5000", root=str(ECG5000), val_fraction=0.5, seed=4))
    assert rows(other_seed.val) != rows(data.val)
    with pytest.raises(UserError, match="asks for 2627 anomalous test beats but ECG5000 has 1873"):
        build_dataset(dataset_config("ecg5000", root=str(ECG5000), anomaly_ratio=1.0))
    with pytest.raises(UserError, match=r"dataset.normal_class must be .* one of the classes \[1, 2, 3, 4, 5\]"):
        build_dataset(dataset_config("ecg5000", root=str(ECG5000), normal_class=9))
    for bad, message in (("first", "normal_class='first' is not allowed"), (0, "normal_class=0 is out of range")):
        with pytest.raises(UserError, match=f"dataset.{message}"):
            dataset_settings(dataset_config("ecg5000", normal_class=bad))


@needs_ecg5000
def test_ecg5000_labelled_val_comes_from_train_beats_and_leaves_test_and_val_alone():
    config = dataset_config("ecg5000", root=str(ECG5000), seed=2)
    without = build_dataset(config)
    data = build_dataset({**config, "labelled_val": 0.2})
    assert without.labelled_val is None and data.info["labelled_val_counts"] == {"normal": 58, "anomalous": 41}
    labelled = data.labelled_val
    assert all(name.startswith("labelled_val_") for name in labelled.names)
    classes = np.array([int(name.rsplit("class", 1)[1]) for name in labelled.names])
    np.testing.assert_array_equal(labelled.series_labels, (classes != 1).astype(int))
    # 58 of the 292 normal TRAIN beats plus anomalous TRAIN beats in the TRAIN file's own mix (208 per 292)
    assert (len(labelled), int(labelled.series_labels.sum())) == (99, round(58 * 208 / 292))
    train_classes = np.loadtxt(ECG5000 / "ECG5000_TRAIN.tsv", usecols=0).astype(int)
    assert (train_classes[rows(labelled)] == classes).all(), "every labelled beat is a TRAIN row"
    raw = np.loadtxt(ECG5000 / "ECG5000_TRAIN.tsv")
    np.testing.assert_allclose(labelled.values[0][:, 0], raw[rows(labelled)[0], 1:], rtol=1e-6)
    # test and val are exactly those without it; train only loses the held-out normal beats
    assert data.test.names == without.test.names and data.val.names == without.val.names
    normal_held_out = {row for row, label in zip(rows(labelled), labelled.series_labels) if label == 0}
    assert set(rows(data.train)) == set(rows(without.train)) - normal_held_out and len(data.train) == 234 - 58
    assert normal_held_out.isdisjoint(rows(data.val))
    other_seed = build_dataset({**config, "labelled_val": 0.2, "seed": 3})
    assert rows(other_seed.labelled_val) != rows(labelled)
    assert len(build_dataset({**config, "labelled_val": 30}).labelled_val) == 30 + round(30 * 208 / 292)


@needs_ecg5000
def test_ecg5000_labelled_val_follows_a_set_anomaly_ratio_and_never_trains_on_its_beats():
    data = build_dataset(dataset_config("ecg5000_seq2gmm", root=str(ECG5000), labelled_val=0.3))
    assert data.info["labelled_val_counts"] == {"normal": 88, "anomalous": int(0.1 * 88)}
    assert rows(data.val) == rows(data.train) and len(data.train) == 292 - 88
    assert set(rows(data.train)).isdisjoint(rows(data.labelled_val))
    assert rows(data.test) == seq2gmm_reference_rows(ECG5000 / "ECG5000_TEST.tsv").tolist()


@needs_ecg5000
def test_ecg5000_train_labelled_anomalies_adds_spare_anomalous_train_beats_with_visible_labels():
    config = dataset_config("ecg5000", root=str(ECG5000), labelled_val=0.3, seed=1)
    without = build_dataset(config)
    data = build_dataset({**config, "train_labelled_anomalies": 0.5})
    spare = 208 - data.info["labelled_val_counts"]["anomalous"]
    added = [row for row, seen in zip(rows(data.train), data.train.labelled) if seen]
    assert data.info["train_labelled_anomalies"] == len(added) == round(0.5 * spare)
    assert set(rows(data.train)) - set(added) == set(rows(without.train)), "the normal train beats stay"
    assert set(added).isdisjoint(rows(data.labelled_val)), "no validation beat trains"
    assert (data.train.visible_series_labels() == np.where(data.train.labelled, 1, -1)).all()
    assert data.test.names == without.test.names and data.val.names == without.val.names
    assert without.train.labelled is None
    everything = build_dataset({**dataset_config("ecg5000", root=str(ECG5000)), "train_labelled_anomalies": 1})
    assert int(everything.train.labelled.sum()) == 208
    for bad in (-0.1, 1.5, "all"):
        with pytest.raises(UserError, match=f"dataset.train_labelled_anomalies={bad}"):
            dataset_settings({**config, "train_labelled_anomalies": bad})


@needs_ecg5000
@needs_twolead
def test_labelled_val_is_checked():
    for bad, shown in ((-1, "-1"), (1.5, "1.5"), (True, "true"), ("some", "some")):
        with pytest.raises(UserError, match=f"dataset.labelled_val={shown}"):
            dataset_settings(dataset_config("ecg5000", root=str(ECG5000), labelled_val=bad))
    with pytest.raises(UserError, match="leaves none to train on"):
        build_dataset(dataset_config("ecg5000", root=str(ECG5000), labelled_val=0.8))
    # 12 normal TRAIN beats at 0.1 anomalies per normal beat: too few for even one anomaly
    with pytest.raises(UserError, match="asks for 0 anomalous train beats"):
        build_dataset(dataset_config("twoleadecg", root=str(TWOLEAD), labelled_val=6))


@needs_twolead
def test_twoleadecg_follows_the_seq2gmm_protocol():
    data = build_dataset(dataset_config("twoleadecg", root=str(TWOLEAD)))
    assert data.info["normal_class"] == 1
    assert len(data.train) == 12 and data.train.series_labels.sum() == 0
    assert all(v.shape == (82, 1) for v in data.train.values)
    assert (len(data.test), int(data.test.series_labels.sum())) == (625, 56)
    assert rows(data.test) == seq2gmm_reference_rows(TWOLEAD / "TwoLeadECG_TEST.tsv").tolist()


def test_missing_root_files_name_the_fix(tmp_path):
    with pytest.raises(UserError, match=r"dataset.root=.*lacks TwoLeadECG_TRAIN.tsv"):
        build_dataset({"family": "twoleadecg", "root": str(tmp_path)})


@needs_ecg5000
def test_tsad_run_iforest_on_ecg5000(tmp_path):
    # window = the whole beat and few trees keep the run to a few seconds
    run_tsad(["model=iforest", "dataset=ecg5000", f"dataset.root={ECG5000}", "plots=false",
              "model.window=140", "model.n_estimators=10", "dataset.labelled_val=0.2"], tmp_path)
    (folder,) = run_folders(tmp_path)
    metrics = read_metrics(folder)
    assert metrics["status"] == "OK" and metrics["data"]["n_test"] == 4500
    assert metrics["metrics"]["series"]["roc_auc"] > 0.8
    assert metrics["validation"]["labelled_val"]["series"]["roc_auc"] > 0.8
