"""Window scoring: windows out of each series, one score per step back (with test-time augmentation)."""

from __future__ import annotations

import numpy as np

from tsad.data.series import SeriesSet
from tsad.data.windows import aggregate_series, causal_window_scores, make_windows, windows_to_steps
from tsad.models.base import Scores


class WindowScorer:
    """Mixin for detectors that score fixed-length windows: windows out, one score per step back.

    Needs attributes window, score_stride, step_reduce and series_aggregate. A detector that
    can rebuild windows (`reconstruct_windows`) also gets `reconstruct` for the plots.
    Under `runtime.causal` (online protocols) each step gets the score of the window ending at
    it only, and steps before the first full window stay unscored (NaN).
    """

    # Seconds scoring runs before its progress bar appears: short scoring (tests, NAB's many small calls) shows none.
    PROGRESS_DELAY = 2.0

    @property
    def causal(self) -> bool:
        return self.runtime.causal

    @property
    def can_reconstruct(self) -> bool:
        return hasattr(self, "reconstruct_windows")

    def reconstruct(self, data: SeriesSet) -> list[np.ndarray]:
        """Reconstructions [T_i, C] of each series in original units (overlapping windows averaged)."""
        rebuilt = []
        for series in self._normalised(data).values:
            windows, starts, n_pad = make_windows(series, self.window, self.score_stride)
            output = self.reconstruct_windows(windows)
            channels = [windows_to_steps(output[:, :, c], starts, len(series), "mean", n_pad)
                        for c in range(series.shape[1])]
            rebuilt.append(np.stack(channels, axis=1) * self.normaliser.scale + self.normaliser.shift)
        return rebuilt

    def scoring_progress(self, data: SeriesSet, description: str = "scoring"):
        """A tqdm bar over the steps of `data` (times the test-time augmentations), shown under the trainer's
        rule (trainer.progress: auto = only when stderr is a terminal) once scoring has run PROGRESS_DELAY s."""
        from tqdm.auto import tqdm

        from tsad.training.trainer import shows_progress

        total = sum(len(series) for series in data.values) * self.runtime.tta.n
        return tqdm(total=total, desc=f"{self.name} {description}", unit="step", unit_scale=True, leave=False,
                    disable=not shows_progress(self.runtime.trainer.progress),
                    delay=self.PROGRESS_DELAY)

    def _window_scores_to_scores(self, data: SeriesSet, score_windows) -> Scores:
        """score_windows: callable mapping windows [N_w, L, C] to scores [N_w, L] (NaN = not scored).

        With test-time augmentation the per-step scores of every variant are averaged.
        """
        steps = []
        with self.scoring_progress(data) as progress:
            for series in data.values:
                variants = []
                for augmented, offset in self.runtime.tta.variants(series, self.score_stride):
                    if self.causal:
                        variants.append(causal_window_scores(augmented, self.window, score_windows))
                    else:
                        windows, starts, n_pad = make_windows(augmented, self.window, self.score_stride, offset)
                        variants.append(windows_to_steps(score_windows(windows), starts, len(series),
                                                         self.step_reduce, n_pad))
                    progress.update(len(series))
                steps.append(np.mean(variants, axis=0))
        return Scores(steps, np.array([aggregate_series(s, self.series_aggregate) for s in steps]))
