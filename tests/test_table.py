"""tsad-table on fabricated run folders: a multirun, a failed run, an old-format run and a killed one; --best on a
fabricated sweep."""

from __future__ import annotations

import csv
import errno
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tsad.table import command, main

# (model, dataset) -> the metric value of seeds 0, 1, 2
ROC_AUC = {
    ("iforest", "synthetic"): [0.90, 0.92, 0.94],
    ("iforest", "synthetic_points"): [0.70, 0.74, 0.72],
    ("random", "synthetic"): [0.50, 0.48, 0.52],
    ("random", "synthetic_points"): [0.50, 0.51, 0.49],
}
PA_F1 = {"iforest": 0.80, "random": 0.75}
THRESHOLD = {"policy": "val_percentile", "q": 99.0, "source": "val"}


def write_run(folder: Path, model: str, dataset: str, seed: int, record: dict | None, level: str,
              config_extra: dict | None = None) -> None:
    (folder / ".hydra").mkdir(parents=True)
    config = {"model": {"name": model, "window": 32}, "seed": seed, "threshold": THRESHOLD,
              "dataset": {"name": dataset, "level": level, "seed": "${seed}", "n_test": 200, **(config_extra or {})},
              "paths": {"output_dir": "outputs"}}
    (folder / ".hydra" / "config.yaml").write_text(json.dumps(config))  # JSON is YAML
    if record is not None:
        (folder / "metrics.json").write_text(json.dumps(record))


def ok_record(model: str, dataset: str, seed: int, level: str) -> dict:
    value = ROC_AUC[model, dataset][seed]
    metrics = {"roc_auc": value, "pr_auc": value / 2, "f1": 0.5}
    if level == "point":
        metrics.update(vus_pr=value - 0.1, pa_f1=PA_F1[model], vus_window=40, vus_window_rule="period")
    return {"status": "OK", "model": model, "dataset": dataset, "seed": seed, "level": level,
            "metrics": {level: metrics}, "validation": {"val_loss": 0.1 * seed},
            "threshold": {**THRESHOLD, "values": {level: 1.5}},
            "timing": {"fit_seconds": 2.0, "score_seconds": 0.5, "total_seconds": 3.0}}


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    root = tmp_path / "outputs"
    sweep = root / "multiruns" / "2026-11-22" / "10-00-00"
    job = 0
    for (model, dataset), _ in ROC_AUC.items():
        level = "point" if dataset == "synthetic_points" else "series"
        for seed in range(3):
            write_run(sweep / f"{job}_{model}_{dataset}_seed{seed}", model, dataset, seed,
                      ok_record(model, dataset, seed, level), level)
            job += 1
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    # A failed job of the same sweep.
    failed = {"status": "ERROR", "model": "iforest", "dataset": "synthetic", "seed": 3,
              "error": "ValueError: boom", "timing": {"total_seconds": 1.0}}
    write_run(sweep / f"{job}_iforest_synthetic_seed3", "iforest", "synthetic", 3, failed, "series")
    # A single run from an older tsad: flat metrics, no level, no timing, no threshold, no VUS.
    old = root / "runs" / "2026-01-01" / "09-00-00_lstm_vae_synthetic_points"
    write_run(old, "lstm_vae", "synthetic_points", 0,
              {"status": "OK", "model": "lstm_vae", "dataset": "synthetic_points", "seed": 0,
               "metrics": {"roc_auc": 0.66, "f1": 0.3}}, "point")
    # A run killed before it wrote metrics.json.
    write_run(root / "runs" / "2026-01-01" / "09-30-00_lstm_vae_synthetic", "lstm_vae", "synthetic", 0, None, "series")
    return root


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_results_csv_has_one_row_per_run_with_flat_metrics_config_and_times(runs, tmp_path):
    main([str(runs), "--metric", "roc_auc", "--out", str(tmp_path / "out"), "--format", "csv"])
    rows = read_csv(tmp_path / "out" / "results.csv")
    assert len(rows) == 12 + 3
    assert sorted({r["status"] for r in rows}) == ["ERROR", "INCOMPLETE", "OK"]
    first = next(r for r in rows if r["model"] == "iforest" and r["dataset"] == "synthetic_points" and r["seed"] == "1")
    assert float(first["point.roc_auc"]) == 0.74 and float(first["point.vus_pr"]) == pytest.approx(0.64)
    assert float(first["fit_seconds"]) == 2.0 and float(first["score_seconds"]) == 0.5
    assert first["config.model.window"] == "32" and first["threshold.policy"] == "val_percentile"
    assert first["config.dataset.seed"] == "1"  # interpolations resolved
    old = next(r for r in rows if r["model"] == "lstm_vae" and r["status"] == "OK")
    assert float(old["point.roc_auc"]) == 0.66 and old["point.vus_pr"] == "" and old["fit_seconds"] == ""


