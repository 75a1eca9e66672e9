"""The one-class protocol: every class the normal class in turn, on UCR-format files, and the series_nn detector."""

import numpy as np
import pandas as pd
import pytest
from conftest import read_metrics, run_folders, run_tsad
from scipy.stats import wasserstein_distance
from sklearn.metrics import roc_auc_score

from tsad.data.registry import dataset_settings
from tsad.data.series import SeriesSet
from tsad.errors import UserError
from tsad.models.base import Detector, build_detector

LENGTH = 24
TRAIN_COUNTS = {1: 5, 2: 4, 3: 3}
TEST_COUNTS = {1: 6, 2: 7, 3: 8}


def beat(label: int, rng) -> np.ndarray:
    t = np.linspace(0, 1, LENGTH)
    shape = {1: np.sin(2 * np.pi * t), 2: np.sign(np.sin(2 * np.pi * t)), 3: 2 * t - 1}[label]
    return shape + 0.1 * rng.normal(size=LENGTH)


@pytest.fixture(scope="module")
def ucr_files(tmp_path_factory):
    """TwoLeadECG_{TRAIN,TEST}.tsv as UCR writes them (class, then the values), with three classes, shuffled.
    Returns the folder and each file's classes in file order."""
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("ucr")
    classes = {}
    for part, counts in (("TRAIN", TRAIN_COUNTS), ("TEST", TEST_COUNTS)):
        labels = rng.permutation([label for label, count in counts.items() for _ in range(count)])
        rows = [[label, *np.round(beat(label, rng), 5)] for label in labels]
        (root / f"TwoLeadECG_{part}.tsv").write_text("\n".join("\t".join(map(str, row)) for row in rows) + "\n")
        classes[part] = labels
    return root, classes


def one_class_settings(root, **overrides):
    return dataset_settings({"family": "twoleadecg", "root": str(root), "protocol": "one_class", **overrides})


def file_rows(series: SeriesSet) -> list[int]:
    return [int(name.split("_")[1]) for name in series.names]


def test_each_class_trains_on_its_train_rows_and_tests_on_every_test_row(ucr_files):
    root, classes = ucr_files
    tasks = one_class_settings(root).one_class_tasks()
    assert [task.normal_class for task in tasks] == [1, 2, 3]
    for task in tasks:
        c = task.normal_class
        assert len(task.train) == TRAIN_COUNTS[c] and task.train.series_labels.sum() == 0
        assert file_rows(task.train) == np.flatnonzero(classes["TRAIN"] == c).tolist()
        assert file_rows(task.other_train) == np.flatnonzero(classes["TRAIN"] != c).tolist()
        assert task.other_train.series_labels.tolist() == [1] * (sum(TRAIN_COUNTS.values()) - TRAIN_COUNTS[c])
        assert file_rows(task.test) == list(range(sum(TEST_COUNTS.values())))
        assert task.test.series_labels.tolist() == (classes["TEST"] != c).astype(int).tolist()
        assert int((task.test.series_labels == 0).sum()) == TEST_COUNTS[c]
        assert all(values.shape == (LENGTH, 1) for values in task.test.values)


def test_offline_only_keys_are_refused_under_the_one_class_protocol(ucr_files):
    root, _ = ucr_files
    for key, value in (("anomaly_ratio", 0.5), ("normal_class", 2), ("labelled_val", 3), ("val_fraction", 0.2)):
        with pytest.raises(UserError, match=f"dataset.{key}={value} applies to the offline protocol only"):
            one_class_settings(root, **{key: value})
    one_class_settings(root, seed=4, normalise="none")   # keys the protocol uses, or that seed nothing in it


def nearest_wasserstein2(train: list[np.ndarray], scored: list[np.ndarray]) -> np.ndarray:
    return np.array([min(np.sqrt(np.mean((np.sort(s) - np.sort(t)) ** 2)) for t in train) for s in scored])


