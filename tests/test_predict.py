"""tsad-predict end to end: a run trained by tsad-run scores new CSV files and streams, never retraining."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import TINY_SERIES, TSAD_PREDICT, run_folders, run_tsad, run_tsad_predict
from conftest import sensor_frame as conftest_sensor_frame

from tsad.data.series import SeriesSet
from tsad.models.base import Detector
from tsad.pipeline import Pipeline

WINDOW = 16


def sensor_frame(rows: int, seed: int, anomalies=()) -> pd.DataFrame:
    return conftest_sensor_frame(rows, seed, anomalies).drop(columns="note")


def predict(args: list[str], cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    """tsad-predict in this process (test_command_line_streaming_* starts the command)."""
    return run_tsad_predict(args, cwd, stdin)


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="module")
def csv_run(tmp_path_factory) -> Path:
    """A point-level run of a window model on a CSV file with a timestamp and a label column."""
    folder = tmp_path_factory.mktemp("csv_run")
    sensor_frame(400, seed=0, anomalies=((330, 340),)).to_csv(folder / "train.csv", index=False)
    run_tsad(["model=pca", f"model.window={WINDOW}", "dataset=csv", f"dataset.path={folder / 'train.csv'}",
              "trainer=fast", "plots=false"], folder)
    return run_folders(folder)[0]


@pytest.fixture(scope="module")
def series_run(tmp_path_factory) -> Path:
    """A series-level run of a model without windows on synthetic series (channels ch0..ch{C-1})."""
    folder = tmp_path_factory.mktemp("series_run")
    run_tsad(["model=zscore", *TINY_SERIES], folder)
    return run_folders(folder)[0]


def test_training_saves_what_prediction_needs(csv_run):
    pipeline, inputs = Pipeline.load(csv_run / "model")
    metrics = json.loads((csv_run / "metrics.json").read_text())
    assert inputs.level == "point" and inputs.channels == ["a", "b"] and inputs.timestamp_column == "timestamp"
    assert pipeline.thresholds["point"] == metrics["threshold"]["values"]["point"]
    steps = pd.read_csv(csv_run / "scores" / "test_steps.csv.gz")
    assert list(steps["row"]) == list(range(320, 400)), "the test part is the last 20% of the file's rows"
    assert steps["timestamp"].iloc[0] == sensor_frame(400, seed=0)["timestamp"].iloc[320]
    np.testing.assert_array_equal(steps["alarm"], (steps["score"] > pipeline.thresholds["point"]).astype(int))


def test_predict_matches_scoring_in_python_whatever_the_column_order(csv_run, tmp_path):
    new = sensor_frame(120, seed=1, anomalies=((60, 70),))
    new[["b", "label", "timestamp", "a"]].to_csv(tmp_path / "new.csv", index=False)
    before = snapshot(csv_run)
    result = predict([f"run={csv_run}", "input=new.csv", "out=prediction"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert snapshot(csv_run) == before, "predicting never writes inside the run folder"

    folder = tmp_path / "prediction"
    predictions = pd.read_csv(folder / "predictions.csv")
    assert list(predictions.columns) == ["series", "row", "timestamp", "score", "alarm"]
    expected = Detector.load(csv_run / "model").score(SeriesSet([new[["a", "b"]].to_numpy()])).steps[0]
    np.testing.assert_allclose(predictions["score"], expected, rtol=1e-6)
    threshold = Pipeline.load(csv_run / "model")[0].thresholds["point"]
    np.testing.assert_array_equal(predictions["alarm"], (expected > threshold).astype(int))
    assert list(predictions["row"]) == list(range(120)) and list(predictions["timestamp"]) == list(new["timestamp"])
    summary = json.loads((folder / "prediction.json").read_text())
    assert summary["run"] == str(csv_run.resolve()) and summary["threshold"] == threshold
    assert summary["n_rows"] == 120 and summary["n_alarms"] == predictions["alarm"].sum()
    assert (folder / "plots" / "predictions.png").is_file()
    assert f"prediction folder: {Path('prediction')}" in result.stdout


def test_default_folder_is_timestamped_under_outputs_and_rows_keep_their_place(csv_run, tmp_path):
    new = sensor_frame(60, seed=2)
    new.loc[5, "a"] = np.nan
    new.to_csv(tmp_path / "gappy.csv", index=False)
    result = predict([f"run={csv_run}", "input=gappy.csv", "dataset.nan_policy=drop"], tmp_path)
    assert result.returncode == 0, result.stderr
    (folder,) = (tmp_path / "outputs" / "predictions").glob("*/*")
    assert folder.name.endswith(f"_{csv_run.name}")
    predictions = pd.read_csv(folder / "predictions.csv")
    assert 5 not in set(predictions["row"]) and len(predictions) == 59 and predictions["row"].iloc[-1] == 59


@pytest.mark.parametrize("case, message", [
    ("missing column", "column 'a' is missing; the model was trained on 2 columns (a, b)"),
    ("extra column", "numeric column 'c' is not one the model was trained on (a, b)"),
    ("short series", f"fewer than the model's window (model.window={WINDOW})"),
    ("no such run", "run=nowhere is not a folder"),
    ("run without model", "has no saved model (model/detector.json)"),
    ("sweep folder", "is a sweep folder of 1 runs; give one of them"),
    ("unknown key", "unknown key 'inptu'"),
    ("out inside the run", "lies inside the run folder"),
    ("wrong nan policy", "dataset.nan_policy must be one of error, interpolate, drop, got 'fill'"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(csv_run, tmp_path, case, message):
    new = sensor_frame(60, seed=3)
    run, out, source = str(csv_run), "out=prediction", "input=new.csv"
    if case == "missing column":
        new = new.drop(columns=["a"])
    elif case == "extra column":
        new["c"] = 1.0
    elif case == "short series":
        new = new.head(WINDOW - 1)
    elif case == "no such run":
        run = "nowhere"
    elif case == "run without model":
        run = str(csv_run / ".hydra")
    elif case == "sweep folder":
        run = str(csv_run.parent)
    elif case == "unknown key":
        source = "inptu=new.csv"
    elif case == "out inside the run":
        out = f"out={csv_run / 'predictions'}"
    new.to_csv(tmp_path / "new.csv", index=False)
    arguments = [f"run={run}", source, out] + (["dataset.nan_policy=fill"] if case == "wrong nan policy" else [])
    before = snapshot(csv_run)
    result = predict(arguments, tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tsad-predict: error: ") and message in lines[0], lines
    assert not (tmp_path / "prediction").exists() and not (tmp_path / "outputs").exists()
    assert snapshot(csv_run) == before


def test_series_level_run_gives_one_row_per_series(series_run, tmp_path):
    data = pd.read_csv(series_run / "scores" / "test_series.csv")
    assert "alarm" in data.columns
    rng = np.random.default_rng(0)
    folder = tmp_path / "new"
    folder.mkdir()
    series = [rng.normal(size=(length, 3)).astype(np.float32) for length in (50, 70, 60)]
    series[1][30:40] += 6
    for index, values in enumerate(series):
        pd.DataFrame(values[:, ::-1], columns=["ch2", "ch1", "ch0"]).to_csv(folder / f"s{index}.csv", index=False)
    result = predict([f"run={series_run}", "input=new", "out=prediction"], tmp_path)
    assert result.returncode == 0, result.stderr
    predictions = pd.read_csv(tmp_path / "prediction" / "predictions.csv")
    assert list(predictions.columns) == ["series", "score", "alarm"]
    assert list(predictions["series"]) == ["s0", "s1", "s2"]
    expected = Detector.load(series_run / "model").score(SeriesSet(series)).series
    np.testing.assert_allclose(predictions["score"], expected, rtol=1e-6)
    threshold = Pipeline.load(series_run / "model")[0].thresholds["series"]
    np.testing.assert_array_equal(predictions["alarm"], (expected > threshold).astype(int))


def test_streaming_scores_each_row_as_causal_batch_scoring_does(csv_run, tmp_path):
    new = sensor_frame(80, seed=4, anomalies=((50, 55),))
    text = new[["timestamp", "b", "a"]].to_csv(index=False)
    result = predict([f"run={csv_run}", "input=-"], tmp_path, stdin=text)
    assert result.returncode == 0, result.stderr
    streamed = pd.read_csv(pd.io.common.StringIO(result.stdout))
    assert list(streamed.columns) == ["row", "timestamp", "score", "alarm"] and len(streamed) == 80
    assert list(streamed["row"]) == list(range(80)) and list(streamed["timestamp"]) == list(new["timestamp"])
    causal = Detector.load(csv_run / "model", causal=True).score(SeriesSet([new[["a", "b"]].to_numpy()])).steps[0]
    assert np.isnan(streamed["score"][:WINDOW - 1]).all() and (streamed["alarm"][:WINDOW - 1] == 0).all()
    np.testing.assert_allclose(streamed["score"][WINDOW - 1:], causal[WINDOW - 1:], rtol=1e-5, atol=1e-6)
    threshold = Pipeline.load(csv_run / "model")[0].thresholds["point"]
    np.testing.assert_array_equal(streamed["alarm"][WINDOW - 1:], (causal[WINDOW - 1:] > threshold).astype(int))
    assert not (tmp_path / "outputs").exists()


def test_command_line_streaming_answers_each_row_before_the_next_arrives(csv_run, tmp_path):
    process = subprocess.Popen([TSAD_PREDICT, f"run={csv_run}", "input=-"], cwd=tmp_path, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        process.stdin.write("a,b\n")
        process.stdin.flush()
        answers = []
        for row in range(WINDOW + 1):
            process.stdin.write(f"{np.sin(row / 5):.4f},{np.cos(row / 7):.4f}\n")
            process.stdin.flush()
            if row == 0:
                assert process.stdout.readline() == "row,score,alarm\n"
            answers.append(process.stdout.readline())
        assert answers[:WINDOW - 1] == [f"{row},,0\n" for row in range(WINDOW - 1)]
        assert answers[-1].split(",")[0] == str(WINDOW) and answers[-1].split(",")[1]
    finally:
        process.stdin.close()
        process.wait(timeout=60)
    assert process.returncode == 0


def test_streaming_refuses_a_model_without_windows(series_run, tmp_path):
    result = predict([f"run={series_run}", "input=-"], tmp_path, stdin="ch0,ch1,ch2\n1,2,3\n")
    assert result.returncode == 2 and "model zscore does not score windows" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("rows, message", [
    ("a,b\n1,2\nx,3\n", "column 'a' holds 'x' at line 3, not a number"),
    ("a,b\n1,2\n1,nan\n", "NaN/inf value in column 'b' at line 3"),
])
def test_streaming_stops_at_a_bad_row_in_one_line(csv_run, tmp_path, rows, message):
    result = predict([f"run={csv_run}", "input=-"], tmp_path, stdin=rows)
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_post_processed_run_predicts_post_processed_scores_and_refuses_a_stream(tmp_path):
    sensor_frame(400, seed=0, anomalies=((330, 340),)).to_csv(tmp_path / "train.csv", index=False)
    run_tsad(["model=pca", f"model.window={WINDOW}", "dataset=csv", f"dataset.path={tmp_path / 'train.csv'}",
              "postprocess=likelihood_spatial", "threshold=fixed", "threshold.value=0.5", "plots=false"], tmp_path)
    (run,) = run_folders(tmp_path)
    new = sensor_frame(300, seed=1, anomalies=((200, 210),))
    new.to_csv(tmp_path / "new.csv", index=False)
    result = predict([f"run={run}", "input=new.csv", "out=prediction"], tmp_path)
    assert result.returncode == 0, result.stderr

    data = SeriesSet([new[["a", "b"]].to_numpy()])
    pipeline = Pipeline.load(run / "model")[0]
    assert pipeline.postprocess.name == "likelihood_spatial"
    expected = pipeline.processed(data, Detector.load(run / "model").score(data)).steps[0]
    predictions = pd.read_csv(tmp_path / "prediction" / "predictions.csv")
    np.testing.assert_allclose(predictions["score"], expected, rtol=1e-6)
    np.testing.assert_array_equal(predictions["alarm"], (expected > 0.5).astype(int))

    streamed = predict([f"run={run}", "input=-"], tmp_path, stdin="a,b\n1,2\n")
    assert streamed.returncode == 2 and "postprocess=likelihood_spatial" in streamed.stderr
    assert len(streamed.stderr.strip().splitlines()) == 1


def test_the_prediction_plot_is_on_the_inputs_time_axis(csv_run, tmp_path, monkeypatch):
    import tsad.plotting

    figures = []
    monkeypatch.setattr(tsad.plotting, "save", lambda figure, path: figures.append(figure))
    sensor_frame(60, seed=5).to_csv(tmp_path / "new.csv", index=False)
    assert predict([f"run={csv_run}", "input=new.csv", "out=prediction"], tmp_path).returncode == 0
    (figure,) = figures
    signal_axis, score_axis = figure.axes
    assert np.issubdtype(np.asarray(signal_axis.get_lines()[0].get_xdata()).dtype, np.datetime64)
    assert np.issubdtype(np.asarray(score_axis.get_lines()[0].get_xdata()).dtype, np.datetime64)
    assert score_axis.get_xlabel() == "timestamp"


def test_a_full_disk_is_one_line_and_leaves_no_prediction_folder(csv_run, tmp_path, monkeypatch):
    import errno

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("matplotlib.figure.Figure.savefig", no_space)
    sensor_frame(60, seed=6).to_csv(tmp_path / "new.csv", index=False)
    result = predict([f"run={csv_run}", "input=new.csv", "out=prediction"], tmp_path)
    assert result.returncode == 2 and result.stderr == (
        "tsad-predict: error: the disk is full (No space left on device) writing into prediction: free space in "
        "prediction or choose another out= folder\n")
    assert not (tmp_path / "prediction").exists()
