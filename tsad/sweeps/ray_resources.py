"""hydra/launcher=ray: what each sweep job asks Ray for when nothing is given, from this machine's GPUs and cores.

With GPUs, each job takes one GPU and an equal share of the cores, so the GPUs limit how many jobs run at
once; without, each job takes one core, so the jobs fill the cores, one thread each. Ray gives a job as
many threads as cores it asked for (OMP_NUM_THREADS). The numbers describe this machine: on a cluster,
give hydra.launcher.ray.remote.num_gpus and num_cpus for its nodes.
"""

from __future__ import annotations

import math
import os
import subprocess

from tsad.cores import allowed_cores


def visible_gpus() -> int:
    """How many GPUs a job started from here would see, found without importing torch."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        count = 0
        for entry in (e.strip() for e in listed.split(",")):
            if not entry or entry.startswith("-"):
                break  # CUDA stops at the first invalid entry
            count += 1
        return count
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    if out.returncode != 0:
        return 0
    return sum(line.startswith("GPU ") for line in out.stdout.splitlines())


def job_gpus() -> int:
    """`${tsad_ray_job_gpus:}`: 1 on a machine with GPUs (one job per GPU), else 0."""
    return 1 if visible_gpus() else 0


def job_cpus() -> int:
    """`${tsad_ray_job_cpus:}`: the cores divided evenly between the GPUs, or 1 on a machine without GPUs."""
    gpus = visible_gpus()
    return max(1, allowed_cores() // gpus) if gpus else 1


def job_threads(num_cpus) -> str:
    """`${tsad_ray_job_threads:...}`: a job's OMP_NUM_THREADS (a string, as Ray wants) for its num_cpus."""
    return str(max(1, math.floor(float(num_cpus))))