def test_markdown_cells_are_mean_std_and_count_with_failures_and_best_in_bold(runs, tmp_path, capsys):
    main([str(runs), "--metric", "roc_auc", "--out", str(tmp_path / "out"), "--digits", "2", "--format", "md"])
    markdown = (tmp_path / "out" / "table_roc_auc.md").read_text()
    assert markdown in capsys.readouterr().out
    lines = {line.split("|")[1].strip(): line for line in markdown.splitlines()
             if line.startswith("| ") and "---" not in line}
    assert list(lines) == ["model", "iforest", "lstm_vae", "random"]
    iforest = lines["iforest"].split("|")
    assert iforest[2].strip() == "**0.92 ± 0.02** (3) [1 failed]"
    assert iforest[3].strip() == f"**0.72 ± {np.std([0.70, 0.74, 0.72], ddof=1):.2f}** (3)"
    lstm = lines["lstm_vae"].split("|")
    assert lstm[2].strip() == "– [1 unfinished]"  # the killed run is counted, not dropped
    assert lstm[3].strip() == "0.66 (1)"  # the old-format run still counts
    assert "point.roc_auc" in markdown and "series.roc_auc" in markdown
    assert "val_percentile (q=99, source=val)" in markdown


def test_missing_metrics_are_blank_or_counted_never_a_crash(runs, tmp_path):
    main([str(runs), "--metric", "vus_pr", "--out", str(tmp_path / "out"), "--format", "md"])
    markdown = (tmp_path / "out" / "table_vus_pr.md").read_text()
    row = next(line for line in markdown.splitlines() if line.startswith("| lstm_vae")).split("|")
    assert row[3].strip() == "– [1 n/a]"
    iforest = next(line for line in markdown.splitlines() if line.startswith("| iforest")).split("|")
    assert iforest[2].strip() == "– [1 failed]"  # VUS does not exist at the series level
    assert iforest[3].strip().startswith("**0.620 ± 0.020** (3)")


def test_pa_f1_tables_always_show_the_random_detector(runs, tmp_path):
    main([str(runs), "--metric", "pa_f1", "--out", str(tmp_path / "out"), "--format", "md"])
    markdown = (tmp_path / "out" / "table_pa_f1.md").read_text()
    table_rows = [line.split("|")[1].strip() for line in markdown.splitlines() if line.startswith("| ")]
    assert table_rows[-1] == "random"
    assert "0.750 ± 0.000 (3)" in markdown and "chance" in markdown
    without_random = tmp_path / "no_random"
    for folder in runs.rglob("*iforest_synthetic_points*"):
        shutil.copytree(folder, without_random / folder.name)
    main([str(without_random), "--metric", "pa_f1", "--out", str(tmp_path / "out2"), "--format", "md"])
    markdown = (tmp_path / "out2" / "table_pa_f1.md").read_text()
    assert "| random |" in markdown and "No random-detector runs on synthetic_points" in markdown


