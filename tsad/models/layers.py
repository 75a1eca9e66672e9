"""Torch building blocks shared by several models."""

from __future__ import annotations

import math

import torch


def sinusoidal_positions(n_positions: int, width: int) -> torch.Tensor:
    """Fixed sine/cosine position codes [n_positions, width] (Vaswani et al.): sines in the even columns,
    cosines in the odd ones, frequencies 10000^(-2i / width)."""
    position = torch.arange(n_positions, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * (-math.log(10000.0) / width))
    codes = torch.zeros(n_positions, width)
    codes[:, 0::2] = torch.sin(position * frequency)
    codes[:, 1::2] = torch.cos(position * frequency)[:, : width // 2]
    return codes
