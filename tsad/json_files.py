"""JSON files holding one object, read whole and written atomically: run records, job facts, the sweep's journal.

Only the standard library at module level (numpy loads when a value needs converting): tsad.sweeps imports
this module before any job runs, and `tsad-run --help` must stay fast.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def read_json(path: Path) -> dict | None:
    """The JSON object in `path`, or None when it is missing, unreadable or not an object."""
    try:
        return load_json_object(Path(path))
    except (OSError, ValueError):
        return None


def load_json_object(path: Path) -> dict:
    """The JSON object in `path`; OSError or ValueError (saying why) otherwise."""
    value = json.loads(Path(path).read_text())
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, found {type(value).__name__}")
    return value


def write_json_atomic(path: Path, payload: dict) -> None:
    """Write to a temporary file and rename, so a reader never sees a half-written file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=_jsonable))
    os.replace(tmp, path)


def _jsonable(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
