"""Which config keys tell runs apart: the config hash that names sweep folders and finds earlier runs, and the
keys a table does not compare.

Only the standard library: tsad.sweeps imports this module before any job runs.
"""

from __future__ import annotations

import copy
import hashlib
import json

# Keys that say where or how a run executes, not what it computes: the same run written to another folder,
# resumed from a checkpoint, with other progress bars, tracked by another logger, or launched by another sweep
# or search, or with another thread count (it moves the last bits, like the device, but under threads=0 it follows
# the runs beside it, so metrics.json records the counts used). The config hash leaves them out, so a job finds
# its earlier run however it was launched.
INCIDENTAL_KEYS = ("paths", "resume", "overwrite", "objective", "gpu_pool", "logger", "trainer.resume_from",
                   "trainer.progress", "threads")
# A table cell averages runs that may differ in these keys as well, so a table does not compare them. The
# config hash keeps them, as each makes another run: another seed computes other numbers (a cell's runs are
# its seeds), another device slightly other ones (noise of the seed's order), plots change what the folder
# holds, and tags what its metrics.json says.
NOT_COMPARED_KEYS = INCIDENTAL_KEYS + ("seed", "device", "plots", "tags")


def is_under(dotted: str, keys: tuple[str, ...]) -> bool:
    """Whether the dotted config key `dotted` is one of `keys` or lies inside one of them."""
    return any(dotted == key or dotted.startswith(f"{key}.") for key in keys)


def config_hash(config: dict) -> str:
    """A short, stable digest of the resolved config without its INCIDENTAL_KEYS.

    Sweep folders are named after it and metrics.json records it: keep the digest of a given config as it is.
    """
    kept = copy.deepcopy(config)
    for dotted in INCIDENTAL_KEYS:
        *parents, last = dotted.split(".")
        node = kept
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)
    text = json.dumps(kept, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
