"""Dataset families: `dataset.family` in the config names a typed settings class registered here.

Each family is one frozen dataclass (a `DatasetSettings`): its fields are the family's keys, each declared
once with its default and what it allows, and `check()` holds the checks across keys that need no data. An
offline family builds its train/val/test with `settings.build()`; NAB's settings load its corpus
(`settings.load()`) for the NAB protocol.

    settings = dataset_settings(config["dataset"])   # checked, no data read yet
    data = settings.build()
"""

from __future__ import annotations

from dataclasses import dataclass

from tsad.registry import Registry
from tsad.settings.fields import Section, setting

LEVELS = ("series", "point")
# Bounds of what a generated data set may ask for: far beyond any experiment, short of exhausting memory.
MAX_CHANNELS = 4096
MAX_LENGTH = 10_000_000
MAX_SERIES = 1_000_000
NORMALISERS = ("standard", "minmax", "none")


@dataclass(frozen=True)
class DatasetSettings(Section):
    """The keys every dataset family has; a family redeclares `family` and `name` with its own defaults."""

    family: str = ""
    name: str = ""
    level: str = setting("series", choices=LEVELS)  # series: whole series are anomalous | point: steps are
    normalise: str = setting("standard", choices=NORMALISERS)  # fitted on train only
    protocol: str = setting("offline", choices=("offline",))  # how a run uses the data (tsad/protocols/)

    def check(self) -> None:
        """Checks across keys that need no data; a one-line UserError names the keys and the fix."""


DATASETS: Registry[type[DatasetSettings]] = Registry("dataset.family", "tsad.data")


def register_dataset(family: str):
    """Class decorator: `dataset.family=<family>` reads the dataset config into this settings class."""
    return DATASETS.register(family)


def dataset_settings(mapping: dict) -> DatasetSettings:
    """The dataset config as its family's settings: every key and value checked, the data not read."""
    settings = DATASETS.get(mapping.get("family")).parse(mapping, "dataset", f"dataset {mapping.get('family')}")
    settings.check()
    return settings
