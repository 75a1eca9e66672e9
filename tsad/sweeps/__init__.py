"""Sweeps at scale: every `tsad-run` job (single or swept) runs through `job.run_job`.

    job.py            one job: its config hash and folder, skip or resume with `resume=true`, the objective
                      a sweeper reads, and the job's metrics.json, written once when it ends
    ray_resources.py  hydra/launcher=ray: what each job asks Ray for on this machine (GPUs, cores, threads)
    summary.py        the sweep's journal (one entry per job) and the summary `tsad-run -m` prints at the end

Only the standard library and Hydra are imported at module level in this package: the CLI imports it
before any job runs, and `tsad-run --help` must stay fast.
"""
