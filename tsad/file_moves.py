"""Moving and copying a folder's files in steps that can be undone: what a run folder's publish is made of
(tsad/run_folder.py), so that a publish that fails half-way (a full disk) leaves the folder as it was.

Only the standard library: tsad.sweeps imports this module (through tsad.run_folder) before any job runs.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


class Moves:
    """Renames done one by one, each undone (in reverse order) by `undo`."""

    def __init__(self):
        self.done: list[tuple[Path, Path]] = []

    def move(self, source: Path, target: Path) -> None:
        """Rename `source` to `target` when `source` exists (a broken link too)."""
        if source.exists() or source.is_symlink():
            os.replace(source, target)
            self.done.append((source, target))

    def undo(self) -> None:
        for source, target in reversed(self.done):
            os.replace(target, source)
        self.done.clear()


def copy_files(source: Path, target: Path) -> None:
    """Make the files directly in `target` those of `source`, byte for byte (none when it has none); the folders
    inside `target` stay."""
    if target.is_dir():
        for path in target.iterdir():
            if not path.is_dir():
                path.unlink()
    if source.is_dir():
        for path in source.iterdir():
            if path.is_file():
                target.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target / path.name)
    if target.is_dir() and not any(target.iterdir()):
        target.rmdir()


def replace_with_copy(source: Path, target: Path) -> None:
    """Make the folder `target` a copy of the files of `source`, all at once: copied beside it first, then swapped
    in, so a copy that fails leaves `target` as it was."""
    fresh, old = target.with_name(f"{target.name}.new"), target.with_name(f"{target.name}.old")
    for path in (fresh, old):
        shutil.rmtree(path, ignore_errors=True)
    try:
        copy_files(source, fresh)
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise
    if target.exists():
        os.replace(target, old)
    if fresh.exists():
        os.replace(fresh, target)
    shutil.rmtree(old, ignore_errors=True)