def test_dotted_metric_latex_and_figure(runs, tmp_path):
    main([str(runs), "--metric", "validation.val_loss", "--out", str(tmp_path / "out")])
    latex = (tmp_path / "out" / "table_validation.val_loss.tex").read_text()
    assert r"\textbf{0.100 $\pm$ 0.100} (3)" in latex  # lower is better for a loss
    assert r"\begin{tabular}" in latex and r"synthetic\_points" in latex and "lower is better" in latex
    assert (tmp_path / "out" / "figure_validation.val_loss.png").stat().st_size > 10_000


def test_by_groups_rows_by_any_config_key_and_warns_about_mixed_cells(runs, tmp_path):
    extra = runs / "runs" / "2026-01-02" / "x_random_synthetic"
    write_run(extra, "random", "synthetic", 0, ok_record("random", "synthetic", 0, "series"), "series",
              {"n_test": 50})
    main([str(runs), "--metric", "roc_auc", "--out", str(tmp_path / "out"), "--format", "md"])
    markdown = (tmp_path / "out" / "table_roc_auc.md").read_text()
    assert "differ in config.dataset.n_test" in markdown
    assert "random on synthetic: several runs share a seed (0)" in markdown
    main([str(runs), "--metric", "roc_auc", "--by", "dataset,model,dataset.n_test", "--out", str(tmp_path / "by"),
          "--format", "md"])
    markdown = (tmp_path / "by" / "table_roc_auc.md").read_text()
    assert "| random / 50 |" in markdown and "| random / 200 |" in markdown


def test_nab_scores_keep_their_names_and_the_oracle_table_says_it_read_the_labels(tmp_path):
    scores = {"nab_label_free": {"standard": 20.0, "reward_low_FP_rate": 10.0},
              "oracle_nab": {"standard": 40.0, "reward_low_FP_rate": 30.0}}
    for seed in range(2):
        write_run(tmp_path / "runs" / f"zscore_nab_{seed}", "zscore", "nab", seed,
                  {**ok_record("iforest", "synthetic_points", seed, "point"), "model": "zscore", "dataset": "nab",
                   **scores}, "point")
    # An older run named the label-optimised score plain `nab`: it is read as oracle_nab.
    write_run(tmp_path / "runs" / "old_zscore_nab", "zscore", "nab", 2,
              {**ok_record("iforest", "synthetic_points", 2, "point"), "model": "zscore", "dataset": "nab",
               "nab": {"standard": 46.0}, "nab_label_free": {"standard": 26.0}}, "point")
    main([str(tmp_path / "runs"), "--metric", "oracle_nab.standard", "--out", str(tmp_path / "out"),
          "--format", "csv,md"])
    rows = read_csv(tmp_path / "out" / "results.csv")
    assert not [column for column in rows[0] if column.startswith("nab.")]
    assert sorted(float(r["oracle_nab.standard"]) for r in rows) == [40.0, 40.0, 46.0]
    assert sorted(float(r["nab_label_free.standard"]) for r in rows) == [20.0, 20.0, 26.0]
    markdown = (tmp_path / "out" / "table_oracle_nab.standard.md").read_text()
    assert "**42.000 ± 3.464** (3)" in markdown and "optimised on the test labels" in markdown
    main([str(tmp_path / "runs"), "--metric", "nab_label_free.standard", "--out", str(tmp_path / "out"),
          "--format", "md"])
    assert "optimised on the test labels" not in (tmp_path / "out" / "table_nab_label_free.standard.md").read_text()


# ---------------------------------------------------------------------------- --best

