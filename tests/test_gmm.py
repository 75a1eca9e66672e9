"""The shared Gaussian-mixture math (tsad/models/gmm.py) against direct float64 computations."""

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from tsad.models import gmm


def random_mixture(rng, n_components=3, dim=4):
    weights = rng.dirichlet(np.ones(n_components))
    means = rng.normal(size=(n_components, dim)) * 2
    factors = rng.normal(size=(n_components, dim, dim))
    covariances = factors @ factors.transpose(0, 2, 1) + 0.5 * np.eye(dim)
    return weights, means, covariances


def scipy_energy(z, weights, means, covariances):
    log_joint = np.stack([np.log(w) + multivariate_normal(m, c).logpdf(z)
                          for w, m, c in zip(weights, means, covariances)], axis=1)
    return -logsumexp(log_joint, axis=1)


def test_energy_matches_scipy_full_and_diagonal():
    rng = np.random.default_rng(0)
    weights, means, covariances = random_mixture(rng)
    z = rng.normal(size=(50, 4)) * 3
    ours = gmm.energy(torch.tensor(z, dtype=torch.float32), torch.tensor(np.log(weights)), torch.tensor(means),
                      torch.tensor(covariances), jitter=0.0)
    assert ours.dtype == torch.float64
    np.testing.assert_allclose(ours.numpy(), scipy_energy(z.astype(np.float32), weights, means, covariances),
                               rtol=1e-9, atol=1e-9)
    variances = np.stack([np.diag(c) for c in covariances])
    diagonal = gmm.energy(torch.tensor(z), torch.tensor(np.log(weights)), torch.tensor(means), torch.tensor(variances))
    expected = scipy_energy(z, weights, means, [np.diag(v) for v in variances])
    np.testing.assert_allclose(diagonal.numpy(), expected, rtol=1e-9)


def test_energy_with_per_sample_memberships_weights_each_sample():
    rng = np.random.default_rng(1)
    _, means, covariances = random_mixture(rng, n_components=2, dim=3)
    z = rng.normal(size=(6, 3))
    memberships = rng.dirichlet(np.ones(2), size=6)
    ours = gmm.energy(torch.tensor(z), torch.tensor(np.log(memberships)), torch.tensor(means),
                      torch.tensor(covariances), jitter=0.0)
    densities = np.stack([multivariate_normal(m, c).logpdf(z) for m, c in zip(means, covariances)], axis=1)
    expected = -logsumexp(np.log(memberships) + densities, axis=1)
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-9)


def test_far_points_do_not_saturate():
    # exp-then-log implementations cap the energy near -log(1e-12) ~ 27.6; log space does not
    means, covariances = torch.zeros(1, 2, dtype=torch.float64), torch.eye(2, dtype=torch.float64)[None]
    z = torch.tensor([[0.0, 0.0], [100.0, 0.0], [200.0, 0.0]], dtype=torch.float64)
    energies = gmm.energy(z, torch.zeros(1), means, covariances)
    assert torch.isfinite(energies).all()
    assert energies[1] > 4000 and energies[2] > 4 * energies[1] - 1000


def test_singular_covariances_stay_finite_and_differentiable():
    rng = np.random.default_rng(2)
    direction = rng.normal(size=(5, 1))
    rank_one = torch.tensor(direction @ direction.T)[None].repeat(2, 1, 1)   # rank 1 in 5 dims
    rank_one[1] = 0.0                                                        # and an all-zero one
    means = torch.zeros(2, 5, dtype=torch.float64, requires_grad=True)
    z = torch.tensor(rng.normal(size=(8, 5)))
    energies = gmm.energy(z, torch.log(torch.tensor([0.5, 0.5])), means, rank_one)
    assert torch.isfinite(energies).all()
    energies.sum().backward()
    assert torch.isfinite(means.grad).all()


def test_jitter_grows_only_until_the_factorisation_succeeds():
    singular = torch.zeros(1, 3, 3, dtype=torch.float64)
    singular[0, 0, 0] = 1.0
    factor = gmm.cholesky_jittered(singular, jitter=1e-12)
    rebuilt = factor @ factor.transpose(1, 2)
    assert torch.allclose(rebuilt[0, 0, 0], torch.tensor(1.0, dtype=torch.float64), atol=1e-6)
    assert 0 < rebuilt[0, 1, 1] < 1e-3


def test_non_finite_covariance_gives_nan_energy_not_an_exception():
    covariances = torch.full((1, 2, 2), float("nan"), dtype=torch.float64)
    energies = gmm.energy(torch.zeros(3, 2), torch.zeros(1), torch.zeros(1, 2), covariances)
    assert torch.isnan(energies).all()


def test_params_from_memberships_match_weighted_statistics():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(40, 3))
    memberships = rng.dirichlet(np.ones(2), size=40)
    weights, means, covariances = gmm.params_from_memberships(torch.tensor(z), torch.tensor(memberships), "full")
    for k in range(2):
        w = memberships[:, k]
        np.testing.assert_allclose(means[k].numpy(), (w[:, None] * z).sum(0) / w.sum(), rtol=1e-9)
        np.testing.assert_allclose(covariances[k].numpy(), np.cov(z.T, aweights=w, bias=True), rtol=1e-9)
    np.testing.assert_allclose(weights.numpy(), memberships.mean(0), rtol=1e-9)
    _, _, variances = gmm.params_from_memberships(torch.tensor(z), torch.tensor(memberships), "diag", reg_covar=0.1)
    np.testing.assert_allclose(variances.numpy(), np.stack([np.diag(c) for c in covariances.numpy()]) + 0.1, rtol=1e-9)
    assert gmm.covariance_penalty(variances).item() == pytest.approx((1 / variances.numpy()).sum())


@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_em_recovers_two_separated_clusters(covariance_type):
    rng = np.random.default_rng(4)
    z = np.concatenate([rng.normal(-4, 1, size=(300, 2)), rng.normal(4, 0.5, size=(100, 2))])
    weights, means, covariances = gmm.fit_em(torch.tensor(z), 2, covariance_type, seed=0)
    order = torch.argsort(means[:, 0])
    np.testing.assert_allclose(weights[order].numpy(), [0.75, 0.25], atol=0.02)
    np.testing.assert_allclose(means[order].numpy(), [[-4, -4], [4, 4]], atol=0.2)
    variances = covariances if covariance_type == "diag" else covariances.diagonal(dim1=1, dim2=2)
    np.testing.assert_allclose(variances[order].numpy(), [[1, 1], [0.25, 0.25]], rtol=0.25)
    # a warm start from the fit stays there
    again = gmm.fit_em(torch.tensor(z), 2, covariance_type, init=(weights, means, covariances), max_iter=3)
    np.testing.assert_allclose(again[1].numpy(), means.numpy(), atol=1e-3)


def test_em_is_deterministic_for_a_seed_and_keeps_a_variance_floor():
    rng = np.random.default_rng(5)
    z = torch.tensor(np.concatenate([rng.normal(size=(50, 3)), np.ones((20, 3))]))    # a point mass
    first = gmm.fit_em(z, 3, "diag", seed=7)
    second = gmm.fit_em(z, 3, "diag", seed=7)
    for a, b in zip(first, second):
        assert torch.equal(a, b)
    floor = 1e-4 * z.var(0, unbiased=False)
    assert (first[2] >= floor * 0.999).all()
    assert torch.isfinite(gmm.energy(z, first[0].log(), first[1], first[2])).all()
