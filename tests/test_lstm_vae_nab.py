"""LSTM-VAE under NAB's protocol: the nab_seed preset runs, and scripts/nab_seed_halves.py scores two half-corpus
runs as the full-corpus run is scored."""

import pytest
from conftest import load_script, nab_run, read_metrics

from tsad.run_folder import RunFolder

SMALL = ["experiment=nab_seed", "model=lstm_vae", "model.window=8", "model.hidden_size=8", "model.latent_size=4",
         "trainer=fast", "plots=false"]


def test_two_half_runs_score_as_the_full_corpus_run(nab_mini, tmp_path):
    full = nab_run(nab_mini, tmp_path / "full", *SMALL)
    config = RunFolder(full).config()
    assert config["model"]["train_stride"] == 1, "the preset trains on every probationary window"
    assert (config["postprocess"]["name"], config["threshold"]["value"]) == ("likelihood_spatial_rest", 0.5)
    first = nab_run(nab_mini, tmp_path / "first", *SMALL, "dataset.category=[synthA]")
    second = nab_run(nab_mini, tmp_path / "second", *SMALL, "dataset.category=[synthB]")
    scores = load_script("nab_seed_halves").full_corpus_scores(first, second)
    assert set(scores) == {"full"}, "the mini corpus has no NAB halves"
    assert scores["full"]["label_free"] == read_metrics(full)["nab_label_free"]
    assert scores["full"]["oracle"] == read_metrics(full)["oracle_nab"]


def test_runs_of_different_settings_are_refused(nab_mini, tmp_path):
    first = nab_run(nab_mini, tmp_path / "first", *SMALL, "dataset.category=[synthA]")
    second = nab_run(nab_mini, tmp_path / "second", *SMALL, "dataset.category=[synthB]", "seed=1")
    with pytest.raises(SystemExit, match="differ in more than the files"):
        load_script("nab_seed_halves").full_corpus_scores(first, second)
