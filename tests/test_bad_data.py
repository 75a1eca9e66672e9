"""The user's data at its worst: unlabelled, huge, unreadable, mistyped or out of order files; each ends in one line,
or runs and says what it did, with the file's own line numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import build_csv, read_metrics, run_folders, run_tsad, sensor_frame, write_csv

from tsad.data.series import DatasetSplits, SeriesSet
from tsad.errors import UserError


def codes(warnings) -> list[str]:
    return [entry["code"] for entry in warnings.entries]


def one_line_error(result) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tsad-run: error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    return lines[0]


# ---------------------------------------------------------------------------- no labels

@pytest.mark.parametrize("label_column", ["null", "auto"])
def test_a_csv_without_labels_writes_scores_and_says_there_are_no_metrics(tmp_path, label_column):
    data = write_csv(sensor_frame(300).drop(columns=["label"]), tmp_path / "plain.csv")
    run_tsad(["model=zscore", "dataset=csv", f"dataset.path={data}", f"dataset.label_column={label_column}",
              "plots=false"], tmp_path / "out", cwd=tmp_path)
    (run,) = run_folders(tmp_path / "out")
    record = read_metrics(run)
    assert record["status"] == "OK" and record["metrics"] == {}
    assert set(record["threshold"]["values"]) == {"point"}, "new data still gets alarms at the run's threshold"
    scores = pd.read_csv(run / "scores" / "test_steps.csv.gz")
    assert len(scores) == 60 and scores["score"].notna().all()
    (warning,) = [w for w in record["warnings"] if w["code"] == "no_labels"]
    assert "no metrics" in warning["message"] and "dataset.label_column=NAME" in warning["message"]
    assert f"warning: {warning['message']}" in (run / "run.log").read_text()


# ---------------------------------------------------------------------------- values beyond float32

@pytest.mark.parametrize("normalise", ["standard", "minmax"])
def test_values_beyond_float32_are_refused_naming_file_column_and_line(tmp_path, normalise):
    frame = sensor_frame(300)
    frame.loc[5, "b"], frame.loc[9, "b"] = 1.5e308, -1e300
    path = write_csv(frame, tmp_path / "huge.csv")
    with pytest.raises(UserError, match=r"huge.csv: value 1.5e\+308 in column 'b' at line 7 is beyond .*"
                                        r"\(2 such values\); rescale the column") as error:
        build_csv(path=str(path), normalise=normalise)
    assert "\n" not in str(error.value)
    result = run_tsad(["model=zscore", "dataset=csv", f"dataset.path={path}", f"dataset.normalise={normalise}"],
                      tmp_path / "out", cwd=tmp_path, check=False)
    assert "line 7" in one_line_error(result) and run_folders(tmp_path / "out") == []


def test_values_just_inside_float32_are_read_and_normalised_finitely(tmp_path):
    frame = sensor_frame(300)
    frame["a"] = frame["a"] * 1e38
    data = build_csv(path=str(write_csv(frame, tmp_path / "large.csv")))
    from tsad.data.normalise import Normaliser

    for kind in ("standard", "minmax"):
        normalised = Normaliser(kind).fit(data.train.values).transform(data.test.values)
        assert np.isfinite(normalised[0]).all()


# ---------------------------------------------------------------------------- unreadable files

def test_unreadable_files_in_a_folder_end_in_one_line(tmp_path):
    write_csv(sensor_frame(100), tmp_path / "plant" / "a.csv")
    (tmp_path / "plant" / "b.csv").mkdir()
    result = run_tsad(["model=zscore", "dataset=csv", f"dataset.path={tmp_path / 'plant'}"], tmp_path / "out1",
                      cwd=tmp_path, check=False)
    assert "b.csv: is a folder, not a CSV file" in one_line_error(result)
    write_csv(sensor_frame(100), tmp_path / "links" / "a.csv")
    (tmp_path / "links" / "b.csv").symlink_to(tmp_path / "gone.csv")
    result = run_tsad(["model=zscore", "dataset=csv", f"dataset.path={tmp_path / 'links'}"], tmp_path / "out2",
                      cwd=tmp_path, check=False)
    assert "b.csv: is a link to" in one_line_error(result) and "which does not exist" in result.stderr
    series = tmp_path / "beats"
    for i in range(8):
        write_csv(sensor_frame(40, seed=i, anomalies=()), series / f"s{i}.csv")
    (series / "s8.csv").mkdir()
    with pytest.raises(UserError, match="s8.csv: is a folder"):
        build_csv(path=str(series), level="series")


# ---------------------------------------------------------------------------- warnings for what was silent

def test_a_typo_cell_names_file_column_line_and_text(tmp_path):
    frame = sensor_frame(300)
    frame["b"] = frame["b"].round(3).astype(str)
    frame.loc[7, "b"] = "1.2.3"
    data = build_csv(path=str(write_csv(frame, tmp_path / "typo.csv")))
    assert data.channels == ["a"]
    (typo,) = [e["message"] for e in data.warnings.entries if e["code"] == "typo_cells"]
    assert "typo.csv: column 'b' left out of the values: its cell '1.2.3' at line 9 is not a number" in typo
    assert "fix the cell" in typo
    (dropped,) = [e["message"] for e in data.warnings.entries if e["code"] == "dropped_columns"]
    assert "'note'" in dropped and "'b'" not in dropped, "a column of text is still a column of text"


@pytest.mark.parametrize("kind", ["unsorted", "duplicate", "numeric"])
def test_timestamps_that_go_back_or_repeat_are_a_warning_naming_the_first_line(tmp_path, kind):
    frame = sensor_frame(300)
    if kind == "numeric":
        frame["timestamp"] = np.arange(300) * 10
    stamps = frame["timestamp"].to_numpy().copy()
    if kind == "duplicate":
        stamps[41] = stamps[40]
    else:
        stamps[[40, 41]] = stamps[[41, 40]]
    frame["timestamp"] = stamps
    data = build_csv(path=str(write_csv(frame, tmp_path / "times.csv")))
    (message,) = [e["message"] for e in data.warnings.entries if e["code"] == "timestamp_order"]
    expected = "line 43 repeats the timestamp of line 42" if kind == "duplicate" else "line 43 ("
    assert "times.csv: timestamps in 'timestamp' are not increasing: " + expected in message
    assert "sort the file" in message
    in_order = build_csv(path=str(write_csv(sensor_frame(300), tmp_path / "sorted.csv")))
    assert "timestamp_order" not in codes(in_order.warnings)


def test_a_window_longer_than_every_series_is_a_warning():
    series = SeriesSet([np.zeros((30, 1)), np.zeros((50, 1))], series_labels=[0, 1])
    data = DatasetSplits(series, series, series, level="series", name="d")
    data.note_padding(None)
    data.note_padding(50)
    assert data.warnings.entries == []
    data.note_padding(64)
    (entry,) = data.warnings.entries
    assert entry["code"] == "window_padding"
    assert "model.window=64 is longer than every series (the longest has 50 steps)" in entry["message"]
    assert "model.window=50 or less" in entry["message"]


# ---------------------------------------------------------------------------- the file's own line numbers

def shifted_file(path: Path, frame: pd.DataFrame) -> Path:
    """`frame` as CSV with two blank lines after the header and a quoted note spanning two lines in the first row:
    data row i is on line i + 5 from the second row on (line i + 2 in a plain file)."""
    text = frame.to_csv(index=False).splitlines()
    first = text[1].split(",")
    first[frame.columns.get_loc("note")] = '"two\nlines"'
    path.write_text("\n".join([text[0], "", "   ", ",".join(first), *text[2:]]) + "\n")
    return path


@pytest.mark.parametrize("damage, settings, message", [
    (lambda f: f.assign(b=f["b"].where(f.index != 20)), {}, "(first in column 'b' at line 25)"),
    (lambda f: f.assign(a=f["a"].astype(object).where(f.index != 20, "x")), {"value_columns": ["a"]},
     "('x' at line 25)"),
    (lambda f: f.assign(label=f["label"].where(f.index != 20, 7)), {}, "found 7 (first at line 25)"),
    (lambda f: f.assign(label=f["label"].astype(float).where(f.index != 270)), {"nan_policy": "drop"},
     "1 test rows (the first at line 275)"),
])
def test_every_line_number_is_the_files_own_line(tmp_path, damage, settings, message):
    frame = damage(sensor_frame(300))
    if settings.get("nan_policy") == "drop":
        frame.loc[3, "a"] = np.nan  # a dropped row before the cut moves every later row's position
    path = shifted_file(tmp_path / "shifted.csv", frame)
    with pytest.raises(UserError) as error:
        build_csv(path=str(path), **settings)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_window_longer_than_every_series_is_said_in_the_run_record(tmp_path):
    run_tsad(["model=pca", "model.window=120", "dataset.n_train=20", "dataset.n_val=5", "dataset.n_test=10",
              "dataset.min_length=40", "dataset.max_length=80", "plots=false"], tmp_path)
    (folder,) = run_folders(tmp_path)
    codes = [entry["code"] for entry in read_metrics(folder)["warnings"]]
    assert codes.count("window_padding") == 1


def test_a_file_with_another_separator_is_told_which_setting_reads_it(tmp_path):
    path = tmp_path / "semicolons.csv"
    sensor_frame(300).to_csv(path, index=False, sep=";")
    with pytest.raises(UserError, match="its header looks separated by ';': read it with 'dataset.separator=\";\"'"):
        build_csv(path=str(path))
    assert build_csv(path=str(path), separator=";").n_channels == 2