# A sweep over hidden sizes: job folder -> (status, validation metrics). The failed job has the lowest loss.
SWEEP = {
    "lstm_vae_synthetic_seed0_hidden_size-16_0000aaaa": ("OK", {"val_loss": 0.30, "labelled_val": {"series": {
        "roc_auc": 0.80}}}),
    "lstm_vae_synthetic_seed0_hidden_size-32_1111bbbb": ("OK", {"val_loss": 0.20, "labelled_val": {"series": {
        "roc_auc": 0.70}}}),
    "lstm_vae_synthetic_seed0_hidden_size-64_2222cccc": ("OK", {"val_loss": 0.25, "labelled_val": {"series": {
        "roc_auc": 0.90}}}),
    "lstm_vae_synthetic_seed0_hidden_size-128_3333dddd": ("OK", {"val_loss": 0.40}),
    "lstm_vae_synthetic_seed0_hidden_size-256_4444eeee": ("NAN", {"val_loss": 0.01}),
}


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    folder = tmp_path / "sweep"
    for name, (status, validation) in SWEEP.items():
        record = {**ok_record("iforest", "synthetic", 0, "series"), "model": "lstm_vae", "status": status,
                  "validation": validation}
        write_run(folder / name, "lstm_vae", "synthetic", 0, record, "series")
    write_run(folder / "lstm_vae_synthetic_seed0_hidden_size-512_5555ffff", "lstm_vae", "synthetic", 0, None,
              "series")  # killed
    return folder


@pytest.mark.parametrize("arguments, best, skipped", [
    (["--best", "validation.val_loss"], "hidden_size-32", "skipped 2 not OK, 0 without the metric"),
    (["--best", "validation.labelled_val.series.roc_auc"], "hidden_size-64", "skipped 2 not OK, 1 without the metric"),
    (["--best", "validation.val_loss", "--best-mode", "max"], "hidden_size-128", "0 without the metric"),
    (["--best", "validation.labelled_val.series.roc_auc", "--best-mode", "min"], "hidden_size-32", "1 without"),
])
def test_best_prints_the_best_finished_run_by_a_validation_metric(sweep, tmp_path, monkeypatch, capsys, arguments,
                                                                  best, skipped):
    monkeypatch.chdir(tmp_path)
    main([str(sweep), *arguments])
    folder, reason, use = capsys.readouterr().out.splitlines()
    assert Path(folder).parent == sweep.resolve() and Path(folder).name.startswith(f"lstm_vae_synthetic_seed0_{best}_")
    assert skipped in reason and "lstm_vae on synthetic, seed 0" in reason
    assert use == f"use it: tsad-predict run={folder} input=<your.csv>"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep"]  # no tables written


def test_best_minimises_losses_and_maximises_scores(sweep, capsys):
    main([str(sweep), "--best", "validation.val_loss"])
    assert "= 0.2 (min: lower is better for a loss;" in capsys.readouterr().out
    main([str(sweep), "--best", "validation.labelled_val.series.roc_auc"])
    assert "= 0.9 (max: higher is better for a score;" in capsys.readouterr().out
    main([str(sweep), "--best", "validation.labelled_val.series.roc_auc", "--best-mode", "min"])
    assert "= 0.7 (min: --best-mode;" in capsys.readouterr().out


# ---------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("kept", [False, True])
def test_a_full_disk_is_one_line_and_removes_what_the_command_had_written(runs, tmp_path, capsys, monkeypatch, kept):
    out = tmp_path / "out"
    if kept:  # a folder the user already had: its own files stay
        out.mkdir()
        (out / "notes.txt").write_text("mine")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(command, "to_latex", full)  # the third file: results.csv and the Markdown table are written
    with pytest.raises(SystemExit) as exit_info:
        main([str(runs), "--metric", "roc_auc", "--out", str(out)])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("tsad-table: error: the disk is full") and "--out" in error and error.count("\n") == 1
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"] if kept else not out.exists()


