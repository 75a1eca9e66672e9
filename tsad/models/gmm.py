"""Gaussian-mixture math shared by DAGMM and Seq2GMM (this module registers no model).

  energy(z) = -log sum_k w_k N(z; mu_k, Sigma_k)

computed in log space (logsumexp over components) and in float64, with the Gaussian
log-density taken from a Cholesky factor: log|Sigma| = 2 sum log diag L and the Mahalanobis
term from a triangular solve. Nothing is exponentiated before the logsumexp, so energies
never saturate the way exp-then-log implementations do.

A covariance that is not positive definite (too few points for its dimension, collinear
features) gets a jitter on its diagonal: `jitter` times its mean variance, grown tenfold
until the Cholesky factorisation succeeds. The same jittered matrix gives both the
log-determinant and the Mahalanobis term, so the density stays a proper density. The jitter
only makes the factorisation succeed; it is not a variance floor (a singular direction keeps a
variance ~1e-6 of the component's own scale, so tiny steps off it cost huge energies). A floor
is reg_covar, a ridge added by params_from_memberships and fit_em to every covariance they estimate.

Covariances are either full [K, D, D] or diagonal [K, D] (variances); every function below
accepts both. Mixture weights are either shared [K] (a GMM's weights) or per sample [N, K]
(the memberships an estimation network predicts, as Seq2GMM uses them).
"""

from __future__ import annotations

import math

import torch

LOG_2PI = math.log(2 * math.pi)
COVARIANCE_TYPES = ("full", "diag")
_TINY = 10 * torch.finfo(torch.float64).eps


def cholesky_jittered(covariances: torch.Tensor, jitter: float = 1e-6, max_tries: int = 10) -> torch.Tensor:
    """Lower Cholesky factors [K, D, D] of covariances [K, D, D] + eps_k I, in float64.

    eps_k starts at jitter * mean variance of component k and grows tenfold for the components
    whose factorisation fails. Non-finite covariances give NaN factors, so the caller's loss is
    NaN and the trainer reports it as such.
    """
    covariances = covariances.double()
    if not torch.isfinite(covariances).all():
        return torch.full_like(covariances, math.nan)
    eye = torch.eye(covariances.shape[-1], dtype=covariances.dtype, device=covariances.device)
    scale = covariances.diagonal(dim1=-2, dim2=-1).mean(-1).abs().clamp_min(_TINY)      # [K]
    eps = jitter * scale
    for _ in range(max_tries):
        factor, info = torch.linalg.cholesky_ex(covariances + eps[:, None, None] * eye)
        failed = info > 0
        if not failed.any():
            return factor
        eps = torch.where(failed, torch.where(eps > 0, eps * 10, 1e-10 * scale), eps)
    raise FloatingPointError(f"covariance not positive definite even with a jitter of {eps.max().item():.3g}")


def component_log_densities(z: torch.Tensor, means: torch.Tensor, covariances: torch.Tensor,
                            jitter: float = 1e-6) -> torch.Tensor:
    """log N(z_n; mu_k, Sigma_k) for every sample and component: [N, K] float64."""
    z = z.double()
    means = means.double()
    dim = z.shape[1]
    diff = z[:, None, :] - means[None]                                        # [N, K, D]
    if covariances.dim() == 2:
        variances = covariances.double().clamp_min(_TINY)                     # [K, D]
        mahalanobis = (diff**2 / variances).sum(-1)
        log_det = variances.log().sum(-1)
    else:
        factor = cholesky_jittered(covariances, jitter)                        # [K, D, D]
        solved = torch.linalg.solve_triangular(factor, diff.permute(1, 2, 0), upper=False)   # [K, D, N]
        mahalanobis = (solved**2).sum(1).T                                     # [N, K]
        log_det = 2 * factor.diagonal(dim1=-2, dim2=-1).log().sum(-1)          # [K]
    return -0.5 * (dim * LOG_2PI + log_det + mahalanobis)


def energy(z: torch.Tensor, log_weights: torch.Tensor, means: torch.Tensor, covariances: torch.Tensor,
           jitter: float = 1e-6) -> torch.Tensor:
    """Sample energy -log sum_k w_k N(z; mu_k, Sigma_k): [N] float64.

    log_weights: [K] mixture log-weights, or [N, K] per-sample log-memberships.
    """
    log_joint = log_weights.double() + component_log_densities(z, means, covariances, jitter)
    return -torch.logsumexp(log_joint, dim=1)


