"""PCA on flattened windows: reconstruction error, or the density of a window's principal components."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tsad.errors import UserError
from tsad.models.base import register
from tsad.models.window_baseline import WindowBaseline, broadcast_window_score
from tsad.settings.fields import setting


@register("pca")
@dataclass(eq=False)
class PCADetector(WindowBaseline):
    """PCA on flattened windows. scoring=reconstruction: a step's score is its squared reconstruction error over
    channels. scoring=density: a window's score is its negative log-likelihood under a Gaussian mixture of
    `density_components` components (scikit-learn's, full covariances) fitted to the train windows' principal
    components: one component is Hotelling's T^2 up to a constant; more model a normal class with several
    shapes. Density ignores what the components leave out, reconstruction ignores where inside them a window
    lies."""

    n_components: float = setting(0.95, above=0)   # < 1: a fraction of the variance; from 1 up: a count
    scoring: str = setting("reconstruction", choices=("reconstruction", "density"))
    density_components: int = setting(1, at_least=1)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_components >= 1 and not float(self.n_components).is_integer():
            raise UserError(f"model.n_components={self.n_components} is neither a fraction of the variance (< 1) "
                            f"nor a whole number of components; use e.g. 0.95 or 5")

    def fit_windows(self, windows: np.ndarray):
        from sklearn.decomposition import PCA
        from sklearn.mixture import GaussianMixture
        from sklearn.pipeline import make_pipeline

        n_components = int(self.n_components) if self.n_components >= 1 else self.n_components
        pca = PCA(n_components=n_components, random_state=self.seed)
        if self.scoring == "reconstruction":
            return pca.fit(windows)
        if len(windows) < 2 * self.density_components:
            raise UserError(f"model.density_components={self.density_components} needs at least "
                            f"{2 * self.density_components} train windows, got {len(windows)}; lower it")
        mixture = GaussianMixture(self.density_components, covariance_type="full", random_state=self.seed)
        return make_pipeline(pca, mixture).fit(windows.astype(np.float64))   # log-likelihoods need float64

    def reconstruct_windows(self, windows: np.ndarray) -> np.ndarray:
        pca = self.estimator if self.scoring == "reconstruction" else self.estimator[0]   # a pipeline's first step
        flat = windows.reshape(len(windows), -1)
        return pca.inverse_transform(pca.transform(flat)).reshape(windows.shape)

    def score_windows(self, windows: np.ndarray) -> np.ndarray:
        if self.scoring == "density":
            flat = windows.reshape(len(windows), -1).astype(np.float64)
            return broadcast_window_score(-self.estimator.score_samples(flat), windows.shape[1])
        return ((windows - self.reconstruct_windows(windows)) ** 2).sum(axis=2)
