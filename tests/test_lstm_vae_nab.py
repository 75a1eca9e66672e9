"""LSTM-VAE under NAB's protocol: the nab_seed preset runs, and scripts/nab_seed_halves.py scores two half-corpus
runs as the full-corpus run is scored."""

import importlib.util
from pathlib import Path

import pytest
from conftest import read_metrics, run_folders, run_tsad

from tsad.run_folder import RunFolder

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "nab_seed_halves.py"
SMALL = ["model=lstm_vae", "model.window=8", "model.hidden_size=8", "model.latent_size=4", "trainer=fast",
         "plots=false"]


def load_script():
    spec = importlib.util.spec_from_file_location("nab_seed_halves", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def nab_run(root: Path, output_dir: Path, *overrides: str) -> Path:
    output_dir.mkdir(parents=True, exist_ok=True)
    run_tsad(["experiment=nab_seed", f"dataset.root={root}", *SMALL, *overrides], output_dir)
    (folder,) = run_folders(output_dir)
    return folder


def test_two_half_runs_score_as_the_full_corpus_run(nab_mini, tmp_path):
    full = nab_run(nab_mini, tmp_path / "full")
    config = RunFolder(full).config()
    assert config["model"]["train_stride"] == 1, "the preset trains on every probationary window"
    assert (config["postprocess"]["name"], config["threshold"]["value"]) == ("likelihood_spatial_rest", 0.5)
    first = nab_run(nab_mini, tmp_path / "first", "dataset.category=[synthA]")
    second = nab_run(nab_mini, tmp_path / "second", "dataset.category=[synthB]")
    scores = load_script().full_corpus_scores(first, second)
    assert set(scores) == {"full"}, "the mini corpus has no NAB halves"
    assert scores["full"]["label_free"] == read_metrics(full)["nab_label_free"]
    assert scores["full"]["oracle"] == read_metrics(full)["oracle_nab"]


def test_runs_of_different_settings_are_refused(nab_mini, tmp_path):
    first = nab_run(nab_mini, tmp_path / "first", "dataset.category=[synthA]")
    second = nab_run(nab_mini, tmp_path / "second", "dataset.category=[synthB]", "seed=1")
    with pytest.raises(SystemExit, match="differ in more than the files"):
        load_script().full_corpus_scores(first, second)
