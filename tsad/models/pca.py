"""PCA on flattened windows: reconstruction error, or the density of a window's principal components."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tsad.errors import UserError
from tsad.models.base import register
from tsad.models.state_files import SavedArrays
from tsad.models.window_baseline import WindowBaseline, broadcast_window_score
from tsad.settings.fields import setting

# The fitted attributes of scikit-learn's PCA and GaussianMixture that a saved detector keeps (besides counts).
PCA_ARRAYS = ("components_", "explained_variance_", "explained_variance_ratio_", "singular_values_", "mean_",
              "noise_variance_")
MIXTURE_ARRAYS = ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_")


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

        pca = PCA(n_components=self.pca_components(), random_state=self.seed)
        if self.scoring == "reconstruction":
            return pca.fit(windows)
        if len(windows) < 2 * self.density_components:
            raise UserError(f"model.density_components={self.density_components} needs at least "
                            f"{2 * self.density_components} train windows, got {len(windows)}; lower it")
        mixture = GaussianMixture(self.density_components, covariance_type="full", random_state=self.seed)
        return make_pipeline(pca, mixture).fit(windows.astype(np.float64))   # log-likelihoods need float64

    def pca_components(self) -> int | float:
        return int(self.n_components) if self.n_components >= 1 else self.n_components

    @property
    def pca(self):
        return self.estimator if self.scoring == "reconstruction" else self.estimator[0]   # a pipeline's first step

    def estimator_arrays(self) -> dict[str, np.ndarray]:
        arrays = {f"pca_{name}": np.asarray(getattr(self.pca, name)) for name in PCA_ARRAYS}
        if self.scoring == "density":
            arrays.update({f"mixture_{name}": getattr(self.estimator[-1], name) for name in MIXTURE_ARRAYS})
        return arrays

    def estimator_from_arrays(self, saved: SavedArrays):
        """scikit-learn's PCA (and mixture) with the saved fitted attributes: the ones their scoring reads."""
        from sklearn.decomposition import PCA
        from sklearn.mixture import GaussianMixture
        from sklearn.pipeline import make_pipeline

        n_kept = len(saved.array("pca_components_", (None, self.feature_width), "f"))
        pca = PCA(n_components=self.pca_components(), random_state=self.seed)
        shapes = {"components_": (n_kept, self.feature_width), "mean_": (self.feature_width,),
                  "noise_variance_": ()}
        for name in PCA_ARRAYS:
            setattr(pca, name, saved.array(f"pca_{name}", shapes.get(name, (n_kept,)), "f"))
        pca.noise_variance_ = float(pca.noise_variance_)
        pca.n_components_, pca.n_features_in_ = n_kept, self.feature_width
        if self.scoring == "reconstruction":
            return pca
        mixture = GaussianMixture(self.density_components, covariance_type="full", random_state=self.seed)
        square = (self.density_components, n_kept, n_kept)
        shapes = {"weights_": (self.density_components,), "means_": (self.density_components, n_kept)}
        for name in MIXTURE_ARRAYS:
            setattr(mixture, name, saved.array(f"mixture_{name}", shapes.get(name, square), "f"))
        mixture.n_features_in_ = n_kept
        return make_pipeline(pca, mixture)

    def reconstruct_windows(self, windows: np.ndarray) -> np.ndarray:
        pca = self.pca
        flat = windows.reshape(len(windows), -1)
        return pca.inverse_transform(pca.transform(flat)).reshape(windows.shape)

    def score_windows(self, windows: np.ndarray) -> np.ndarray:
        if self.scoring == "density":
            flat = windows.reshape(len(windows), -1).astype(np.float64)
            return broadcast_window_score(-self.estimator.score_samples(flat), windows.shape[1])
        return ((windows - self.reconstruct_windows(windows)) ** 2).sum(axis=2)
