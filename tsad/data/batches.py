"""Batch sources for torch modules: windows of all series, or whole series padded to a common length.

A batch is {"x": [B, T, C], "mask": [B, T] bool, "lengths": [B], "label": [B]} (label: the series
label the detector may see: 1 anomaly, 0 normal, -1 unknown), plus "step_label" [B, T] for window
batches built with step_labels=True when the data has visible step labels. Each source is
re-iterable: every pass is one epoch, reshuffled when `shuffle`; `state()` / `load_state()` save and restore
the shuffler, so a resumed training run draws the same epochs as an uninterrupted one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator

import numpy as np

from tsad.data.series import SeriesSet
from tsad.data.windows import make_windows


def window_batch(x, label=None) -> dict:
    import torch

    batch = {"x": x, "mask": torch.ones(x.shape[:2], dtype=torch.bool),
             "lengths": torch.full((x.shape[0],), x.shape[1], dtype=torch.long)}
    batch["label"] = label if label is not None else torch.full((x.shape[0],), -1, dtype=torch.long)
    return batch


class BatchSource(ABC):
    """An iterable of batches; iterating again starts a new (reshuffled) epoch."""

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def __iter__(self) -> Iterator[dict]: ...

    @abstractmethod
    def state(self):
        """The shuffler's state, in types a weights-only torch.load accepts."""

    @abstractmethod
    def load_state(self, state) -> None:
        """Continue shuffling from a `state()`."""


class WindowBatches(BatchSource):
    """All windows of all series, with each window's visible series label (and step labels if asked)."""

    def __init__(self, data: SeriesSet, window: int, stride: int, batch_size: int, shuffle: bool, seed: int,
                 step_labels: bool = False):
        import torch

        windows, labels = [], []
        visible = data.visible_series_labels()
        for series, label in zip(data.values, visible):
            w, _, _ = make_windows(series, window, stride)
            windows.append(w)
            labels.append(np.full(len(w), label))
        self.x = torch.from_numpy(np.concatenate(windows))
        self.label = torch.from_numpy(np.concatenate(labels))
        steps = data.visible_step_labels() if step_labels else None
        self.step_label = None if steps is None else torch.from_numpy(np.concatenate(
            [make_windows(y[:, None].astype(np.int8), window, stride)[0][..., 0] for y in steps]))
        self.batch_size, self.shuffle = batch_size, shuffle
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return (len(self.x) + self.batch_size - 1) // self.batch_size

    def state(self):
        return self.generator.get_state()

    def load_state(self, state) -> None:
        self.generator.set_state(state)

    def __iter__(self) -> Iterator[dict]:
        import torch

        order = torch.randperm(len(self.x), generator=self.generator) if self.shuffle else torch.arange(len(self.x))
        for start in range(0, len(order), self.batch_size):
            index = order[start:start + self.batch_size]
            batch = window_batch(self.x[index], self.label[index])
            if self.step_label is not None:
                batch["step_label"] = self.step_label[index]                            # [B, L] int8
            yield batch


class SeriesBatches(BatchSource):
    """Whole series padded to the longest in the batch, with a mask of valid steps."""

    def __init__(self, data: SeriesSet, batch_size: int, shuffle: bool, seed: int):
        self.data, self.batch_size, self.shuffle = data, batch_size, shuffle
        self.visible = data.visible_series_labels()
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return (len(self.data) + self.batch_size - 1) // self.batch_size

    def state(self):
        return self.rng.bit_generator.state

    def load_state(self, state) -> None:
        self.rng.bit_generator.state = state

    def __iter__(self) -> Iterator[dict]:
        for _, batch in self.with_index():
            yield batch

    def with_index(self) -> Iterator[tuple[np.ndarray, dict]]:
        order = self.rng.permutation(len(self.data)) if self.shuffle else np.arange(len(self.data))
        for start in range(0, len(order), self.batch_size):
            index = order[start:start + self.batch_size]
            yield index, pad_batch([self.data.values[i] for i in index], self.visible[index])


def pad_batch(series: list[np.ndarray], labels: np.ndarray) -> dict:
    """Pad series [T_i, C] to [B, T_max, C] with zeros and a boolean mask of real steps."""
    import torch

    lengths = np.array([len(s) for s in series])
    x = np.zeros((len(series), lengths.max(), series[0].shape[1]), dtype=np.float32)
    for row, s in enumerate(series):
        x[row, : len(s)] = s
    mask = np.arange(lengths.max())[None, :] < lengths[:, None]
    return {"x": torch.from_numpy(x), "mask": torch.from_numpy(mask), "lengths": torch.from_numpy(lengths),
            "label": torch.from_numpy(np.asarray(labels, dtype=np.int64))}
