"""Where and how reproducibly a run computes: the device it asks for, and the seeds of every generator."""

from __future__ import annotations

import random

import numpy as np

from tsad.errors import UserError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str) -> str:
    import torch

    if device not in DEVICES and not str(device).startswith("cuda:"):
        raise UserError(f"device must be one of {', '.join(DEVICES)} (or cuda:N), got {device!r}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device={device} but CUDA is not available here; use device=cpu or device=auto")
    return device


def seed_everything(seed: int) -> None:
    """Python's, numpy's and torch's global generators from one seed (its range: the top-level `seed` key)."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
