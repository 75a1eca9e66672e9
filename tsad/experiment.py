"""One run: the protocol the dataset names (`dataset.protocol`, offline by default) from config to results.

A protocol (tsad/protocols/) decides how a run uses its data: offline fits on train and scores
test; NAB's online protocol fits one detector per file on its first rows and scores the rest
causally. Either returns the result part of the run's record; the job (tsad/sweeps/job.py) adds
status, timing and environment and writes metrics.json once.
"""

from __future__ import annotations

from pathlib import Path

from tsad.protocols import PROTOCOLS

DEFAULT_PROTOCOL = "offline"


def run(config: dict, run_dir: Path, epoch_callbacks: tuple = ()) -> dict:
    """Run one experiment from a resolved config into `run_dir`; returns the result record (raises on failure).

    `epoch_callbacks` (e.g. the experiment logger's) are called after every training epoch with the history so far.
    """
    protocol = PROTOCOLS.get(config["dataset"].get("protocol") or DEFAULT_PROTOCOL)
    return protocol(config, Path(run_dir), epoch_callbacks)
