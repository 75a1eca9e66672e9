"""What a run does on its own is said: each warning is one `warning: ...` line in the log (logger "tsad") and one
{code, message} entry under `warnings` in metrics.json, and a metric the test labels leave undefined is null (a
missing cell in tsad-table), never 0 or 0.5."""

import logging

import numpy as np
import pytest
from conftest import SHARED_DATA, build_csv, read_metrics, run_folders, run_tsad, run_tsad_table, sensor_frame

from tsad.data.series import DatasetSplits, SeriesSet
from tsad.evaluation.report import NO_SCORED_SERIES, evaluate_level, validation_metrics
from tsad.models.base import Scores
from tsad.run_warnings import RunWarnings

SHARED_NAB = SHARED_DATA / "nab"


def write(frame, path):
    frame.to_csv(path, index=False)
    return path


def messages(warnings: RunWarnings, code: str) -> list[str]:
    return [entry["message"] for entry in warnings.entries if entry["code"] == code]


def test_a_non_numeric_column_left_out_is_named_in_the_log_and_the_warnings(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="tsad"):
        data = build_csv(path=str(write(sensor_frame(), tmp_path / "s.csv")))
    assert data.channels == ["a", "b"]
    (message,) = messages(data.warnings, "dropped_columns")
    assert message.startswith("csv: non-numeric column(s) 'note' left out of the values;")
    assert [r.getMessage() for r in caplog.records if r.name == "tsad"] == [f"warning: {message}"]
    chosen = build_csv(path=str(tmp_path / "s.csv"), value_columns=["a", "b"])
    assert chosen.warnings.entries == []  # chosen, not dropped


def test_nan_values_interpolated_or_dropped_are_counted_per_column(tmp_path):
    frame = sensor_frame()
    frame.loc[[10, 11, 12], "a"] = np.nan
    frame.loc[[11, 50], "b"] = np.inf
    path = str(write(frame, tmp_path / "gaps.csv"))
    assert messages(build_csv(path=path, nan_policy="interpolate").warnings, "nan_interpolated") == [
        "csv: 5 NaN/inf values (3 in 'a', 2 in 'b') interpolated within each split part"]
    assert messages(build_csv(path=path, nan_policy="drop").warnings, "nan_dropped") == [
        "csv: 5 NaN/inf values (3 in 'a', 2 in 'b') dropped with their 4 rows"]


def test_constant_and_near_constant_channels_in_train_and_test_are_named():
    varying = np.random.default_rng(0).normal(size=100)
    hum = 1000 + 1e-4 * np.random.default_rng(1).normal(size=100)  # varies at float32 rounding level
    train = SeriesSet([np.stack([varying, np.full(100, 3.0), hum], axis=1)])
    test = SeriesSet([np.stack([varying, varying, np.full(100, 1000.0)], axis=1)])
    data = DatasetSplits(train, train, test, level="point", name="d", channels=["ok", "flat", "hum"])
    data.note_constant_channels()
    in_train, in_test = messages(data.warnings, "constant_channels")
    assert in_train.startswith("train: channel 'flat' is constant (3); channel 'hum' is near-constant (std ")
    assert in_test == "test: channel 'hum' is constant (1000); no detector can learn or rank anything from it"


def test_a_one_class_test_split_leaves_its_metrics_null_with_one_warning_per_reason():
    warnings = RunWarnings()
    metrics = evaluate_level(np.zeros(50), np.linspace(0, 1, 50), 0.9, "point", warnings=warnings)
    for name in ("roc_auc", "pr_auc", "recall", "f1", "oracle_best_f1", "vus_pr", "range_f1", "pa_f1"):
        assert metrics[name] is None, name
    assert metrics["precision"] == 0.0, "5 alarms, all false"
    assert messages(warnings, "undefined_metrics") == [
        "point level: roc_auc, pr_auc, oracle_best_f1 undefined (null): all 50 test labels are normal",
        "point level: recall, f1 undefined (null): no test label is anomalous",
        "point level: the VUS, range, event, affiliation and PA metrics undefined (null): "
        + NO_SCORED_SERIES.format(split="test")]


