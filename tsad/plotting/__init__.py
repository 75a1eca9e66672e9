"""Every figure of a run folder: loss curves, score distributions, ROC/PR, example series, reconstructions.

`plot_run` writes them all; the shared colours, `save` and `shade` live in tsad.plotting.style,
the figures of numbers in tsad.plotting.curves and those of test series in tsad.plotting.series.
"""

from __future__ import annotations

from pathlib import Path

from tsad.evaluation.levels import level_arrays
from tsad.plotting.curves import plot_losses, plot_roc_pr, plot_score_distribution
from tsad.plotting.series import plot_examples, plot_reconstructions
from tsad.plotting.style import ANOMALY_COLOR, NORMAL_COLOR, THRESHOLD_COLOR, save, shade

__all__ = ["ANOMALY_COLOR", "NORMAL_COLOR", "THRESHOLD_COLOR", "plot_losses", "plot_run", "save", "shade"]


def plot_run(directory: Path, detector, data, scores, thresholds: dict, levels: list[str]) -> None:
    """data: the run's DatasetSplits; scores: the test scores; thresholds: one per level in `levels`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    plt.rcParams.update({"figure.dpi": 110, "axes.spines.top": False, "axes.spines.right": False})
    if detector.history:
        save(plot_losses(detector.history), directory / "loss.png")
    for level in levels:
        labels, level_scores = level_arrays(data.test, scores, level)
        save(plot_score_distribution(labels, level_scores, thresholds[level], level), directory / f"scores_{level}.png")
        if labels.min() != labels.max():
            save(plot_roc_pr(labels, level_scores, level, thresholds[level]), directory / f"roc_pr_{level}.png")
    save(plot_examples(data, scores, thresholds), directory / "examples.png")
    if getattr(detector, "can_reconstruct", False):
        save(plot_reconstructions(detector, data), directory / "reconstructions.png")
