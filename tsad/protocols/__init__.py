"""How a run uses its data: the dataset's `protocol` names one (offline for every family but NAB).

A protocol is a class registered with `@PROTOCOLS.register(name)`: `check(settings)` refuses, before any data is
read, a combination of settings it cannot run (each section has already checked its own values), and
`run(settings, folder, epoch_callbacks)` runs it into the attempt's staging folder (a tsad.run_folder.RunFolder)
and returns the result part of the run's record. Adding a protocol is one new module in this package.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from tsad.registry import Registry
from tsad.run_folder import RunFolder

PROTOCOLS: Registry[type[Protocol]] = Registry("dataset.protocol", "tsad.protocols")


class Protocol(ABC):
    """How a run fits, scores and evaluates; `causal`: whether its detectors score each step from earlier rows."""

    causal = False

    def check(self, settings) -> None:
        """Data-free checks of the whole run: the device, and the detector the settings describe (built, untrained,
        so that the model's own cross-checks run)."""
        from tsad.models.base import detector_from_settings
        from tsad.runtime import resolve_device

        detector_from_settings(settings, resolve_device(settings.device), causal=self.causal)

    @abstractmethod
    def run(self, settings, folder: RunFolder, epoch_callbacks: tuple = ()) -> dict: ...