def test_series_nn_is_the_distance_to_the_nearest_train_series_under_scipys_wasserstein():
    assert wasserstein_distance([0, 1, 3], [5, 6, 8]) == 5.0   # the hand case: every value moves by 5
    detector = build_detector("series_nn", normalise="none").fit(SeriesSet([np.array([0.0, 1, 3]),
                                                                             np.array([3.0, 0, 1, 9])]))
    scores = detector.score(SeriesSet([np.array([8.0, 5, 6]), np.array([1.0, 3, 0])]))
    np.testing.assert_allclose(scores.series, [min(5.0, wasserstein_distance([8, 5, 6], [3, 0, 1, 9])), 0.0])
    assert [steps.tolist() for steps in scores.steps] == [[scores.series[0]] * 3, [0.0] * 3]

    rng = np.random.default_rng(1)
    train = [rng.normal(size=(n, 2)).astype(np.float32) for n in (30, 30, 41)]   # as SeriesSet holds them
    scored = [rng.normal(loc=1.0, size=(n, 2)).astype(np.float32) for n in (30, 41, 17)]
    for compare, transform in (("values", lambda x: x), ("differences", lambda x: np.diff(x, axis=0))):
        fitted = build_detector("series_nn", {"compare": compare}, normalise="none").fit(SeriesSet(train))
        # a pair's distance is the sum of its channels' distances; the score is the smallest over train series
        pairs = np.array([[sum(wasserstein_distance(transform(s)[:, c], transform(t)[:, c]) for c in range(2))
                           for t in train] for s in scored])
        np.testing.assert_allclose(fitted.score(SeriesSet(scored)).series, pairs.min(axis=1), rtol=1e-9)
        left_out = np.array([[np.inf if i == j else sum(wasserstein_distance(transform(a)[:, c], transform(b)[:, c])
                                                         for c in range(2)) for j, b in enumerate(train)]
                             for i, a in enumerate(train)]).min(axis=1)
        np.testing.assert_allclose(fitted.score_train(SeriesSet(train)).series, left_out, rtol=1e-9)


def test_series_nn_kth_and_mean_of_the_k_nearest_with_fewer_than_k_counting_them_all():
    train = SeriesSet([np.full(4, value) for value in (0.0, 1.0, 3.0, 7.0)])   # each series one repeated value
    scored = SeriesSet([np.full(4, 2.0)])                                       # at 2, 1, 1, 5 from them
    for k, neighbours, expected, left_out in (
            (1, "kth", 1.0, [1, 1, 2, 4]),
            (2, "kth", 1.0, [3, 2, 3, 6]),
            (3, "kth", 2.0, [7, 6, 4, 7]),
            (3, "mean", 4 / 3, [11 / 3, 3, 3, 17 / 3]),
            (9, "kth", 5.0, [7, 6, 4, 7]),          # only 4 training series (3 when one is left out)
            (9, "mean", 9 / 4, [11 / 3, 3, 3, 17 / 3])):
        detector = build_detector("series_nn", {"k": k, "neighbours": neighbours}, normalise="none").fit(train)
        assert detector.score(scored).series.tolist() == pytest.approx([expected])
        assert detector.score_train(train).series.tolist() == pytest.approx(left_out)


def test_series_nn_wasserstein2_is_the_root_mean_squared_gap_between_quantile_functions():
    moved = build_detector("series_nn", {"distance": "wasserstein2"}, normalise="none")
    moved.fit(SeriesSet([np.array([0.0, 1, 3])]))
    assert moved.score(SeriesSet([np.array([8.0, 5, 6])])).series[0] == pytest.approx(5.0)   # every value moved by 5
    steps = build_detector("series_nn", {"distance": "wasserstein2"}, normalise="none")
    steps.fit(SeriesSet([np.array([0.0, 3, 0, 3])]))
    # [1, 0]'s quantile function is 0 then 1, [0, 3, 0, 3]'s 0 then 3: a gap of 2 over half the grid
    np.testing.assert_allclose(steps.score(SeriesSet([np.array([1.0, 0]), np.array([3.0, 0])])).series,
                               [np.sqrt(0.5 * 2 ** 2), 0.0])
    rng = np.random.default_rng(2)
    train, scored = [rng.normal(size=n) for n in (30, 41)], [rng.normal(size=n) for n in (30, 17)]
    fitted = build_detector("series_nn", {"distance": "wasserstein2"}, normalise="none").fit(SeriesSet(train))
    grid = (np.arange(100_000) + 0.5) / 100_000      # the quantile functions, sampled finely
    quantiles = [np.quantile(x, grid, method="inverted_cdf") for x in (*train, *scored)]
    expected = [min(np.sqrt(np.mean((quantiles[2 + i] - quantiles[j]) ** 2)) for j in range(2)) for i in range(2)]
    np.testing.assert_allclose(fitted.score(SeriesSet(scored)).series, expected, rtol=1e-4)


