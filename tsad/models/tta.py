"""Test-time augmentation for window models: average scores over `n` perturbed copies of the input."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tsad.settings.fields import Section, setting


@dataclass(frozen=True)
class TestTimeAugmentation(Section):
    """The tta config section: average window scores over `n` label-preserving perturbations of the input
    (n=1: off).

    Augmentation k > 0 adds Gaussian jitter (std `jitter`, in normalised units), scales each
    channel by 1 + N(0, scale), and shifts the window grid by a random offset in
    [0, score_stride) (only matters when score_stride > 1). Applies to window models.
    """

    n: int = setting(1, at_least=1, at_most=1000)
    jitter: float = setting(0.01, at_least=0)
    scale: float = setting(0.02, at_least=0)
    seed: int = setting(0, at_least=0)

    def variants(self, series: np.ndarray, stride: int):
        """Yield (augmented series, window-grid offset); the first is the original."""
        rng = np.random.default_rng([self.seed, len(series)])
        yield series, 0
        for _ in range(self.n - 1):
            scaled = series * (1 + rng.normal(scale=self.scale, size=(1, series.shape[1])))
            jittered = scaled + rng.normal(scale=self.jitter, size=series.shape)
            yield jittered.astype(series.dtype), int(rng.integers(0, stride)) if stride > 1 else 0
