"""What every figure shares: colours, the x axis of a series (steps or its timestamps), shading and saving.

Colours come from Paul Tol's colour-blind safe palettes. The outcome shades of the example
series (detected, false alarm, missed) and the true-anomaly shade differ in hue and lightness
under every common colour-vision deficiency.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

NORMAL_COLOR, ANOMALY_COLOR, THRESHOLD_COLOR = "#4477aa", "#cc3311", "#222222"
DETECTED_COLOR, FALSE_ALARM_COLOR, MISSED_COLOR = "#0077bb", "#ddaa33", "#aa3377"
SERIES_THRESHOLD_COLOR = "#009988"
CHANNEL_COLORS = ("#332288", "#117733", "#88ccee", "#999933", "#882255", "#44aa99")


def save(figure, path: Path) -> None:
    """Write and close a figure; one drawn without a layout engine gets the tight layout."""
    import matplotlib.pyplot as plt

    if figure.get_layout_engine() is None:
        figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def shade(axis, mask: np.ndarray, color: str, label: str, x: np.ndarray | None = None, alpha: float = 0.25) -> None:
    """Shade the contiguous runs of True in mask; x: the positions of the steps (default 0, 1, ...).

    Spans keep an edge of their own colour so that a one-step run in a long series still shows.
    """
    edges = np.diff(np.r_[0, mask.astype(int), 0])
    bounds = np.arange(len(mask) + 1) - 0.5 if x is None else step_bounds(x)
    for k, (start, stop) in enumerate(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1))):
        axis.axvspan(bounds[start], bounds[stop], color=color, alpha=alpha, lw=0.6, label=label if k == 0 else None)


def step_bounds(x: np.ndarray) -> np.ndarray:
    """[T + 1] boundaries of the steps at positions x [T]: midpoints, and half a step beyond both ends."""
    if len(x) < 2:
        return np.concatenate([x, x])
    middles = x[:-1] + (x[1:] - x[:-1]) / 2
    return np.concatenate([[x[0] - (x[1] - x[0]) / 2], middles, [x[-1] + (x[-1] - x[-2]) / 2]])


def time_axis(timestamps, length: int, column: str | None) -> tuple[np.ndarray, str]:
    """x positions of a series' steps and their axis label: the timestamps (dates, or plain numbers) when they
    parse and never go back in time, else the step numbers."""
    steps = np.arange(length), "step"
    if timestamps is None or len(timestamps) != length or length == 0:
        return steps
    import pandas as pd

    values = np.asarray(timestamps)
    if np.issubdtype(values.dtype, np.number):
        x = values.astype(np.float64)
    else:
        try:
            with warnings.catch_warnings():  # pandas warns when it falls back to parsing each value on its own
                warnings.simplefilter("ignore", UserWarning)
                index = pd.to_datetime(values)
        except (ValueError, TypeError, OverflowError):
            return steps
        x = (index.tz_convert(None) if index.tz is not None else index).to_numpy()
    if pd.isna(x).any() or (x[1:] < x[:-1]).any():
        return steps
    return x, column or "time"


def format_time_axis(axis, x: np.ndarray) -> None:
    """Compact date labels on an axis whose x values are datetimes."""
    if np.issubdtype(x.dtype, np.datetime64):
        import matplotlib.dates as dates

        locator = dates.AutoDateLocator(minticks=3, maxticks=6)
        axis.xaxis.set_major_locator(locator)
        axis.xaxis.set_major_formatter(dates.ConciseDateFormatter(locator))
