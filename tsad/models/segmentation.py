"""Temporal segmentation for Seq2GMM (tsad/models/seq2gmm.py; this module registers no model).

A series is cut into S segments at the breakpoints of a piecewise-linear (pwlf) fit of S
continuous lines to its first principal component; neighbouring segments share their
breakpoint step. Breakpoints are fitted once per data set and cached on disk
($TSAD_CACHE_DIR, default ~/.cache/tsad). choose_n_segments picks S when it is not given.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

SEGMENT_SEED = 0  # pwlf's differential evolution and the automatic-S clustering are seeded with this


def principal_component(series: np.ndarray) -> np.ndarray:
    """The series [T, C] projected on its own first principal direction: [T] (the series itself if C = 1)."""
    centred = series.astype(np.float64) - series.mean(axis=0)
    if series.shape[1] == 1:
        return centred[:, 0]
    _, _, directions = np.linalg.svd(centred, full_matrices=False)
    return centred @ directions[0]


def fit_breakpoints(series: np.ndarray, n_segments: int, freedom: float, max_points: int, maxiter: int,
                    popsize: int) -> np.ndarray:
    """Integer breakpoints 0 = b_0 < ... < b_S = T - 1 of a series [T, C] from a pwlf fit.

    Breakpoint i is searched within +- freedom * T / S of the even split i * T / S, so no
    segment degenerates to a few steps. Series longer than max_points are fitted on an
    evenly resampled copy (the breakpoints are in original steps either way). Series too short
    for a fit (fewer than 3 steps per segment) are split evenly.
    """
    import pwlf

    last = len(series) - 1
    n_segments = max(1, min(n_segments, last))
    even = np.round(np.linspace(0, last, n_segments + 1)).astype(np.int64)
    if n_segments == 1 or freedom == 0 or len(series) < 3 * n_segments:
        return even
    signal = principal_component(series)
    steps = np.arange(len(signal), dtype=np.float64)
    if len(signal) > max_points:
        grid = np.linspace(0, last, max_points)
        signal, steps = np.interp(grid, steps, signal), grid
    centres = last * np.arange(1, n_segments) / n_segments
    half_width = freedom * last / n_segments
    bounds = np.stack([centres - half_width, centres + half_width], axis=1)
    model = pwlf.PiecewiseLinFit(steps, signal)
    fitted = model.fit(n_segments, bounds=bounds, seed=SEGMENT_SEED, maxiter=maxiter, popsize=popsize, tol=1e-2,
                       atol=1e-4, polish=False)
    breaks = np.round(fitted).astype(np.int64)
    for i in range(1, n_segments):  # strictly increasing, room left for the segments after i
        breaks[i] = min(max(breaks[i], breaks[i - 1] + 1), last - (n_segments - i))
    breaks[0], breaks[-1] = 0, last
    return breaks


def series_key(series: np.ndarray) -> str:
    return hashlib.blake2b(np.ascontiguousarray(series, dtype=np.float32).tobytes() + str(series.shape).encode(),
                           digest_size=16).hexdigest()


def cache_root() -> Path:
    return Path(os.environ.get("TSAD_CACHE_DIR") or Path.home() / ".cache" / "tsad")


class Segmenter:
    """Breakpoints for every series it is asked about: fitted per data set, cached on disk and in memory."""

    def __init__(self, n_segments: int, freedom: float, max_points: int, maxiter: int, popsize: int):
        self.settings = {"n_segments": n_segments, "freedom": freedom, "max_points": max_points, "maxiter": maxiter,
                         "popsize": popsize, "seed": SEGMENT_SEED}
        self.known: dict[str, np.ndarray] = {}

    def fit(self, series: np.ndarray) -> np.ndarray:
        return fit_breakpoints(series, self.settings["n_segments"], self.settings["freedom"],
                               self.settings["max_points"], self.settings["maxiter"], self.settings["popsize"])

    def prepare(self, values: list[np.ndarray]) -> None:
        """Segment a whole data set, or load its breakpoints from the cache folder when fitted before."""
        import pwlf

        todo = {}
        for series in values:
            key = series_key(series)
            if key not in self.known:
                todo[key] = series
        if not todo:
            return
        settings = json.dumps({**self.settings, "pwlf": pwlf.__version__}, sort_keys=True)
        digest = hashlib.sha256(settings.encode() + "".join(sorted(todo)).encode()).hexdigest()[:32]
        path = cache_root() / "seq2gmm_segments" / f"{digest}.npz"
        if path.exists():
            with np.load(path, allow_pickle=False) as cached:
                counts = np.cumsum(cached["counts"])[:-1]
                self.known.update(zip(cached["keys"].tolist(), np.split(cached["breaks"], counts)))
            log.info("seq2gmm: breakpoints of %d series loaded from %s", len(todo), path)
            return
        started = time.perf_counter()
        fitted = {key: self.fit(series) for key, series in todo.items()}
        seconds = time.perf_counter() - started
        log.info("seq2gmm: pwlf segmentation of %d series (S=%d) took %.1f s (%.1f ms per series); cached in %s",
                 len(todo), self.settings["n_segments"], seconds, 1000 * seconds / len(todo), path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.stem}.{os.getpid()}.npz")
        np.savez(temporary, keys=np.array(list(fitted)), breaks=np.concatenate(list(fitted.values())),
                 counts=np.array([len(b) for b in fitted.values()]))
        temporary.replace(path)
        self.known.update(fitted)

    def __call__(self, series: np.ndarray) -> np.ndarray:
        key = series_key(series)
        if key not in self.known:
            self.known[key] = self.fit(series)
        return self.known[key]


def choose_n_segments(values: list[np.ndarray], largest: int, make_segmenter, sample_size: int = 64) -> int:
    """Pick S in 2..largest: segment a sample of series, cluster the segments (resampled to a fixed
    length) into S groups with k-means and keep increasing S while the Calinski-Harabasz score rises."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import calinski_harabasz_score

    rng = np.random.default_rng(SEGMENT_SEED)
    sample = [values[i] for i in rng.choice(len(values), size=min(sample_size, len(values)), replace=False)]
    best_s, best_score = 2, -np.inf
    for n_segments in range(2, largest + 1):
        segmenter = make_segmenter(n_segments)
        segmenter.prepare(sample)
        shapes = []
        for series in sample:
            breaks = segmenter(series)
            for start, stop in zip(breaks[:-1], breaks[1:]):
                piece = series[start:stop + 1]
                grid = np.linspace(0, len(piece) - 1, 32)
                shapes.append(np.stack([np.interp(grid, np.arange(len(piece)), c) for c in piece.T], axis=1).ravel())
        shapes = np.asarray(shapes)
        if len(shapes) <= n_segments:
            break
        labels = KMeans(n_segments, n_init=4, random_state=SEGMENT_SEED).fit_predict(shapes)
        score = calinski_harabasz_score(shapes, labels) if len(set(labels)) > 1 else -np.inf
        log.info("seq2gmm: S=%d segments, Calinski-Harabasz %.2f", n_segments, score)
        if score <= best_score:
            break
        best_s, best_score = n_segments, score
    return best_s
