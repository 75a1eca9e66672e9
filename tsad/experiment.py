"""One run: the protocol its dataset names (offline for every family but NAB), from settings to results.

A protocol (tsad/protocols/) decides how a run uses its data: offline fits on train and scores test; NAB's
online protocol fits one detector per file on its first rows and scores the rest causally. Either returns the
result part of the run's record; the job (tsad/sweeps/job.py) adds status, timing and environment and writes
metrics.json once.
"""

from __future__ import annotations

from tsad.cores import shared_cores
from tsad.protocols import PROTOCOLS
from tsad.run_folder import RunFolder
from tsad.settings.run import RunConfig


def run(settings: RunConfig, folder: RunFolder, epoch_callbacks: tuple = ()) -> dict:
    """Run one experiment into `folder` (the attempt's staging folder); returns the result record (raises on
    failure).

    `epoch_callbacks` (e.g. the experiment logger's) are called after every training epoch with the history so far.
    """
    protocol = PROTOCOLS.get(settings.dataset.protocol)()
    protocol.check(settings)
    with shared_cores(settings.threads) as cores:
        record = protocol.run(settings, folder, epoch_callbacks)
    return {**record, "threads": cores.record()}


def check(settings: RunConfig) -> None:
    """What the run's protocol refuses before any data is read (each section checked itself when parsed)."""
    PROTOCOLS.get(settings.dataset.protocol)().check(settings)
