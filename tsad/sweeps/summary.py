"""The sweep's journal and the summary `tsad-run -m` prints from it when the sweep ends.

Each swept job writes its line of the journal, <sweep dir>/.jobs/<job num>.json, when it starts
and when it ends; the journal is cleared when a sweep starts, so it holds this sweep's jobs only.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from hydra.experimental.callback import Callback

from tsad.json_files import read_json, write_json_atomic
from tsad.results import OK, RUNNING, UNREADABLE

log = logging.getLogger(__name__)

JOURNAL_DIR = ".jobs"
NO_RESULT = "NO RESULT"        # the summary's word for a job that never replaced its RUNNING entry


class Journal:
    """A swept job's line in <sweep dir>/.jobs/<num>.json; a no-op for single runs."""

    def __init__(self, sweep_dir: Path | None, job_num: int | None):
        self.path = None
        if sweep_dir is not None and job_num is not None:
            self.path = Path(sweep_dir) / JOURNAL_DIR / f"{job_num}.json"

    def write(self, entry: dict) -> None:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.path, entry)


# The sweep this process launched: set by SweepSummary.on_multirun_start, read by tsad.cli.main.
launched: dict = {}


class SweepSummary(Callback):
    """Hydra callback (in tsad/conf/config.yaml): notes where the sweep writes, for the summary at the end."""

    def on_multirun_start(self, config, **kwargs) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        shutil.rmtree(sweep_dir / JOURNAL_DIR, ignore_errors=True)
        launched.clear()
        launched["sweep_dir"] = sweep_dir
        given = [str(o) for o in config.hydra.overrides.hydra]
        if config.get("resume") and not any(o.startswith("hydra.sweep.dir=") for o in given):
            log.warning("resume=true without hydra.sweep.dir=<the earlier sweep's folder>: this sweep writes to the "
                        "new folder %s and finds nothing to resume", sweep_dir)


def summarise(sweep_dir: Path) -> tuple[list[str], int]:
    """Lines that say how every job of the sweep ended, and how many did not end OK."""
    entries = []
    for path in sorted((Path(sweep_dir) / JOURNAL_DIR).glob("*.json"), key=lambda p: int(p.stem)):
        entry = read_json(path) or {"status": UNREADABLE, "folder": str(path)}
        if entry.get("status") == RUNNING:
            entry = {**entry, "status": NO_RESULT, "error": "the job stopped before recording an outcome"}
        entries.append(entry)
    ok = [e for e in entries if e.get("status") == OK]
    failed = [e for e in entries if e.get("status") != OK]
    skipped = sum(bool(e.get("skipped")) for e in ok)
    counts = {}
    for entry in failed:
        counts[entry["status"]] = counts.get(entry["status"], 0) + 1
    head = f"sweep summary: {len(ok)} OK"
    if skipped:
        head += f" ({skipped} finished earlier, skipped)"
    head += f", {len(failed)} failed"
    if counts:
        head += " (" + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) + ")"
    lines = [f"{head} in {sweep_dir}"]
    for entry in failed:
        error = (entry.get("error") or "").strip().splitlines()
        lines.append(f"  {entry['status']:<11} {entry.get('folder')}  {error[-1] if error else ''}".rstrip())
    if failed:
        lines.append(f"  a failed job's run.log in its folder says more (its traceback); re-run the same command "
                     f"with resume=true hydra.sweep.dir={sweep_dir} to redo only these")
    return lines, len(failed)