def test_series_nn_both_sums_the_value_and_difference_distances_each_over_its_median_nearest_distance():
    rng = np.random.default_rng(3)
    train = [rng.normal(size=20) * scale for scale in (1, 2, 3, 5)]
    scored = [rng.normal(size=20), rng.normal(size=33)]
    detector = build_detector("series_nn", {"compare": "both"}, normalise="none").fit(SeriesSet(train))

    def pairs(transform, rows, columns):
        return np.array([[wasserstein_distance(transform(a), transform(b)) for b in columns] for a in rows])

    total = 0
    for transform in (lambda x: x, np.diff):
        among_train = pairs(transform, train, train) + np.diag([np.inf] * 4)
        total = total + pairs(transform, scored, train) / np.median(among_train.min(axis=1))
    np.testing.assert_allclose(detector.score(SeriesSet(scored)).series, total.min(axis=1), rtol=1e-6)  # float32
    with pytest.raises(UserError, match="model.compare=both scales each distance by the median distance"):
        build_detector("series_nn", {"compare": "both"}).fit(SeriesSet(train[:1]))


def test_series_nn_saves_its_sorted_series_and_refuses_a_damaged_file(tmp_path):
    train = SeriesSet([np.arange(5.0), np.array([2.0, 1, 0, 4, 3, 7])])
    detector = build_detector("series_nn").fit(train)
    detector.save(tmp_path)
    test = SeriesSet([np.array([9.0, 1, 2]), np.arange(5.0)])
    np.testing.assert_array_equal(Detector.load(tmp_path).score(test).series, detector.score(test).series)
    np.savez(tmp_path / "state.npz", model=np.array("series_nn"), lengths=np.array([5, 7]), values=np.zeros((11, 1)))
    with pytest.raises(UserError, match="state.npz holds 11 sorted values that series of lengths"):
        Detector.load(tmp_path)
    np.savez(tmp_path / "state.npz", model=np.array("series_nn"), lengths=np.array([5, 6]),   # as saved before
             values=np.concatenate(detector.remembered["values"]))                         # scales existed
    np.testing.assert_array_equal(Detector.load(tmp_path).score(test).series, detector.score(test).series)

    for params in ({"compare": "both", "k": 2, "neighbours": "mean"}, {"distance": "wasserstein2"}):
        detector = build_detector("series_nn", params).fit(train)
        detector.save(tmp_path / "more")
        np.testing.assert_array_equal(Detector.load(tmp_path / "more").score(test).series, detector.score(test).series)


