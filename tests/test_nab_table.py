"""scripts/nab_table.py: re-scoring a NAB run's saved raw scores under another post-processing gives the scores
of a run made with it."""

import importlib.util
from pathlib import Path

from conftest import read_metrics, run_folders, run_tsad

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "nab_table.py"


def load_script():
    spec = importlib.util.spec_from_file_location("nab_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def nab_run(root: Path, output_dir: Path, *overrides: str) -> Path:
    output_dir.mkdir(parents=True, exist_ok=True)
    run_tsad(["dataset=nab", f"dataset.root={root}", "model=knn", "model.window=8", "plots=false", *overrides],
             output_dir)
    (folder,) = run_folders(output_dir)
    return folder


def test_saved_raw_scores_rescored_give_the_scores_of_a_run_with_that_postprocess(nab_mini, tmp_path):
    postprocess = "likelihood_spatial_rest"  # every transform at once
    plain = nab_run(nab_mini, tmp_path / "plain")
    processed = nab_run(nab_mini, tmp_path / "processed", f"postprocess={postprocess}", "threshold=fixed",
                        "threshold.value=0.5")
    table = load_script()
    for folder in (plain, processed):  # the raw scores do not depend on the run's own postprocess
        rescored = table.score_run(folder, ["none", postprocess])
        assert rescored[postprocess, "full"]["label_free"] == read_metrics(processed)["nab_label_free"]
        assert rescored[postprocess, "full"]["oracle"] == read_metrics(processed)["oracle_nab"]
        assert rescored["none", "full"]["label_free"] == read_metrics(plain)["nab_label_free"]
    assert set(rescored) == {("none", "full"), (postprocess, "full")}, "the mini corpus has no NAB halves"


def test_the_table_has_a_row_per_model_and_postprocess(nab_mini, tmp_path, capsys):
    nab_run(nab_mini, tmp_path)
    load_script().main([str(tmp_path), "--postprocess", "none", "likelihood"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| model | postprocess | seeds | full: label-free")
    assert [line.split(" | ")[:3] for line in lines[2:]] == [["| knn", "none", "0"], ["| knn", "likelihood", "0"]]
