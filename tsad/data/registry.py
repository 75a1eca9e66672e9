"""Dataset families: `dataset.family` in the config names a builder registered here."""

from __future__ import annotations

import inspect
from collections.abc import Callable

from tsad.data.series import DatasetSplits
from tsad.errors import UserError
from tsad.registry import Registry

DATASETS: Registry[Callable[..., DatasetSplits]] = Registry("dataset.family", "tsad.data")
# Keys of a dataset config that other parts of the run read (the detector, the protocol), not the builder.
RUN_KEYS = ("normalise", "protocol")


def register_dataset(family: str):
    """Function decorator: `dataset.family=<family>` calls this builder with the dataset config."""
    return DATASETS.register(family)


def build_dataset(config: dict) -> DatasetSplits:
    """Build train/val/test from a dataset config: family selects the builder, the rest are its arguments."""
    config = {key: value for key, value in config.items() if key not in RUN_KEYS}
    family = config.pop("family", None)
    builder = DATASETS.get(family)
    accepted = inspect.signature(builder).parameters
    unknown = set(config) - set(accepted)
    if unknown:
        raise UserError(f"dataset {config.get('name', family)!r} has no keys {sorted(unknown)}; known: "
                        f"{', '.join(sorted(k for k in accepted))}")
    return builder(**config)
