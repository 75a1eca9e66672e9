"""Time-series DAGMM: a run end to end, save/load, padding, the batch-size guard and the scoring GMM."""

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import TINY_SERIES, read_metrics, run_folders, run_tsad, score_alone_and_padded
from omegaconf import OmegaConf
from torch.nn.utils.rnn import pack_padded_sequence

from tsad.data.batches import pad_batch
from tsad.data.registry import dataset_settings
from tsad.errors import UserError
from tsad.models import gmm
from tsad.models.base import Detector, build_detector
from tsad.models.dagmm import DAGMM, BidirectionalEncoder, DAGMMModule


def small_module(n_channels=2, latent_size=2, n_components=2) -> DAGMMModule:
    torch.manual_seed(0)
    config = DAGMM(hidden_size=8, num_layers=2, latent_size=latent_size, n_components=n_components, estimation_hidden=6)
    return config.build_module(n_channels)


def random_batches(n_batches=3, batch_size=16, n_channels=2, seed=0):
    rng = np.random.default_rng(seed)
    return [pad_batch([rng.normal(size=(int(rng.integers(10, 40)), n_channels)).astype(np.float32)
                       for _ in range(batch_size)], np.full(batch_size, -1)) for _ in range(n_batches)]


def test_tsad_run_trains_scores_and_reloads(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")     # the subprocess; spinning threads crawl on a busy machine
    run_tsad(["model=dagmm", *TINY_SERIES], tmp_path)
    (folder,) = run_folders(tmp_path)
    metrics = read_metrics(folder)
    assert metrics["status"] == "OK" and metrics["epochs_trained"] == 2
    assert 0.0 <= metrics["metrics"]["series"]["roc_auc"] <= 1.0
    history = pd.read_csv(folder / "history.csv")
    assert {"train_energy", "train_cov_penalty", "train_reconstruction"} <= set(history.columns)

    detector = Detector.load(folder / "model")
    assert bool(detector.module.gmm_fitted)
    config = OmegaConf.to_container(OmegaConf.load(folder / ".hydra" / "config.yaml"), resolve=True)
    test = dataset_settings(config["dataset"]).build().test
    saved = pd.read_csv(folder / "scores" / "test_series.csv")
    np.testing.assert_allclose(detector.score(test).series, saved["score"].to_numpy(), rtol=1e-5, atol=1e-5)


def test_padding_never_changes_a_series_score():
    module = small_module()
    module.on_fit_end(None, random_batches())
    module.eval()
    rng = np.random.default_rng(1)
    short, long = rng.normal(size=(12, 2)).astype(np.float32), rng.normal(size=(60, 2)).astype(np.float32)
    alone_step, alone_series, mixed_step, mixed_series = score_alone_and_padded(module, short, long)
    assert torch.allclose(alone_series[0], mixed_series[1], rtol=1e-5, atol=1e-5)
    assert torch.allclose(alone_step[0], mixed_step[1, :12], atol=1e-6)
    assert (mixed_step[1, 12:] == 0).all()


def test_encoder_equals_a_bidirectional_lstm_over_packed_sequences():
    torch.manual_seed(0)
    encoder = BidirectionalEncoder(3, 5, num_layers=2, dropout=0.0)
    reference = torch.nn.LSTM(3, 5, num_layers=2, batch_first=True, bidirectional=True)
    with torch.no_grad():
        for layer in range(2):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(reference, f"{name}_l{layer}").copy_(getattr(encoder.forward_layers[layer], f"{name}_l0"))
                backward = getattr(encoder.backward_layers[layer], f"{name}_l0")
                getattr(reference, f"{name}_l{layer}_reverse").copy_(backward)
    lengths = torch.tensor([9, 4, 1, 7])
    x = torch.randn(4, 9, 3) * (torch.arange(9)[None, :, None] < lengths[:, None, None])
    _, (h_n, _) = reference(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
    torch.testing.assert_close(encoder(x, lengths), torch.cat([h_n[-2], h_n[-1]], dim=1))


def test_scoring_gmm_is_fitted_on_the_whole_train_set():
    module = small_module()
    batches = random_batches()
    module.on_fit_end(None, batches)
    module.eval()
    with torch.no_grad():
        z = torch.cat([module(b)[1] for b in batches])
        standard = (z - z.mean(0)) / (z.var(0, unbiased=False) + 1e-5).sqrt()
        weights, means, covariances = gmm.params_from_memberships(standard, module.memberships(standard), "full",
                                                                  module.reg_covar)
    assert torch.allclose(module.gmm_means, means, atol=1e-5)
    assert torch.allclose(module.gmm_covariances, covariances, atol=1e-5)
    assert torch.allclose(module.gmm_weights, weights, atol=1e-6)
    # scoring uses those stored parameters, so a series scores the same in any batch
    _, series = module.score(batches[0])
    expected = gmm.energy(standard[:16], weights.log(), means, covariances)
    assert torch.allclose(series, expected, rtol=1e-4)


def test_scoring_gmm_has_a_covariance_floor_when_the_latent_lies_on_a_subspace():
    """z on a 2-D plane of its 6 dims (a singular covariance): energies stay finite and a small step
    off the plane costs at most step^2 / (2 reg_covar), as a floored covariance promises."""
    module = small_module(latent_size=2)             # z has 6 dims
    rng = np.random.default_rng(3)
    basis = rng.normal(size=(2, 6))
    z = torch.tensor(rng.normal(size=(300, 2)) @ basis, dtype=torch.float32)
    module.fit_scoring_gmm(z)
    eigenvalues = torch.linalg.eigvalsh(module.gmm_covariances)
    assert eigenvalues.min() >= 0.999 * module.reg_covar, "the floor is in the stored scoring GMM"
    on_plane = torch.tensor(rng.normal(size=(20, 2)) @ basis, dtype=torch.float32)
    scale = (module.z_var + 1e-5).sqrt()
    plane = torch.linalg.qr((torch.tensor(basis, dtype=torch.float32) / scale).T).Q        # the plane, standardised
    step = torch.tensor(rng.normal(size=(20, 6)), dtype=torch.float32)
    step = step - step @ plane @ plane.T                             # orthogonal to the plane
    step = 0.01 * step / step.norm(dim=1, keepdim=True)              # 0.01 standardised units
    energies_on, energies_off = module.energy(on_plane), module.energy(on_plane + step * scale)
    assert torch.isfinite(energies_on).all() and torch.isfinite(energies_off).all()
    bound = 0.5 * 0.01**2 / module.reg_covar                         # 0.05 with the default floor
    assert (energies_off - energies_on).max() <= bound * 1.01, (energies_off - energies_on).max()


def test_batch_size_guard_and_small_remainder_batches():
    module = small_module(latent_size=4)            # z has 8 dims, so batches need 16 series
    trainer = type("T", (), {"batch_size": 8})()
    with pytest.raises(UserError, match="trainer.batch_size>=16"):
        module.on_fit_start(trainer, random_batches(batch_size=8))
    module.train()
    small = module.loss(random_batches(n_batches=1, batch_size=5)[0])
    assert set(small) == {"loss", "reconstruction"}
    full = module.loss(random_batches(n_batches=1, batch_size=32)[0])
    assert {"energy", "cov_penalty"} <= set(full) and torch.isfinite(full["loss"])
    full["loss"].backward()
    assert all(torch.isfinite(p.grad).all() for p in module.parameters() if p.grad is not None)
    assert module.estimation[0].weight.grad.abs().sum() > 0


def test_reconstruction_features_ignore_padding_and_differ():
    module = small_module()
    rng = np.random.default_rng(2)
    x = torch.tensor(rng.normal(size=(1, 20, 2)), dtype=torch.float32)
    x_hat = x + 0.1 * torch.tensor(rng.normal(size=(1, 20, 2)), dtype=torch.float32)
    mask = torch.ones(1, 20, dtype=torch.bool)
    features = module.reconstruction_features(x, x_hat, mask)
    padded_x, padded_hat = torch.cat([x, torch.full((1, 5, 2), 7.0)], 1), torch.cat([x_hat, torch.zeros(1, 5, 2)], 1)
    padded_mask = torch.cat([mask, torch.zeros(1, 5, dtype=torch.bool)], 1)
    padded = module.reconstruction_features(padded_x, padded_hat, padded_mask)
    assert torch.allclose(features, padded, atol=1e-6)
    error = (x - x_hat)[0].numpy()
    expected = [np.linalg.norm(error) / np.linalg.norm(x[0]), float((x * x_hat).sum() / (x.norm() * x_hat.norm())),
                np.abs(error).mean(), np.abs(np.diff(error, axis=0)).mean()]
    np.testing.assert_allclose(features[0].numpy(), expected, rtol=1e-5)


def test_unknown_or_bad_parameters_fail_in_one_line():
    with pytest.raises(UserError, match="model.n_components=0 is out of range"):
        build_detector("dagmm", {"n_components": 0})
    with pytest.raises(UserError, match="unknown key 'model.window'"):
        build_detector("dagmm", {"window": 32})
