"""One-run presets (tsad/conf/experiment/): each composes to the setting docs/results.md reports, without training."""

from pathlib import Path

from hydra import compose, initialize_config_module

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results.md"


def composed(overrides: list[str]):
    with initialize_config_module("tsad.conf", version_base="1.3"):
        return compose("config", overrides=overrides)


def test_the_ecg5000_preset_runs_the_setting_chosen_on_labelled_validation():
    cfg = composed(["experiment=ecg5000", "dataset.root=/data/ECG5000"])
    assert cfg.model.name == "pca" and cfg.dataset.name == "ecg5000" and cfg.dataset.root == "/data/ECG5000"
    # The whole test file is scored (class 1 normal against classes 2-5) and every normal TRAIN beat trains.
    assert cfg.dataset.normal_class == 1 and cfg.dataset.anomaly_ratio is None
    assert cfg.dataset.val_fraction == 0 and cfg.dataset.labelled_val == 0
    # One window per whole beat, a 4-component mixture over 5 principal components (chosen on labelled validation).
    assert (cfg.model.window, cfg.model.stride) == (140, 1)
    assert (cfg.model.scoring, cfg.model.n_components, cfg.model.density_components) == ("density", 5, 4)
    assert "tsad-run experiment=ecg5000 dataset.root=" in RESULTS.read_text()


def test_a_preset_setting_can_still_be_overridden():
    cfg = composed(["experiment=ecg5000", "seed=2", "model.n_components=8"])
    assert cfg.seed == 2 and cfg.model.n_components == 8 and cfg.dataset.seed == 2


def test_the_nab_preset_runs_the_setting_chosen_on_half_a():
    cfg = composed(["experiment=nab", "dataset.root=/data/NAB"])
    assert cfg.dataset.name == "nab" and cfg.dataset.root == "/data/NAB"
    assert (cfg.model.name, cfg.model.window, cfg.model.stride, cfg.model.k) == ("knn", 16, 1, 1)
    assert (cfg.model.block, cfg.model.memory) == (2, "growing")
    assert cfg.postprocess.name == "likelihood_spatial_rest"
    assert cfg.threshold.policy == "fixed" and cfg.threshold.value == 0.5, "the likelihood's red zone, not a label"
    assert "tsad-run experiment=nab dataset.root=" in RESULTS.read_text()
