"""Seq2GMM: a run end to end with K > 1, save/load, segmentation (determinism, cache), padding and scores."""

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import TINY_SERIES, read_metrics, run_folders, run_tsad, score_alone_and_padded
from omegaconf import OmegaConf

from tsad.data.batches import pad_batch
from tsad.data.registry import dataset_settings
from tsad.errors import UserError
from tsad.models import gmm, segmentation, seq2gmm
from tsad.models.base import Detector, build_detector
from tsad.training.trainer import Trainer, TrainerSettings


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("TSAD_CACHE_DIR", str(folder))
    return folder


def three_regimes(rng, length=60, n_channels=2):
    """Up, flat, down thirds plus noise: an obvious three-segment series."""
    third = length // 3
    shape = np.concatenate([np.linspace(0, 3, third), np.full(third, 3.0), np.linspace(3, 0, length - 2 * third)])
    return (shape[:, None] + 0.05 * rng.normal(size=(length, n_channels))).astype(np.float32)


def small_module(n_components=2, decoder_input="previous"):
    torch.manual_seed(0)
    segmenter = segmentation.Segmenter(3, freedom=0.4, max_points=100, maxiter=20, popsize=5)
    config = seq2gmm.Seq2GMM(hidden_size=6, decoder_input=decoder_input, n_components=n_components,
                             covariance_type="diag", estimation_hidden=8, em_max_iter=50, epochs=5)
    return seq2gmm.Seq2GMMModule(config, n_channels=2, breakpoints=segmenter)


def random_batches(n_batches=2, batch_size=12, seed=0):
    rng = np.random.default_rng(seed)
    return [pad_batch([rng.normal(size=(int(rng.integers(12, 40)), 2)).astype(np.float32) for _ in range(batch_size)],
                      np.full(batch_size, -1)) for _ in range(n_batches)]


