"""How a run uses its data: `dataset.protocol` names one (offline when unset).

A protocol is a function (config, run_dir, epoch_callbacks=()) -> the result part of the run's record, which
hands the callbacks to the detectors it builds (detector_from_config); it registers itself with
`@PROTOCOLS.register(name)`.
"""

from tsad.registry import Registry

PROTOCOLS = Registry("dataset.protocol", "tsad.protocols")
