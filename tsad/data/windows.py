"""Sliding windows over series and the way back to one score per time step."""

from __future__ import annotations

import numpy as np

# How overlapping windows combine per step (windows_to_steps) and series scores come from step scores
# (aggregate_series): the allowed values of a window model's step_reduce and series_aggregate.
STEP_REDUCES = ("mean", "max")
SERIES_AGGREGATES = ("max", "mean", "top10")


def window_starts(length: int, window: int, stride: int, offset: int = 0) -> np.ndarray:
    """Start indices of windows covering a series of `length` steps: the grid begins at `offset`
    (plus a window at 0 when offset > 0) and the last window ends at the end.

    A series shorter than the window gets one window starting at 0 (see `pad_to_window`).
    """
    if length <= window:
        return np.array([0])
    starts = np.arange(offset % stride if stride > 1 else 0, length - window + 1, stride)
    if len(starts) == 0 or starts[0] != 0:
        starts = np.insert(starts, 0, 0)
    if starts[-1] != length - window:
        starts = np.append(starts, length - window)
    return starts


def pad_to_window(series: np.ndarray, window: int) -> tuple[np.ndarray, int]:
    """Left-pad a series shorter than `window` by repeating its first value; returns (padded, n_pad)."""
    n_pad = max(0, window - len(series))
    if n_pad == 0:
        return series, 0
    return np.concatenate([np.repeat(series[:1], n_pad, axis=0), series]), n_pad


def padding_note(lengths, window: int) -> str | None:
    """What pad_to_window will do to series of these `lengths` when `window` is longer than every one, as words with
    the fix; None when a series is as long as the window."""
    longest = int(max(lengths))
    if window <= longest:
        return None
    return (f"model.window={window} is longer than every series (the longest has {longest} steps): each is "
            f"left-padded to {window} steps by repeating its first value, so every window is mostly padding; "
            f"use model.window={longest} or less")


def make_windows(series: np.ndarray, window: int, stride: int, offset: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
    """Windows [N_w, window, C] of one series [T, C], their starts and the left padding used."""
    padded, n_pad = pad_to_window(series, window)
    starts = window_starts(len(padded), window, stride, offset)
    index = starts[:, None] + np.arange(window)[None, :]
    return padded[index], starts, n_pad


def windows_to_steps(window_scores: np.ndarray, starts: np.ndarray, length: int, reduce: str = "mean",
                     n_pad: int = 0) -> np.ndarray:
    """Combine per-window step scores [N_w, window] into one score per step [length].

    Windows overlapping a step are combined by `reduce` (mean or max); NaN entries mean
    "no score for this step from this window" (e.g. models that score only the last step).
    Steps no window scores (warm-up) take the nearest scored step's value.
    """
    n_windows, window = window_scores.shape
    total = length + n_pad
    index = (starts[:, None] + np.arange(window)[None, :]).ravel()
    flat = window_scores.ravel().astype(np.float64)
    valid = ~np.isnan(flat)
    index, flat = index[valid], flat[valid]
    if reduce == "mean":
        sums = np.bincount(index, weights=flat, minlength=total)
        counts = np.bincount(index, minlength=total)
        with np.errstate(invalid="ignore", divide="ignore"):
            steps = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    elif reduce == "max":
        steps = np.full(total, -np.inf)
        np.maximum.at(steps, index, flat)
        steps[np.isneginf(steps)] = np.nan
    else:
        raise ValueError(f"reduce must be one of {', '.join(STEP_REDUCES)}, got {reduce!r}")
    steps = _fill_nearest(steps)
    return steps[n_pad:]


def _fill_nearest(steps: np.ndarray) -> np.ndarray:
    scored = np.flatnonzero(~np.isnan(steps))
    if len(scored) == 0:
        return np.zeros_like(steps)
    if len(scored) == len(steps):
        return steps
    positions = np.arange(len(steps))
    right = np.clip(np.searchsorted(scored, positions), 0, len(scored) - 1)
    left = np.clip(right - 1, 0, len(scored) - 1)
    nearest = np.where(np.abs(scored[left] - positions) <= np.abs(scored[right] - positions),
                       scored[left], scored[right])
    return steps[nearest]


def aggregate_series(step_scores: np.ndarray, how: str) -> float:
    """One score per series from its step scores: max, mean, or top10 (mean of the top 10% steps).

    Unscored (NaN) steps are left out; a series with none scored gets 0.
    """
    step_scores = step_scores[np.isfinite(step_scores)]
    if len(step_scores) == 0:
        return 0.0
    if how == "max":
        return float(np.max(step_scores))
    if how == "mean":
        return float(np.mean(step_scores))
    if how == "top10":
        k = max(1, int(np.ceil(0.1 * len(step_scores))))
        return float(np.mean(np.sort(step_scores)[-k:]))
    raise ValueError(f"series aggregate must be one of {', '.join(SERIES_AGGREGATES)}, got {how!r}")


def causal_window_scores(series: np.ndarray, window: int, score_windows) -> np.ndarray:
    """[T] scores of a series [T, C]: each row from the window ending at it (NaN before the first full one).

    Every row is scored by its own window, whatever the model's score_stride: a stride would make the
    rows between two scored window ends reuse an older score and miss what arrived since.
    score_windows maps windows [N, window, C] to per-step scores [N, window]; a window's score is
    its last finite step score.
    """
    scores = np.full(len(series), np.nan)
    if len(series) < window:
        return scores
    windows = np.lib.stride_tricks.sliding_window_view(series, window, axis=0)      # [T - window + 1, C, window]
    step_scores = np.asarray(score_windows(windows.transpose(0, 2, 1)), dtype=np.float64)  # [N, window]
    finite = np.isfinite(step_scores)
    last = window - 1 - np.argmax(finite[:, ::-1], axis=1)
    scores[window - 1:] = np.where(finite.any(axis=1), step_scores[np.arange(len(step_scores)), last], np.nan)
    return scores
