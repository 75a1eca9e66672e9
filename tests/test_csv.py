"""The csv family: layouts, splits, labels, NaN policies, and one-line errors through tsad-run."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import build_csv, read_metrics, run_folders, run_tsad, sensor_frame, write_csv

from tsad.errors import UserError

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "my_sensor.csv"




def series_folder(folder: Path, n: int = 20, labels=None, split_column: bool = False, label_file: bool = True) -> Path:
    """n short series a_00.csv ... with every fourth one anomalous, and labels.csv listing them."""
    labels = [int(i % 4 == 3) for i in range(n)] if labels is None else labels
    for i in range(n):
        frame = sensor_frame(40, seed=i, anomalies=((10, 20),) if labels[i] == 1 else ())
        write_csv(frame.drop(columns=["label"]), folder / f"s_{i:02d}.csv")
    table = pd.DataFrame({"file": [f"s_{i:02d}.csv" for i in range(n)], "label": labels})
    if split_column:
        table["split"] = ["train"] * (n - 8) + ["val"] * 3 + ["test"] * 5
    if label_file:
        write_csv(table, folder / "labels.csv")
    return folder


def test_point_file_is_split_in_time_with_default_columns(tmp_path):
    frame = sensor_frame(300)
    data = build_csv(path=str(write_csv(frame, tmp_path / "m.csv")))
    assert data.level == "point" and data.info["columns"] == ["a", "b"], "timestamp, text and label are not values"
    assert [len(s.values[0]) for s in (data.train, data.val, data.test)] == [180, 60, 60]
    np.testing.assert_allclose(data.test.values[0][:, 0], frame["a"].to_numpy()[240:], rtol=1e-6)
    np.testing.assert_array_equal(data.test.step_labels[0], frame["label"].to_numpy()[240:])
    assert list(data.test.timestamps[0][:2]) == list(frame["timestamp"][240:242]), "rows keep file order"
    assert data.test.names == ["m"]


def test_point_folder_gives_one_series_per_file_and_labels_are_only_needed_on_test(tmp_path):
    for i in range(3):
        frame = sensor_frame(200, seed=i)
        frame["label"] = frame["label"].astype(float)
        frame.loc[:50, "label"] = np.nan  # unlabelled train rows
        write_csv(frame, tmp_path / "plant" / f"unit{i}.csv")
    data = build_csv(path=str(tmp_path / "plant"), split=[0.5, 0.25, 0.25], value_columns=["a"])
    assert len(data.train) == len(data.val) == len(data.test) == 3 and data.n_channels == 1
    assert data.train.step_labels is None and data.val.step_labels is not None
    assert data.test.names == ["unit0", "unit1", "unit2"]


@pytest.mark.parametrize("policy", ["interpolate", "drop"])
def test_nan_policies(tmp_path, policy):
    frame = sensor_frame(100)
    frame.loc[10, "a"], frame.loc[11, "a"], frame.loc[30, "b"] = np.nan, np.inf, np.nan
    data = build_csv(path=str(write_csv(frame, tmp_path / "gaps.csv")), nan_policy=policy, split=[0.5, 0.3, 0.2])
    train = data.train.values[0]
    assert np.isfinite(train).all()
    if policy == "interpolate":
        assert len(train) == 50
        np.testing.assert_allclose(train[10:12, 0],
                                   frame["a"][9] + (frame["a"][12] - frame["a"][9]) * np.array([1, 2]) / 3,
                                   rtol=1e-5)
    else:
        assert len(train) + len(data.val.values[0]) + len(data.test.values[0]) == 97


def test_interpolation_fills_each_split_part_from_its_own_rows_only(tmp_path):
    """Gaps at the end of train are filled from train rows, never from the val/test rows after the cut."""
    frame = sensor_frame(100)
    frame.loc[45:49, "a"] = np.nan  # the last five train rows (split 0.5 / 0.3 / 0.2)
    frame.loc[80, "b"] = np.nan  # the first test row
    first = build_csv(path=str(write_csv(frame, tmp_path / "one.csv")), nan_policy="interpolate", split=[0.5, 0.3, 0.2])
    changed = frame.copy()
    changed.loc[50:, ["a", "b"]] += 100.0  # other val/test values
    second = build_csv(path=str(write_csv(changed, tmp_path / "two.csv")), nan_policy="interpolate",
                       split=[0.5, 0.3, 0.2])
    np.testing.assert_array_equal(first.train.values[0], second.train.values[0])
    np.testing.assert_allclose(first.train.values[0][45:, 0], frame["a"][44], rtol=1e-6), "held at the last train value"
    np.testing.assert_allclose(first.test.values[0][0, 1], frame["b"][81],
                               rtol=1e-6), "test starts at its own next value"
    gap = frame.copy()
    gap.loc[80:, "b"] = np.nan  # a whole part without a value in one column
    with pytest.raises(UserError, match="the test part has no finite value in column 'b'"):
        build_csv(path=str(write_csv(gap, tmp_path / "gap.csv")), nan_policy="interpolate", split=[0.5, 0.3, 0.2])


def test_series_folder_with_label_file_drops_train_anomalies_by_default(tmp_path):
    folder = series_folder(tmp_path / "beats")
    data = build_csv(path=str(folder), level="series", series_labels="labels.csv", seed=1)
    assert data.level == "series"
    assert data.train.series_labels.sum() == 0 and data.val.series_labels.sum() == 0
    assert len(data.test) == 4 and "labels" not in data.train.names + data.val.names + data.test.names
    all_names = data.train.names + data.val.names + data.test.names
    assert len(all_names) == len(set(all_names)) == 15 + data.test.series_labels.sum(), (
        "5 anomalies, train/val ones dropped")
    keep = build_csv(path=str(folder), level="series", series_labels="labels.csv", seed=1, train_anomalies="keep")
    labelled = build_csv(path=str(folder), level="series", series_labels="labels.csv", seed=1,
                         train_anomalies="labelled")
    assert len(keep.train) == 12 and keep.train.series_labels.sum() > 0
    assert (keep.train.visible_series_labels() == -1).all()
    np.testing.assert_array_equal(labelled.train.visible_series_labels(), labelled.train.series_labels)
    assert keep.test.names == data.test.names, "the split depends on the seed only"


def test_series_split_column_and_labels_from_a_label_column(tmp_path):
    folder = series_folder(tmp_path / "fixed", split_column=True)
    data = build_csv(path=str(folder), level="series", series_labels=str(folder / "labels.csv"))
    assert data.test.names == [f"s_{i:02d}" for i in range(15, 20)]
    assert data.test.series_labels.tolist() == [1, 0, 0, 0, 1]
    for i in range(12):
        frame = sensor_frame(40, seed=i, anomalies=((5, 9),) if i % 3 == 0 else ())
        write_csv(frame, tmp_path / "labelled" / f"u{i}.csv")
    data = build_csv(path=str(tmp_path / "labelled"), level="series", split=[0.5, 0.25, 0.25], train_anomalies="keep")
    assert data.test.step_labels is not None
    np.testing.assert_array_equal(data.test.series_labels, [int(y.any()) for y in data.test.step_labels])


@pytest.mark.parametrize("setup, message", [
    (lambda d: {"path": str(d / "nope.csv")}, "does not exist"),
    (lambda d: {}, "needs a file or folder"),
    (lambda d: {"path": str(write_csv(sensor_frame()[["timestamp", "note"]], d / "t.csv"))}, "no numeric value column"),
    (lambda d: {"path": str(write_csv(sensor_frame(), d / "v.csv")), "value_columns": ["a", "zz"]}, "missing columns"),
    (lambda d: {"path": str(write_csv(sensor_frame(), d / "v.csv")), "value_columns": ["note"]}, "not numeric"),
    (lambda d: {"path": str(write_csv(sensor_frame(), d / "v.csv")), "label_column": "flag"}, "is not a column"),
    (lambda d: {"path": str(write_csv(sensor_frame(), d / "v.csv")), "split": [0.5, 0.5]}, "split=.* needs 3 values"),
    (lambda d: {"path": str(write_csv(sensor_frame(), d / "v.csv")), "split": [0.5, 0.3, 0.3]}, "must sum to 1"),
    (lambda d: {"path": str(write_csv(sensor_frame(), d / "v.csv")), "split": [0.8, 0.2, 0]},
     "dataset.split=.* out of"),
    (lambda d: {"path": str(write_csv(sensor_frame(), d / "v.csv")), "nan_policy": "zero"},
     "dataset.nan_policy=zero is not allowed: choose one of error, interpolate, drop"),
    (lambda d: {"path": str(write_csv(sensor_frame().assign(label=np.r_[[0] * 299, [np.nan]]), d / "v.csv"))},
     "test rows .* have no label"),
    (lambda d: {"path": str(write_csv(sensor_frame().assign(label="yes"), d / "v.csv"))}, "must hold 0 .* found yes"),
    (lambda d: {"path": str(d), "level": "series"}, "holds no .csv files"),
    (lambda d: {"path": str(series_folder(d / "s", label_file=False)), "level": "series"}, "needs labels"),
    (lambda d: {"path": str(series_folder(d / "s")), "level": "series"}, "looks like a series-label file"),
    (lambda d: {"path": str(write_csv(sensor_frame(), d / "v.csv")), "level": "series"}, "needs a folder"),
    (lambda d: {"path": str(series_folder(d / "s", n=4, labels=[1] * 4)), "level": "series",
                "series_labels": "labels.csv"},
     "no series left for"),
    (lambda d: {"path": str(series_folder(d / "s")), "level": "series", "series_labels": "other.csv"}, "not found"),
])
def test_every_validation_error_is_one_line(tmp_path, setup, message):
    with pytest.raises(UserError, match=message) as error:
        build_csv(**setup(tmp_path))
    assert "\n" not in str(error.value)


def error_cases(folder: Path) -> dict[str, tuple[list[str], str]]:
    """name: (tsad-run dataset arguments, expected words in the one-line error)."""
    nan = sensor_frame()
    nan.loc[7, "b"] = np.nan
    mismatch = series_folder(folder / "mismatch")
    (mismatch / "s_03.csv").unlink()
    non_binary = series_folder(folder / "nonbinary", labels=[0, 1, 2, 0] * 5)
    return {
        "missing file": ([f"dataset.path={folder / 'absent.csv'}"], "does not exist"),
        "no numeric column": ([f"dataset.path={write_csv(sensor_frame()[['note']], folder / 'text.csv')}"],
                              "no numeric value column"),
        "nan values": ([f"dataset.path={write_csv(nan, folder / 'nan.csv')}"],
                       "1 NaN/inf values (first in column 'b' at line 9)"),
        "shorter than window": ([f"dataset.path={write_csv(sensor_frame(120), folder / 'short.csv')}", "model=iforest",
                                 "model.window=64"], "24 steps, fewer than dataset.min_length=64"),
        "label mismatch": ([f"dataset.path={mismatch}", "dataset.level=series", "dataset.series_labels=labels.csv"],
                           "20 labels for 19 series files (labels for missing files s_03)"),
        "non-binary labels": ([f"dataset.path={non_binary}", "dataset.level=series",
                               "dataset.series_labels=labels.csv"],
                              "labels must be 0 (normal) or 1 (anomaly), found 2"),
    }


@pytest.fixture(scope="module")
def cli_results(tmp_path_factory):
    """Every error case and one good run of the worked example, as tsad-run runs them."""
    folder = tmp_path_factory.mktemp("csv_cli")
    cases = error_cases(folder)
    jobs = {name: ["model=random", "dataset=csv", *arguments] for name, (arguments, _) in cases.items()}
    jobs["example"] = ["model=zscore", "dataset=csv", f"dataset.path={EXAMPLE}", "plots=false"]
    results = {}
    for name, args in jobs.items():
        (folder / name.replace(" ", "_")).mkdir()
        results[name] = run_tsad(args, folder / name.replace(" ", "_"), check=False)
    return results, cases, folder


@pytest.mark.parametrize("case", ["missing file", "no numeric column", "nan values", "shorter than window",
                                  "label mismatch", "non-binary labels"])
def test_tsad_run_reports_each_data_error_in_one_line(cli_results, case):
    results, cases, _ = cli_results
    result, expected = results[case], cases[case][1]
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tsad-run: error: "), result.stderr
    assert expected in lines[0] and "Traceback" not in result.stderr + result.stdout


def test_tsad_run_on_the_worked_example(cli_results):
    results, _, folder = cli_results
    assert results["example"].returncode == 0, results["example"].stderr
    (run,) = run_folders(folder / "example")
    metrics = read_metrics(run)
    assert metrics["status"] == "OK" and metrics["level"] == "point"
    assert metrics["data"]["columns"] == ["temperature", "vibration", "pressure"]
    assert metrics["metrics"]["point"]["roc_auc"] > 0.8


@pytest.mark.parametrize("name, stamps", [
    ("ts", pd.date_range("2024-01-01", periods=120, freq="h").astype(str)),
    ("time_utc", pd.date_range("2024-01-01", periods=120, freq="min", tz="UTC").astype(str)),
    ("date", pd.date_range("2024-01-01", periods=120, freq="D").strftime("%d/%m/%Y")),
])
def test_a_timestamp_column_is_found_by_its_content(tmp_path, name, stamps):
    frame = sensor_frame(120).drop(columns="timestamp")
    frame.insert(0, name, stamps)
    data = build_csv(path=str(write_csv(frame, tmp_path / "m.csv")))
    assert data.timestamp_column == name and data.info["columns"] == ["a", "b"]
    assert list(data.test.timestamps[0][:2]) == list(frame[name][96:98])
    assert name not in str(data.warnings.entries), "the column is not left out as non-numeric"


def test_a_column_of_plain_numbers_is_never_taken_for_timestamps(tmp_path):
    frame = sensor_frame(120).drop(columns="timestamp")
    frame.insert(0, "epoch", np.arange(1_700_000_000, 1_700_000_120))
    frame.insert(1, "year", ["2024"] * 120)
    data = build_csv(path=str(write_csv(frame, tmp_path / "m.csv")))
    assert data.timestamp_column is None and data.info["columns"] == ["epoch", "year", "a", "b"]
