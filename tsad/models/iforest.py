"""Isolation forest on flattened windows, with out-of-bag scores of its train windows: scikit-learn grows the
trees, which are then kept (and saved) as plain node arrays that tsad walks itself."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from tsad.data.series import SeriesSet
from tsad.errors import UserError
from tsad.models.base import Scores, register
from tsad.models.state_files import SavedArrays, damaged
from tsad.models.window_baseline import WindowBaseline, broadcast_window_score
from tsad.settings.fields import setting


def average_path_length(n: np.ndarray) -> np.ndarray:
    """c(n), the mean path length of an unsuccessful search in a binary search tree of n points
    (Liu et al. 2008): 2 H(n-1) - 2 (n-1) / n with H(i) ~ ln i + Euler's constant; c(1) = 0, c(2) = 1."""
    n = np.asarray(n, dtype=np.float64)
    safe = np.maximum(n, 3.0)
    c = 2.0 * (np.log(safe - 1.0) + np.euler_gamma) - 2.0 * (safe - 1.0) / safe
    return np.where(n <= 1, 0.0, np.where(n == 2, 1.0, c))


@dataclass
class IsolationTrees:
    """A fitted isolation forest as plain arrays: the nodes of every tree laid end to end (tree t holds nodes
    tree_starts[t] .. tree_starts[t + 1] - 1, its root first; children are node numbers, -1 at a leaf) and the
    rows of the fitted windows in each tree's sample (bag_rows, split at bag_starts). It scores as
    scikit-learn's IsolationForest does, bit for bit, and is saved and loaded as arrays, without pickle.

    The forest reads every feature of a window (scikit-learn's max_features=1.0), so trees need no feature subset.
    """

    tree_starts: np.ndarray     # [n_trees + 1]
    left: np.ndarray            # [n_nodes]
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray       # float64
    missing_left: np.ndarray    # where a NaN value goes
    node_samples: np.ndarray    # fitted points that reach each node
    bag_rows: np.ndarray
    bag_starts: np.ndarray      # [n_trees + 1]
    max_samples: int

    def __post_init__(self) -> None:
        self.depth = np.zeros(len(self.left))                  # root: 0
        frontier = self.tree_starts[:-1]
        while len(frontier):
            inner = frontier[self.left[frontier] >= 0]
            for children in (self.left[inner], self.right[inner]):
                self.depth[children] = self.depth[inner] + 1
            frontier = np.concatenate([self.left[inner], self.right[inner]])   # each node has one parent
        self.leaf_samples_length = average_path_length(self.node_samples)     # c(points in the leaf)
        # a leaf's term of scikit-learn's score, with its root at depth 1 and the same operations in the same order
        self.leaf_term = (self.depth + 1) + self.leaf_samples_length - 1.0

    @classmethod
    def of(cls, forest) -> IsolationTrees:
        """The trees of a fitted scikit-learn IsolationForest."""
        trees = [tree.tree_ for tree in forest.estimators_]
        starts = np.cumsum([0] + [tree.node_count for tree in trees])

        def joined(name: str, shift: bool = False) -> np.ndarray:
            parts = [getattr(tree, name) for tree in trees]
            if shift:
                parts = [np.where(part >= 0, part + start, -1) for part, start in zip(parts, starts)]
            return np.concatenate(parts)

        bags = [np.asarray(bag, dtype=np.int64) for bag in forest.estimators_samples_]
        return cls(starts, joined("children_left", True), joined("children_right", True),
                   joined("feature").astype(np.int64), joined("threshold"), joined("missing_go_to_left").astype(bool),
                   joined("n_node_samples").astype(np.int64), np.concatenate(bags),
                   np.cumsum([0] + [len(bag) for bag in bags]), int(forest.max_samples_))

    @property
    def n_trees(self) -> int:
        return len(self.tree_starts) - 1

    @property
    def bags(self) -> list[np.ndarray]:
        """The rows of the fitted windows in each tree's sample."""
        return np.split(self.bag_rows, self.bag_starts[1:-1])

    def leaves(self, flat: np.ndarray):
        """For each tree, the leaf [N] that each row of flat [N, F] reaches (as scikit-learn's Tree.apply)."""
        flat = np.asarray(flat, dtype=np.float32)
        rows = np.arange(len(flat))
        for root in self.tree_starts[:-1]:
            node = np.full(len(flat), root)
            inner = self.left[node] >= 0
            while inner.any():
                at = node[inner]
                value = flat[rows[inner], self.feature[at]]
                go_left = np.where(np.isnan(value), self.missing_left[at], value <= self.threshold[at])
                node[inner] = np.where(go_left, self.left[at], self.right[at])
                inner = self.left[node] >= 0
            yield node

    def score_samples(self, flat: np.ndarray) -> np.ndarray:
        """The opposite of the anomaly score of each row of flat [N, F], as scikit-learn's score_samples."""
        total = np.zeros(len(flat))
        for leaves in self.leaves(flat):
            total += self.leaf_term[leaves]
        denominator = self.n_trees * average_path_length(np.array([self.max_samples]))
        return -(2 ** (-np.divide(total, denominator, out=np.ones_like(total), where=denominator != 0)))

    def path_lengths(self, flat: np.ndarray) -> np.ndarray:
        """Path length [n_trees, N] of each row of flat [N, F] in each tree: the depth of the leaf it reaches
        plus c(train points in that leaf), the terms of the forest's own score."""
        return np.stack([self.depth[leaves] + self.leaf_samples_length[leaves] for leaves in self.leaves(flat)])

    def arrays(self) -> dict[str, np.ndarray]:
        return {f"forest_{spec.name}": np.asarray(getattr(self, spec.name)) for spec in fields(self)}

    @classmethod
    def from_arrays(cls, saved: SavedArrays, n_features: int, n_fitted: int) -> IsolationTrees:
        """The trees `arrays` saved, refused unless they are whole trees (linked_up) that read windows of
        `n_features` values and sample from `n_fitted` fitted windows."""
        kinds = {"threshold": "f", "missing_left": "b", "max_samples": "iu"}
        value = {spec.name: saved.array(f"forest_{spec.name}", () if spec.name == "max_samples" else (None,),
                                        kinds.get(spec.name, "iu")) for spec in fields(cls)}
        problem = linked_up(**value, n_features=n_features, n_fitted=n_fitted)
        if problem:
            raise damaged(saved.path, f"holds an isolation forest whose {problem}")
        return cls(**{**value, "max_samples": int(value["max_samples"])})


