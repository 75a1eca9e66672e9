"""Dataset families: `dataset.family` in the config names a builder registered here."""

from __future__ import annotations

import inspect
from collections.abc import Callable

from tsad.data.series import DatasetSplits
from tsad.errors import UserError
from tsad.registry import Registry

DATASETS: Registry[Callable[..., DatasetSplits]] = Registry("dataset.family", "tsad.data")
# Checks of a family's settings that need no data (run at tsad-run's door); each takes the builder's arguments.
SETTINGS_CHECKS: dict[str, Callable[..., None]] = {}
# Keys of a dataset config that other parts of the run read (the detector, the protocol), not the builder.
RUN_KEYS = ("normalise", "protocol")


def register_dataset(family: str):
    """Function decorator: `dataset.family=<family>` calls this builder with the dataset config."""
    return DATASETS.register(family)


def register_settings_check(family: str):
    """Function decorator: a check of the family's settings that reads no data; it gets every builder argument
    (defaults filled in) and raises a one-line UserError."""

    def add(check: Callable[..., None]) -> Callable[..., None]:
        SETTINGS_CHECKS[family] = check
        return check

    return add


def builder_keys(family) -> list[str]:
    """The keys a dataset config of this family may hold."""
    return sorted([*inspect.signature(DATASETS.get(family)).parameters, "family", *RUN_KEYS])


def check_dataset(config: dict) -> None:
    """The dataset config's keys and the family's settings checks, without reading or generating data."""
    arguments = _builder_arguments(config)
    check = SETTINGS_CHECKS.get(config.get("family"))
    if check is not None:
        signature = inspect.signature(DATASETS.get(config.get("family")))
        bound = signature.bind(**arguments)
        bound.apply_defaults()
        check(**bound.arguments)


def build_dataset(config: dict) -> DatasetSplits:
    """Build train/val/test from a dataset config: family selects the builder, the rest are its arguments."""
    return DATASETS.get(config.get("family"))(**_builder_arguments(config))


def _builder_arguments(config: dict) -> dict:
    config = {key: value for key, value in config.items() if key not in RUN_KEYS}
    family = config.pop("family", None)
    accepted = inspect.signature(DATASETS.get(family)).parameters
    unknown = set(config) - set(accepted)
    if unknown:
        raise UserError(f"dataset {config.get('name', family)!r} has no keys {sorted(unknown)}; known: "
                        f"{', '.join(sorted(k for k in accepted))}")
    return config
