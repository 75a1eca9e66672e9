"""How a run uses its data: the dataset's `protocol` names one (offline for every family but NAB).

A protocol is a class registered with `@PROTOCOLS.register(name)`: `check(settings)` refuses, before any data is
read, a combination of settings it cannot run (each section has already checked its own values), and
`run(settings, folder, epoch_callbacks)` runs it into the attempt's staging folder (a tsad.run_folder.RunFolder)
and returns the result part of the run's record. Adding a protocol is one new module in this package.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from tsad.errors import UserError
from tsad.registry import Registry
from tsad.run_folder import RunFolder

PROTOCOLS: Registry[type[Protocol]] = Registry("dataset.protocol", "tsad.protocols")


class Protocol(ABC):
    """How a run fits, scores and evaluates; `causal`: whether its detectors score each step from earlier rows."""

    causal = False

    def check(self, settings) -> None:
        """Data-free checks of the whole run (tsad.experiment.run makes them before `run`): the device, and the
        detector the settings describe (built, untrained, so that the model's own cross-checks run)."""
        from tsad.models.base import detector_from_settings
        from tsad.models.torch_detector import TorchModuleDetector
        from tsad.runtime import resolve_device

        detector = detector_from_settings(settings, resolve_device(settings.device), causal=self.causal)
        if settings.trainer.resume_from and not isinstance(detector, TorchModuleDetector):
            raise UserError(f"trainer.resume_from={settings.trainer.resume_from} continues a torch model's training, "
                            f"and model {detector.name} has none to continue; set trainer.resume_from=null")
        self.check_detector(detector)

    def check_detector(self, detector) -> None:  # noqa: B027 (most protocols run every detector)
        """Refuse, in one line, a detector this protocol cannot run."""

    @abstractmethod
    def run(self, settings, folder: RunFolder, epoch_callbacks: tuple = ()) -> dict: ...
