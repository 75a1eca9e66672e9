"""PCA's density scoring (tsad/models/pca.py): the Gaussian mixture over a window's principal components."""

import numpy as np
import pytest

from tsad.data.series import SeriesSet
from tsad.errors import UserError
from tsad.models.base import Detector, build_detector

LENGTH = 12


def two_shapes(n_series: int, seed: int) -> np.ndarray:
    """Series that are +-3 times one shape plus a little noise: the normal class has two modes along one
    principal component, and the point between them (the zero series) lies inside the components' span."""
    rng = np.random.default_rng(seed)
    shape = np.sin(np.linspace(0, 2 * np.pi, LENGTH))
    signs = rng.choice([-1.0, 1.0], size=n_series)
    return signs[:, None] * 3 * shape + 0.05 * rng.normal(size=(n_series, LENGTH))


def as_series(rows: np.ndarray) -> SeriesSet:
    return SeriesSet(values=[row[:, None] for row in rows])


def whole_series_pca(**params):
    detector = build_detector("pca", {"window": LENGTH, "stride": 1, "n_components": 3, **params}, seed=0)
    return detector.fit(as_series(two_shapes(200, seed=0)))


def test_a_mixture_finds_the_series_between_two_normal_shapes_that_reconstruction_and_one_gaussian_miss():
    normal = two_shapes(50, seed=1)
    between = 0.05 * np.random.default_rng(2).normal(size=(5, LENGTH))      # neither shape, nothing left out
    test = as_series(np.concatenate([normal, between]))
    rank_of_between = {}
    for name, params in {"reconstruction": {}, "one gaussian": {"scoring": "density"},
                         "two components": {"scoring": "density", "density_components": 2}}.items():
        series_scores = whole_series_pca(**params).score(test).series
        rank_of_between[name] = (series_scores[50:].min() > series_scores[:50].max())
    assert rank_of_between == {"reconstruction": False, "one gaussian": False, "two components": True}


def test_one_component_scores_the_gaussian_negative_log_likelihood_of_the_principal_components():
    """Against the textbook computation: project onto the top principal directions (an SVD of the centred train
    windows), fit the Gaussian's mean and covariance (maximum likelihood, plus scikit-learn's 1e-6 ridge), and
    take -log N with scipy. The density does not depend on which orthonormal basis spans the components."""
    from scipy.stats import multivariate_normal

    detector = whole_series_pca(scoring="density")
    train = np.concatenate([row.T for row in detector.normaliser.transform(as_series(two_shapes(200, 0)).values)])
    test_rows = np.concatenate([two_shapes(10, seed=3), 0.5 * two_shapes(5, seed=4)])
    test = np.concatenate([row.T for row in detector.normaliser.transform(as_series(test_rows).values)])
    train, test = train.astype(np.float64), test.astype(np.float64)
    centre = train.mean(axis=0)
    directions = np.linalg.svd(train - centre, full_matrices=False)[2][:3]           # [3, LENGTH]
    projected_train, projected_test = (train - centre) @ directions.T, (test - centre) @ directions.T
    gaussian = multivariate_normal(projected_train.mean(axis=0),
                                   np.cov(projected_train.T, bias=True) + 1e-6 * np.eye(3))
    expected = -gaussian.logpdf(projected_test)
    scores = detector.score(as_series(test_rows))
    assert scores.series == pytest.approx(expected, rel=1e-6)
    for steps, value in zip(scores.steps, expected):
        assert steps == pytest.approx(np.full(LENGTH, value), rel=1e-6)   # every step of the one window


def test_density_scoring_reconstructs_from_the_same_components_as_reconstruction_scoring():
    test = as_series(two_shapes(5, seed=4))
    density = whole_series_pca(scoring="density").reconstruct(test)
    for with_density, plain in zip(density, whole_series_pca().reconstruct(test)):
        np.testing.assert_allclose(with_density, plain, atol=1e-3)   # density fits in float64, reconstruction float32


def test_a_saved_density_detector_scores_the_same_after_loading(tmp_path):
    detector, test = whole_series_pca(scoring="density", density_components=2), as_series(two_shapes(10, seed=5))
    detector.save(tmp_path)
    np.testing.assert_array_equal(Detector.load(tmp_path).score(test).series, detector.score(test).series)


def test_a_mixture_with_more_components_than_half_the_train_windows_is_refused():
    detector = build_detector("pca", {"window": LENGTH, "stride": 1, "n_components": 3, "scoring": "density",
                                      "density_components": 6}, seed=0)
    with pytest.raises(UserError, match="model.density_components=6 needs at least 12 train windows, got 10"):
        detector.fit(as_series(two_shapes(10, seed=0)))