def linked_up(tree_starts, left, right, feature, threshold, missing_left, node_samples, bag_rows, bag_starts,
              max_samples, n_features: int, n_fitted: int) -> str | None:
    """What is wrong with saved trees, or None: every tree's nodes numbered from its root, each node but the
    roots the child of one node of its tree numbered before it (so every walk from a root ends at a leaf), split
    features inside the window, bags of fitted rows."""
    n_nodes = len(left)
    if not all(len(array) == n_nodes for array in (right, feature, threshold, missing_left, node_samples)):
        return "node arrays differ in length"
    sizes, bag_sizes = np.diff(tree_starts), np.diff(bag_starts)
    if len(sizes) == 0 or tree_starts[0] != 0 or tree_starts[-1] != n_nodes or (sizes < 1).any():
        return "trees do not split its nodes"
    if len(bag_sizes) != len(sizes) or bag_starts[0] != 0 or bag_starts[-1] != len(bag_rows) or (bag_sizes < 0).any():
        return "samples are not one per tree"
    inner = np.flatnonzero(left >= 0)
    end = np.repeat(tree_starts[1:], sizes)[inner]                     # one past the last node of each node's tree
    children = np.concatenate([left[inner], right[inner]])
    parents = np.bincount(children[(children >= 0) & (children < n_nodes)], minlength=n_nodes)
    parent, parent_end = np.tile(inner, 2), np.tile(end, 2)
    if ((right >= 0) != (left >= 0)).any() or (children <= parent).any() or (children >= parent_end).any():
        return "children are not nodes of their tree after their parent"
    roots = np.zeros(n_nodes, dtype=bool)
    roots[tree_starts[:-1]] = True
    if (parents != ~roots).any():
        return "nodes do not have one parent each"
    if (feature[inner] < 0).any() or (feature[inner] >= n_features).any():
        return f"splits read features outside the window's {n_features}"
    if (node_samples < 1).any() or max_samples < 1 or (bag_rows < 0).any() or (bag_rows >= n_fitted).any():
        return f"samples are not of the {n_fitted} fitted windows"
    return None


@register("iforest")
@dataclass(eq=False)
class IsolationForestDetector(WindowBaseline):
    """Isolation forest on flattened windows (scikit-learn grows the trees, kept as IsolationTrees); score =
    negated score_samples."""

    n_estimators: int = setting(200, at_least=1)
    max_samples: int = setting(256, at_least=1)

    def fit_windows(self, windows: np.ndarray):
        from sklearn.ensemble import IsolationForest

        forest = IsolationForest(n_estimators=self.n_estimators, max_samples=min(self.max_samples, len(windows)),
                                 random_state=self.seed).fit(windows)
        return IsolationTrees.of(forest)

    def estimator_arrays(self) -> dict[str, np.ndarray]:
        return self.estimator.arrays()

    def estimator_from_arrays(self, saved: SavedArrays) -> IsolationTrees:
        n_fitted = len(saved.array("train_positions", (None, 2), "iu"))
        return IsolationTrees.from_arrays(saved, self.feature_width, n_fitted)

    def score_windows(self, windows: np.ndarray) -> np.ndarray:
        scores = -self.estimator.score_samples(windows.reshape(len(windows), -1))
        return broadcast_window_score(scores, windows.shape[1])

    def score_train(self, train: SeriesSet) -> Scores:
        """Out-of-bag train scores: each window's path length is averaged over the trees whose sample
        holds no fitted window sharing a step with it (the score of the whole forest is the same average
        over every tree). The trees are the fitted ones, so train and test scores share one forest."""
        bags = self.estimator.bags
        return self._score_train_out_of_sample(
            train, lambda windows, index, starts: self.score_windows_out_of_bag(windows, index, starts, bags))

    def score_windows_out_of_bag(self, windows: np.ndarray, series_index: np.ndarray, starts: np.ndarray,
                                 bags: list[np.ndarray]) -> np.ndarray:
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
        lengths = forest.path_lengths(windows.reshape(len(windows), -1))           # [n_trees, N_w]
        mean_length = (lengths * out_of_bag).sum(axis=0) / n_trees
        scores = 2.0 ** (-mean_length / average_path_length(forest.max_samples))   # = -score_samples, out of bag
        return broadcast_window_score(scores, windows.shape[1])