def test_tsad_run_with_two_components_trains_scores_and_reloads(tmp_path, cache_dir, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")     # the subprocess; spinning threads crawl on a busy machine
    run_tsad(["model=seq2gmm", "model.n_components=2", *TINY_SERIES], tmp_path)
    (folder,) = run_folders(tmp_path)
    metrics = read_metrics(folder)
    assert metrics["status"] == "OK" and metrics["epochs_trained"] == 2
    assert 0.0 <= metrics["metrics"]["series"]["roc_auc"] <= 1.0
    assert len(list((cache_dir / "seq2gmm_segments").glob("*.npz"))) == 2      # train+val, then test

    detector = Detector.load(folder / "model")
    weights = detector.module.gmm_weights
    assert len(weights) == 2 and (weights > 0.01).all(), "both components should be in use"
    config = OmegaConf.to_container(OmegaConf.load(folder / ".hydra" / "config.yaml"), resolve=True)
    test = dataset_settings(config["dataset"]).build().test
    saved = pd.read_csv(folder / "scores" / "test_series.csv")
    scores = detector.score(test)
    np.testing.assert_allclose(scores.series, saved["score"].to_numpy(), rtol=1e-5, atol=1e-5)
    assert all(np.isclose(s.max(), series, rtol=1e-6) for s, series in zip(scores.steps, scores.series))


def test_segmentation_is_deterministic_and_well_formed():
    rng = np.random.default_rng(0)
    series = three_regimes(rng, length=90)
    first = segmentation.fit_breakpoints(series, 3, freedom=0.4, max_points=100, maxiter=50, popsize=8)
    second = segmentation.fit_breakpoints(series, 3, freedom=0.4, max_points=100, maxiter=50, popsize=8)
    assert np.array_equal(first, second)
    assert first[0] == 0 and first[-1] == 89 and (np.diff(first) >= 1).all()
    np.testing.assert_allclose(first[1:3], [30, 60], atol=3)       # finds the regime changes
    resampled = segmentation.fit_breakpoints(np.repeat(series, 5, axis=0), 3, 0.4, 100, 50, 8)
    np.testing.assert_allclose(resampled[1:3], [150, 300], atol=12)
    assert np.array_equal(segmentation.fit_breakpoints(series[:5], 3, 0.4, 100, 50, 8), [0, 1, 3, 4])  # too short: even
    assert np.array_equal(segmentation.fit_breakpoints(series, 3, 0.0, 100, 50, 8), [0, 30, 59, 89])  # no freedom


def test_breakpoints_are_cached_on_disk_per_data_set(cache_dir, monkeypatch):
    rng = np.random.default_rng(1)
    values = [three_regimes(rng, length=int(n)) for n in rng.integers(30, 60, size=4)]
    first = segmentation.Segmenter(3, 0.4, 100, 20, 5)
    first.prepare(values)
    assert len(list((cache_dir / "seq2gmm_segments").glob("*.npz"))) == 1

    def no_fitting(*args, **kwargs):
        raise AssertionError("breakpoints should come from the cache")

    monkeypatch.setattr(segmentation, "fit_breakpoints", no_fitting)
    again = segmentation.Segmenter(3, 0.4, 100, 20, 5)
    again.prepare(values)
    for series in values:
        assert np.array_equal(again(series), first(series))
    with pytest.raises(AssertionError, match="cache"):    # other settings are another cache entry
        segmentation.Segmenter(3, 0.3, 100, 20, 5).prepare(values)


def test_automatic_number_of_segments_finds_three_regimes():
    rng = np.random.default_rng(2)
    values = [three_regimes(rng, length=int(n)) for n in rng.integers(45, 75, size=16)]

    def make_segmenter(n):
        return segmentation.Segmenter(n, 0.4, 100, 20, 5)

    assert segmentation.choose_n_segments(values, 5, make_segmenter, sample_size=16) == 3


@pytest.mark.parametrize("max_epochs, expected", [(None, 5), (3, 3), (10, 5)])
def test_trains_its_own_epochs_unless_the_trainer_caps_them(max_epochs, expected):
    module = small_module()
    module.on_fit_start(Trainer(TrainerSettings(max_epochs=max_epochs)), random_batches())
    assert module.stage_epochs == {"train": expected}


@pytest.mark.parametrize("decoder_input", ["previous", "code"])
def test_padding_never_changes_a_series_score(decoder_input):
    module = small_module(decoder_input=decoder_input)
    module.on_fit_start(Trainer(TrainerSettings()), random_batches())
    module.on_fit_end(None, random_batches())
    module.eval()
    rng = np.random.default_rng(3)
    short, long = rng.normal(size=(15, 2)).astype(np.float32), rng.normal(size=(70, 2)).astype(np.float32)
    alone_step, alone_series, mixed_step, mixed_series = score_alone_and_padded(module, short, long)
    assert torch.allclose(alone_series[0], mixed_series[1], rtol=1e-5, atol=1e-5)
    assert torch.allclose(alone_step[0], mixed_step[1, :15], rtol=1e-5, atol=1e-5)
    assert (mixed_step[1, 15:] == 0).all()


def test_step_scores_localise_segments_and_the_series_score_is_the_largest():
    module = small_module()
    module.on_fit_end(None, random_batches())
    module.eval()
    batch = random_batches(n_batches=1, batch_size=3, seed=4)[0]
    steps, series = module.score(batch)
    segments = module.segments(batch)
    energies = module.segment_energy(module.compress(segments)[0])
    for row in range(3):
        owned = segments["rows"] == row
        assert torch.isclose(series[row], energies[owned].max())
        for energy, positions, valid in zip(energies[owned], segments["positions"][owned], segments["valid"][owned]):
            inside = steps[row, positions[valid][1:-1]]       # steps not shared with a neighbour
            assert torch.allclose(inside, energy.expand_as(inside))


def test_more_than_one_component_trains_the_estimation_network():
    # two kinds of series give two clusters of codes; the memberships must learn which is which
    rng = np.random.default_rng(5)
    flat = [0.05 * rng.normal(size=(30, 2)) for _ in range(12)]
    waves = [np.sin(np.arange(30) / 2 + rng.uniform(0, 6))[:, None] * [3.0, -3.0] for _ in range(12)]
    batch = pad_batch([s.astype(np.float32) for s in flat + waves], np.full(24, -1))
    module = small_module(n_components=2)
    module.on_fit_start(Trainer(TrainerSettings()), [batch])
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-2)
    for epoch in range(60):
        if epoch % 20 == 0:
            module.on_epoch_start(epoch)                 # EM refit on the current codes
        module.train()
        losses = module.loss(batch)
        optimizer.zero_grad()
        losses["loss"].backward()
        if epoch == 0:
            gradient = module.estimation[0].weight.grad
            assert gradient.abs().sum() > 0 and torch.isfinite(gradient).all()
        optimizer.step()
    module.on_fit_end(None, [batch])
    module.eval()
    with torch.no_grad():
        z = module.compress(module.segments(batch))[0]
        memberships = torch.softmax(module.estimation(z), dim=1)
        posterior = module.gmm_weights.log() + gmm.component_log_densities(z, module.gmm_means,
                                                                             module.gmm_covariances)
    assert (module.gmm_weights > 0.2).all()
    assert (memberships.argmax(1) == posterior.argmax(1)).double().mean() > 0.9


def test_bad_parameters_fail_in_one_line():
    with pytest.raises(UserError, match="breakpoint_freedom"):
        build_detector("seq2gmm", {"breakpoint_freedom": 0.8})
    with pytest.raises(UserError, match="covariance_type"):
        build_detector("seq2gmm", {"covariance_type": "spherical"})
