"""scripts/nab_table.py: re-scoring a NAB run's saved raw scores under another post-processing gives the scores
of a run made with it."""


from conftest import load_script, nab_run, read_metrics

NAB_KNN = ["dataset=nab", "model=knn", "model.window=8", "plots=false"]


def test_saved_raw_scores_rescored_give_the_scores_of_a_run_with_that_postprocess(nab_mini, tmp_path):
    postprocess = "likelihood_spatial_rest"  # every transform at once
    plain = nab_run(nab_mini, tmp_path / "plain", *NAB_KNN)
    processed = nab_run(nab_mini, tmp_path / "processed", *NAB_KNN, f"postprocess={postprocess}", "threshold=fixed",
                        "threshold.value=0.5")
    table = load_script("nab_table")
    for folder in (plain, processed):  # the raw scores do not depend on the run's own postprocess
        rescored = table.score_run(folder, ["none", postprocess])
        assert rescored[postprocess, "full"]["label_free"] == read_metrics(processed)["nab_label_free"]
        assert rescored[postprocess, "full"]["oracle"] == read_metrics(processed)["oracle_nab"]
        assert rescored["none", "full"]["label_free"] == read_metrics(plain)["nab_label_free"]
    assert set(rescored) == {("none", "full"), (postprocess, "full")}, "the mini corpus has no NAB halves"


def test_the_table_has_a_row_per_model_and_postprocess(nab_mini, tmp_path, capsys):
    nab_run(nab_mini, tmp_path, *NAB_KNN)
    load_script("nab_table").main([str(tmp_path), "--postprocess", "none", "likelihood"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| model | postprocess | seeds | full: label-free")
    assert [line.split(" | ")[:3] for line in lines[2:]] == [["| knn", "none", "0"], ["| knn", "likelihood", "0"]]