def params_from_memberships(z: torch.Tensor, memberships: torch.Tensor, covariance_type: str = "full",
                            reg_covar: float | torch.Tensor = 0.0):
    """Mixture weights [K], means [K, D] and covariances of z [N, D] under soft memberships [N, K].

    Differentiable (DAGMM estimates its GMM this way on every batch) and also the M-step of EM.
    reg_covar (a number or one value per dimension) is added to every variance.
    """
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(f"covariance_type must be one of {COVARIANCE_TYPES}, got {covariance_type!r}")
    z = z.double()
    memberships = memberships.double()
    counts = memberships.sum(0) + _TINY                                        # [K]
    weights = counts / counts.sum()
    means = memberships.T @ z / counts[:, None]                                # [K, D]
    diff = z[:, None, :] - means[None]                                         # [N, K, D]
    reg = torch.as_tensor(reg_covar, dtype=z.dtype, device=z.device).expand(z.shape[1])
    if covariance_type == "diag":
        variances = torch.einsum("nk,nkd->kd", memberships, diff**2) / counts[:, None]
        return weights, means, variances + reg
    covariances = torch.einsum("nk,nki,nkj->kij", memberships, diff, diff) / counts[:, None, None]
    return weights, means, covariances + torch.diag_embed(reg)


def covariance_penalty(covariances: torch.Tensor) -> torch.Tensor:
    """DAGMM's guard against collapsing components: sum over components and dims of 1 / variance."""
    variances = covariances if covariances.dim() == 2 else covariances.diagonal(dim1=-2, dim2=-1)
    return (1.0 / variances.double().clamp_min(_TINY)).sum()


def kmeans_plus_plus(z: torch.Tensor, n_components: int, seed: int) -> torch.Tensor:
    """k-means++ seeding of n_components means from the rows of z [N, D] (distances on standardised z)."""
    points = z.detach().double().cpu()
    scaled = points / points.std(0).clamp_min(_TINY)
    generator = torch.Generator().manual_seed(seed)
    chosen = [int(torch.randint(len(points), (1,), generator=generator))]
    nearest = ((scaled - scaled[chosen[0]]) ** 2).sum(1)
    for _ in range(1, n_components):
        probabilities = nearest / nearest.sum() if nearest.sum() > 0 else torch.full_like(nearest, 1 / len(nearest))
        chosen.append(int(torch.multinomial(probabilities, 1, generator=generator)))
        nearest = torch.minimum(nearest, ((scaled - scaled[chosen[-1]]) ** 2).sum(1))
    return points[chosen].to(z.device)


def fit_em(z: torch.Tensor, n_components: int, covariance_type: str = "diag", reg_covar: float = 1e-4,
           max_iter: int = 100, tol: float = 1e-5, init: tuple | None = None, seed: int = 0, jitter: float = 1e-6):
    """Maximum-likelihood GMM on fixed samples z [N, D] by expectation-maximisation (no gradients).

    reg_covar is relative: reg_covar * var(z_d) is added to every variance of dimension d, so
    the floor means the same on any scale. EM starts from k-means++ means (the first
    memberships are the hard nearest-mean assignments). With init = (weights, means,
    covariances) of a previous fit, EM also runs from there, the start reaching the higher
    likelihood wins (a warm start alone can keep a component that the data moved away from
    dead for good), and the components are ordered to match init's means, so a component keeps
    its index from one refit to the next. Returns (weights [K], means [K, D], covariances).
    """
    from scipy.optimize import linear_sum_assignment

    z = z.detach().double()
    if len(z) < n_components:
        raise ValueError(f"cannot fit {n_components} mixture components to {len(z)} samples")
    floor = reg_covar * z.var(0, unbiased=False).clamp_min(_TINY)
    means = kmeans_plus_plus(z, n_components, seed)
    nearest = torch.nn.functional.one_hot(torch.cdist(z, means).argmin(1), n_components).double()
    starts = [params_from_memberships(z, nearest, covariance_type, floor)]
    if init is not None:
        starts.append(tuple(t.detach().double() for t in init))
    fits = [_expectation_maximisation(z, start, covariance_type, floor, max_iter, tol, jitter) for start in starts]
    (weights, means, covariances), _ = max(fits, key=lambda fit: fit[1])
    if init is None:
        return weights, means, covariances
    scale = z.std(0).clamp_min(_TINY)
    cost = torch.cdist(init[1].detach().double().to(z.device) / scale, means / scale)       # [K previous, K new]
    _, order = linear_sum_assignment(cost.cpu().numpy())
    order = torch.as_tensor(order, device=z.device)
    return weights[order], means[order], covariances[order]


def _expectation_maximisation(z, start, covariance_type, floor, max_iter, tol, jitter):
    """EM iterations from start = (weights, means, covariances); returns (parameters, mean log-likelihood)."""
    weights, means, covariances = start
    previous = -math.inf
    for _ in range(max_iter):
        log_joint = weights.clamp_min(_TINY).log() + component_log_densities(z, means, covariances, jitter)
        log_likelihood = torch.logsumexp(log_joint, dim=1)                     # [N]
        memberships = (log_joint - log_likelihood[:, None]).exp()
        weights, means, covariances = params_from_memberships(z, memberships, covariance_type, floor)
        mean_log_likelihood = float(log_likelihood.mean())
        if abs(mean_log_likelihood - previous) < tol:
            break
        previous = mean_log_likelihood
    return (weights, means, covariances), mean_log_likelihood