def test_the_preset_runs_every_class_and_its_mean_is_the_mean_of_the_class_roc_aucs(ucr_files, tmp_path):
    root, classes = ucr_files
    result = run_tsad(["experiment=twoleadecg_occ", f"dataset.root={root}", "plots=false"], tmp_path)
    (folder,) = run_folders(tmp_path)
    record = read_metrics(folder)
    assert record["status"] == "OK" and record["model"] == "series_nn"
    assert list(record["headline"])[0] == "one_class_roc_auc_mean"

    per_file = pd.read_csv(folder / "per_file.csv")
    assert list(per_file.columns) == ["class", "train_rows", "test_normal", "test_anomalous", "roc_auc", "pr_auc",
                                      "train_roc_auc", "fit_seconds", "score_seconds"]
    assert per_file["class"].tolist() == [1, 2, 3]
    assert per_file["train_rows"].tolist() == list(TRAIN_COUNTS.values())
    assert per_file["test_normal"].tolist() == list(TEST_COUNTS.values())
    assert (per_file["test_normal"] + per_file["test_anomalous"] == sum(TEST_COUNTS.values())).all()

    # independently: the raw files, the preset's 2-Wasserstein (equal lengths: sorted values), sklearn's ROC-AUC
    train = np.loadtxt(root / "TwoLeadECG_TRAIN.tsv")
    test = np.loadtxt(root / "TwoLeadECG_TEST.tsv")
    expected = []
    for c in (1, 2, 3):
        scores = nearest_wasserstein2(list(train[train[:, 0] == c, 1:]), list(test[:, 1:]))
        expected.append(roc_auc_score(test[:, 0] != c, scores))
    np.testing.assert_allclose(per_file["roc_auc"], expected, rtol=1e-6)
    assert record["headline"]["one_class_roc_auc_mean"] == pytest.approx(np.mean(expected), rel=1e-6)
    assert record["metrics"]["series"]["per_class"]["2"]["roc_auc"] == pytest.approx(expected[1], rel=1e-6)
    assert 0 <= record["validation"]["one_class_train_roc_auc_mean"] <= 1
    assert f"one_class_roc_auc_mean={record['headline']['one_class_roc_auc_mean']:.4f}" in result.stdout
    for c in (1, 2, 3):
        assert (folder / "model" / f"class{c}" / "state.npz").is_file()
        assert len(pd.read_csv(folder / "scores" / f"test_class{c}_series.csv")) == sum(TEST_COUNTS.values())


def test_the_ecg5000_preset_scores_the_mean_distance_to_the_two_nearest_train_series(ucr_files, tmp_path):
    root, _ = ucr_files
    ecg5000 = tmp_path / "ECG5000"
    ecg5000.mkdir()
    for part in ("TRAIN", "TEST"):
        (ecg5000 / f"ECG5000_{part}.tsv").write_text((root / f"TwoLeadECG_{part}.tsv").read_text())
    (tmp_path / "runs").mkdir()
    run_tsad(["experiment=ecg5000_occ", f"dataset.root={ecg5000}", "plots=false"], tmp_path / "runs")
    (folder,) = run_folders(tmp_path / "runs")
    train, test = np.loadtxt(ecg5000 / "ECG5000_TRAIN.tsv"), np.loadtxt(ecg5000 / "ECG5000_TEST.tsv")
    for c in (1, 2, 3):
        normal = train[train[:, 0] == c, 1:]
        distances = np.array([[wasserstein_distance(s, t) for t in normal] for s in test[:, 1:]])
        scores = pd.read_csv(folder / "scores" / f"test_class{c}_series.csv")["score"]
        # the dataset's standard normaliser divides every value, so every distance, by the class's TRAIN std
        np.testing.assert_allclose(scores, np.sort(distances, axis=1)[:, :2].mean(axis=1) / normal.std(), rtol=1e-5)


def test_a_detector_without_out_of_sample_train_scores_still_runs_with_a_null_train_check(ucr_files, tmp_path):
    root, _ = ucr_files
    run_tsad(["model=iforest", "model.window=24", "model.n_estimators=5", "dataset=twoleadecg",
              "dataset.protocol=one_class", f"dataset.root={root}", "plots=false"], tmp_path)
    record = read_metrics(run_folders(tmp_path)[0])
    assert record["status"] == "OK" and 0 <= record["headline"]["one_class_roc_auc_mean"] <= 1
    assert record["validation"]["one_class_train_roc_auc_mean"] is None
    assert {entry["code"] for entry in record["warnings"]} == {"one_class_validation"}


@pytest.mark.parametrize("args, message", [
    (["dataset=nab", "dataset.protocol=one_class"], "dataset.protocol=one_class is not allowed: choose one of nab"),
    (["dataset=synthetic", "+dataset.protocol=one_class"],
     "dataset.protocol=one_class is not allowed: choose one of offline"),
    (["experiment=twoleadecg_occ", "dataset.anomaly_ratio=0.5"],
     "dataset.anomaly_ratio=0.5 applies to the offline protocol only"),
])
def test_bad_one_class_input_is_one_line_before_any_work(args, message, tmp_path):
    result = run_tsad(args, tmp_path, check=False)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.rglob("metrics.json"))
