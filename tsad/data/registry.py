"""Dataset families: `dataset.family` in the config names a builder registered here."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Callable

from tsad.data.series import DatasetSplits
from tsad.errors import UserError

_BUILDERS: dict[str, Callable[..., DatasetSplits]] = {}


def register_dataset(family: str):
    """Function decorator: `dataset.family=<family>` calls this builder with the dataset config."""

    def add(builder):
        _BUILDERS[family] = builder
        return builder

    return add


def _import_all() -> None:
    import tsad.data as package

    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"tsad.data.{module.name}")


def build_dataset(config: dict) -> DatasetSplits:
    """Build train/val/test from a dataset config: family selects the builder, the rest are its arguments."""
    config = dict(config)
    family = config.pop("family", None)
    if family not in _BUILDERS:
        _import_all()
    if family not in _BUILDERS:
        raise UserError(f"unknown dataset.family {family!r}; known: {', '.join(sorted(_BUILDERS))}")
    builder = _BUILDERS[family]
    config.pop("normalise", None)  # used by the detector, not the builder
    config.pop("protocol", None)  # used by the pipeline, not the builder
    accepted = inspect.signature(builder).parameters
    unknown = set(config) - set(accepted)
    if unknown:
        raise UserError(f"dataset {config.get('name', family)!r} has no keys {sorted(unknown)}; known: "
                        f"{', '.join(sorted(k for k in accepted))}")
    return builder(**config)
