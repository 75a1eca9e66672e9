"""One-line checks of dataset settings, shared by the dataset families (run at tsad-run's door)."""

from __future__ import annotations

from numbers import Real

from tsad.errors import UserError


def is_number(value) -> bool:
    """A real number, and not a bool (which Python counts as one)."""
    return isinstance(value, Real) and not isinstance(value, bool)


def require_counts(**values) -> None:
    """Each dataset.<key>=(value, minimum) must be an integer >= minimum."""
    for key, (value, minimum) in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise UserError(f"dataset.{key} must be an integer >= {minimum}, got {value!r}")


def require_fractions(**values) -> None:
    """Each dataset.<key>=value must be a number in [0, 1]."""
    for key, value in values.items():
        if not is_number(value) or not 0 <= value <= 1:
            raise UserError(f"dataset.{key} must be a number in [0, 1], got {value!r}")
