"""Per-channel normalisation fitted on train only and stored with the model."""

from __future__ import annotations

import numpy as np

from tsad.errors import UserError

KINDS = ("standard", "minmax", "none")


class Normaliser:
    def __init__(self, kind: str = "standard"):
        if kind not in KINDS:
            raise UserError(f"dataset.normalise must be one of {', '.join(KINDS)}, got {kind!r}")
        self.kind = kind
        self.shift: np.ndarray | None = None
        self.scale: np.ndarray | None = None

    def fit(self, values: list[np.ndarray]) -> Normaliser:
        stacked = np.concatenate(values, axis=0).astype(np.float64)
        if self.kind == "standard":
            self.shift, self.scale = stacked.mean(axis=0), stacked.std(axis=0)
        elif self.kind == "minmax":
            self.shift, self.scale = stacked.min(axis=0), stacked.max(axis=0) - stacked.min(axis=0)
        else:
            self.shift, self.scale = np.zeros(stacked.shape[1]), np.ones(stacked.shape[1])
        self.scale = np.where(self.scale > 1e-12, self.scale, 1.0)
        return self

    def transform(self, values: list[np.ndarray]) -> list[np.ndarray]:
        return [((v - self.shift) / self.scale).astype(np.float32) for v in values]

    def state(self) -> dict:
        return {"kind": self.kind, "shift": np.asarray(self.shift).tolist(), "scale": np.asarray(self.scale).tolist()}

    @classmethod
    def from_state(cls, state: dict) -> Normaliser:
        normaliser = cls(state["kind"])
        normaliser.shift = np.asarray(state["shift"])
        normaliser.scale = np.asarray(state["scale"])
        return normaliser
