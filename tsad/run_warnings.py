"""What a run did on its own that a reader of its numbers should know, said out loud: a column left out, gaps
filled, a constant channel, a metric that is undefined on the test labels.

Each warning is one line `warning: ...` in the log (logger "tsad"), written when it arises, and one
{code, message} entry under `warnings` in metrics.json. Data builders return theirs with the data
(DatasetSplits.warnings); the protocol adds evaluation's and puts the list in the run's record.
"""

from __future__ import annotations

import logging

log = logging.getLogger("tsad")


class RunWarnings:
    """The warnings of one run, in the order they arose."""

    def __init__(self) -> None:
        self.entries: list[dict[str, str]] = []

    def add(self, code: str, message: str) -> None:
        log.warning("warning: %s", message)
        self.entries.append({"code": code, "message": message})
