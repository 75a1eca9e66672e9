"""Isolation forest on flattened windows (scikit-learn), with out-of-bag scores of its train windows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tsad.data.series import SeriesSet
from tsad.errors import UserError
from tsad.models.base import Scores, register
from tsad.models.window_baseline import WindowBaseline, broadcast_window_score
from tsad.settings.fields import setting


def average_path_length(n: np.ndarray) -> np.ndarray:
    """c(n), the mean path length of an unsuccessful search in a binary search tree of n points
    (Liu et al. 2008): 2 H(n-1) - 2 (n-1) / n with H(i) ~ ln i + Euler's constant; c(1) = 0, c(2) = 1."""
    n = np.asarray(n, dtype=np.float64)
    safe = np.maximum(n, 3.0)
    c = 2.0 * (np.log(safe - 1.0) + np.euler_gamma) - 2.0 * (safe - 1.0) / safe
    return np.where(n <= 1, 0.0, np.where(n == 2, 1.0, c))


def node_depths(forest) -> list[np.ndarray]:
    """Depth of every node of every tree of a fitted sklearn IsolationForest (the root has depth 0)."""
    depths = []
    for tree in forest.estimators_:
        structure = tree.tree_
        depth = np.zeros(structure.node_count)
        for node in range(structure.node_count):           # children are numbered after their parent
            for child in (structure.children_left[node], structure.children_right[node]):
                if child >= 0:
                    depth[child] = depth[node] + 1
        depths.append(depth)
    return depths


def tree_path_lengths(forest, flat: np.ndarray, depths: list[np.ndarray]) -> np.ndarray:
    """Path length [n_trees, N] of each row of flat [N, F] in each tree of a fitted sklearn IsolationForest:
    depth of the leaf it reaches plus c(train points in that leaf), the terms of the forest's own score."""
    flat = np.asarray(flat, dtype=np.float32)
    lengths = np.empty((len(forest.estimators_), len(flat)))
    for t, (tree, features) in enumerate(zip(forest.estimators_, forest.estimators_features_)):
        columns = flat[:, features] if len(features) != flat.shape[1] else flat   # the forest's own rule
        leaves = tree.apply(columns)
        lengths[t] = depths[t][leaves] + average_path_length(tree.tree_.n_node_samples[leaves])
    return lengths


@register("iforest")
@dataclass(eq=False)
class IsolationForestDetector(WindowBaseline):
    """Isolation forest on flattened windows; score = negated sklearn score_samples."""

    n_estimators: int = setting(200, at_least=1)
    max_samples: int = setting(256, at_least=1)

    def fit_windows(self, windows: np.ndarray):
        from sklearn.ensemble import IsolationForest

        return IsolationForest(n_estimators=self.n_estimators, max_samples=min(self.max_samples, len(windows)),
                               random_state=self.seed).fit(windows)

    def score_windows(self, windows: np.ndarray) -> np.ndarray:
        scores = -self.estimator.score_samples(windows.reshape(len(windows), -1))
        return broadcast_window_score(scores, windows.shape[1])

    def score_train(self, train: SeriesSet) -> Scores:
        """Out-of-bag train scores: each window's path length is averaged over the trees whose sample
        holds no fitted window sharing a step with it (the score of the whole forest is the same average
        over every tree). The trees are the fitted ones, so train and test scores share one forest."""
        bags = [np.asarray(bag) for bag in self.estimator.estimators_samples_]   # rows of each tree's sample
        depths = node_depths(self.estimator)
        return self._score_train_out_of_sample(
            train, lambda windows, index, starts: self.score_windows_out_of_bag(windows, index, starts, bags, depths))

    def score_windows_out_of_bag(self, windows: np.ndarray, series_index: np.ndarray, starts: np.ndarray,
                                 bags: list[np.ndarray], depths: list[np.ndarray]) -> np.ndarray:
        forest = self.estimator
        # a window's position as one number, series after series, far enough apart never to overlap
        span = int(max(self.train_positions[:, 1].max(), starts.max())) + 2 * self.window
        scored = series_index * span + starts
        out_of_bag = np.empty((len(bags), len(windows)), dtype=bool)                # [n_trees, N_w]
        for t, bag in enumerate(bags):
            fitted = np.sort(self.train_positions[bag, 0] * span + self.train_positions[bag, 1])
            first = np.searchsorted(fitted, scored - (self.window - 1), side="left")
            last = np.searchsorted(fitted, scored + (self.window - 1), side="right")
            out_of_bag[t] = last == first          # no fitted window of this tree starts within window - 1 steps
        n_trees = out_of_bag.sum(axis=0)
        if (n_trees == 0).any():
            raise UserError("iforest: a train window lies in every tree's sample, so it has no out-of-bag score; "
                            "use threshold.source=val, more train data or a smaller model.max_samples")
        lengths = tree_path_lengths(forest, windows.reshape(len(windows), -1), depths)   # [n_trees, N_w]
        mean_length = (lengths * out_of_bag).sum(axis=0) / n_trees
        scores = 2.0 ** (-mean_length / average_path_length(forest.max_samples_))  # = -score_samples, out of bag
        return broadcast_window_score(scores, windows.shape[1])