@pytest.mark.parametrize("arguments, message", [
    (["{runs}", "--best", "point.roc_auc"], "would leak the test labels"),
    (["{runs}", "--best", "validation"], "only a validation metric"),
    (["{runs}", "--best", "validation.labelled_val.series.roc_auc"], "none of the 15 runs"),
    (["{runs}", "--best", "validation.labelled_val.series.n"], "add --best-mode min or --best-mode max"),
    (["{runs}", "--best", "validation.val_loss", "--best-mode", "lowest"], "unknown --best-mode 'lowest'"),
    (["{runs}", "--best-mode", "min"], "--best-mode min needs --best validation.<key>"),
    (["{empty}"], "no run folders"),
    (["{runs}", "--metric", "nope"], "unknown metric 'nope'"),
    (["{runs}", "--metric", "point.nope"], "unknown metric 'point.nope'"),
    (["{runs}", "--by", "dataset,colour"], "unknown --by key 'colour'"),
    (["{runs}", "--format", "pdf"], "unknown --format pdf"),
    (["{missing}"], "does not exist"),
])
def test_bad_input_is_one_line_and_exit_code_2(runs, tmp_path, capsys, arguments, message):
    (tmp_path / "empty").mkdir()
    places = {"empty": tmp_path / "empty", "runs": runs, "missing": tmp_path / "missing"}
    arguments = [a.format(**places) for a in arguments] + ["--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as exit_info:
        main(arguments)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("tsad-table: error: ") and message in error and error.count("\n") == 1


# ---------------------------------------------------------------------------- defaults and --out

def test_without_metric_series_level_runs_get_roc_auc_and_point_level_runs_vus_pr(runs, tmp_path, capsys):
    series_only, point_only = tmp_path / "series_only", tmp_path / "point_only"
    for folder in runs.rglob("*_seed*"):
        if folder.is_dir() and "ERROR" not in (folder / "metrics.json").read_text():
            target = point_only if "synthetic_points" in folder.name else series_only
            shutil.copytree(folder, target / folder.name)
    main([str(series_only), "--out", str(tmp_path / "s"), "--format", "md"])
    output = capsys.readouterr().out
    assert output.startswith("metric: roc_auc (the runs are series-level, where vus_pr does not exist;")
    assert "**0.920 ± 0.020** (3)" in (tmp_path / "s" / "table_roc_auc.md").read_text()
    main([str(point_only), "--out", str(tmp_path / "p"), "--format", "md"])
    assert capsys.readouterr().out.startswith("metric: vus_pr (the runs are point-level;")
    assert (tmp_path / "p" / "table_vus_pr.md").exists()
    main([str(series_only), "--metric", "f1", "--out", str(tmp_path / "f"), "--format", "md"])
    assert not capsys.readouterr().out.startswith("metric:"), "a metric the user chose needs no word"


def test_without_out_the_tables_go_beside_the_runs_and_the_output_says_where(runs, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    sweep = runs / "multiruns" / "2026-11-22" / "10-00-00"
    main([str(sweep), "--format", "md,csv"])
    assert capsys.readouterr().out.splitlines()[-1] == f"tables in {(sweep / 'tables').resolve()}"
    assert sorted(p.name for p in (sweep / "tables").iterdir()) == ["results.csv", "table_roc_auc.md"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outputs"], "nothing in the current folder"
    single = next(sweep.glob("0_*"))
    main([str(single), "--format", "md"])
    assert capsys.readouterr().out.splitlines()[-1] == f"tables in {(sweep / 'tables').resolve()}", (
        "beside a run folder, never inside it")
    assert not (single / "tables").exists()


@pytest.mark.parametrize("out", ["file", "file/below"])
def test_out_naming_an_existing_file_is_one_line_before_anything_is_written(runs, tmp_path, capsys, out):
    (tmp_path / "file").write_text("keep me\n")
    with pytest.raises(SystemExit) as exit_info:
        main([str(runs), "--metric", "roc_auc", "--out", str(tmp_path / out)])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith(f"tsad-table: error: --out {tmp_path / out}: {tmp_path / 'file'} is a file, not a folder")
    assert error.count("\n") == 1
    assert (tmp_path / "file").read_text() == "keep me\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "outputs"]