def test_series_of_one_class_each_leave_the_range_metrics_null_and_constant_scores_are_said():
    labels = [np.zeros(40, dtype=int), np.ones(40, dtype=int)]
    test = SeriesSet([np.zeros((40, 1)), np.ones((40, 1))], step_labels=labels)
    warnings = RunWarnings()
    metrics = evaluate_level(np.concatenate(labels), np.full(80, 0.5), 1.0, "point", data=test, warnings=warnings)
    assert metrics["roc_auc"] == 0.5 and metrics["vus_pr"] is None and metrics["series_scored"] == 0
    assert [entry["code"] for entry in warnings.entries] == ["undefined_metrics", "undefined_metrics",
                                                              "constant_scores"]
    assert warnings.entries[1]["message"].endswith(NO_SCORED_SERIES.format(split="test"))
    assert warnings.entries[2]["message"].startswith("point level: every test score is 0.5, so the scores rank nothing")


def test_a_one_class_labelled_validation_split_leaves_its_ranking_null_with_a_warning():
    labelled_val = SeriesSet([np.zeros((10, 1))] * 3, series_labels=[0, 0, 0])
    warnings = RunWarnings()
    scores = Scores([np.zeros(10)] * 3, np.array([0.1, 0.2, 0.3]))
    result = validation_metrics([], labelled_val, scores, ["series"], warnings)
    assert result["labelled_val"]["series"]["roc_auc"] is None and result["labelled_val"]["series"]["pr_auc"] is None
    assert messages(warnings, "undefined_metrics") == [
        "labelled_val series level: roc_auc, pr_auc undefined (null): all 3 labelled_val labels are normal"]


def test_a_run_records_its_warnings_and_tsad_table_shows_undefined_metrics_as_missing(tmp_path):
    frame = sensor_frame(anomalies=((50, 60),)).assign(flat=1.0)  # the anomaly lies in train: test is all normal
    frame.loc[5, "a"] = np.nan
    path = write(frame, tmp_path / "sensor.csv")
    run_tsad(["model=zscore", "dataset=csv", f"dataset.path={path}", "dataset.nan_policy=interpolate", "plots=false"],
             tmp_path)
    (folder,) = run_folders(tmp_path)
    record = read_metrics(folder)
    assert [entry["code"] for entry in record["warnings"]] == [
        "dropped_columns", "nan_interpolated", "constant_channels", "constant_channels", "undefined_metrics",
        "undefined_metrics", "undefined_metrics"]
    assert record["status"] == "OK" and record["metrics"]["point"]["f1"] is None
    assert record["headline"]["roc_auc"] is None and record["headline"]["recall"] is None
    log_lines = (folder / "run.log").read_text().splitlines()
    for entry in record["warnings"]:
        assert sum(line.endswith(f"[tsad][WARNING] - warning: {entry['message']}") for line in log_lines) == 1

    table = run_tsad_table([str(folder), "--metric", "f1", "--format", "md", "--out", str(tmp_path / "tables")],
                           tmp_path)
    assert "– [1 n/a]" in "".join(p.read_text() for p in (tmp_path / "tables").glob("*.md")), table.stdout


@pytest.mark.skipif(not (SHARED_NAB / "data" / "artificialNoAnomaly" / "art_flatline.csv").exists(),
                    reason="the shared NAB copy is not here")
def test_the_nab_protocol_says_a_flat_file_and_a_test_without_anomalies(tmp_path):
    run_tsad(["dataset=nab", f"dataset.root={SHARED_NAB}", "dataset.files=[artificialNoAnomaly/art_flatline.csv]",
              "model=zscore", "plots=false"], tmp_path)
    (folder,) = run_folders(tmp_path)
    warnings = read_metrics(folder)["warnings"]
    assert warnings[0] == {"code": "constant_channels", "message": "artificialNoAnomaly/art_flatline.csv: in the "
                           "probationary rows its detector learns from, channel 'value' is constant (45)"}
    assert "point level: roc_auc, pr_auc, oracle_best_f1 undefined (null): all" in warnings[1]["message"]
    assert read_metrics(folder)["metrics"]["point"]["roc_auc"] is None
