"""Where a run computed, as its record states it: versions of python, torch, numpy, scikit-learn and tsad, torch's
thread count, the git commit of the tsad source and the host.

Only the standard library at module level (the libraries whose versions are recorded load when asked).
"""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path


def environment() -> dict:
    import numpy as np
    import sklearn
    import torch

    import tsad

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "numpy": np.__version__,
        "scikit_learn": sklearn.__version__,
        "tsad": tsad.__version__,
        "git_commit": git_commit(),
        "hostname": platform.node(),
    }


def git_commit() -> str | None:
    """The commit of the tsad source tree, when it is a git checkout."""
    source = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
