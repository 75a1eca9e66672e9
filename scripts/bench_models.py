"""Training speed of torch detectors: steps per second and peak memory, one line per model.

    python scripts/bench_models.py                      # every registered torch model
    python scripts/bench_models.py dagmm seq2gmm --steps 30 --device cuda
    python scripts/bench_models.py lstm_vae -o dataset.n_channels=32 -o trainer.batch_size=128

Each model runs in its own subprocess (so peak memory is its own) through the real
`detector.fit` and the shared trainer on the default synthetic data (any config override
with -o). Timing starts after --warmup steps and stops after --steps more; the time between
steps includes per-epoch hooks (e.g. an EM refit) but not one-off set-up before the first
step (reported separately as setup_s, e.g. a segmentation). Memory: peak RSS of the process
on CPU (and how much it grew during training), torch.cuda.max_memory_allocated on CUDA.
cpu_ms/step is process CPU time per step, a steadier figure on a busy machine than wall time.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


class StopBenchmark(Exception):
    """Raised from the after_step hook once enough steps are timed."""


def torch_models() -> list[str]:
    from tsad.models.base import TorchDetector, get_detector_class, registered_names

    return [name for name in registered_names() if issubclass(get_detector_class(name), TorchDetector)]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def bench_one(model: str, steps: int, warmup: int, device: str, threads: int, overrides: list[str]) -> dict:
    import torch

    from tsad.config import run_settings
    from tsad.models.base import detector_from_settings
    from tsad.models.torch_detector import TorchDetector
    from tsad.runtime import resolve_device, seed_everything

    if threads:
        torch.set_num_threads(threads)
    settings = run_settings([f"model={model}", "trainer.max_epochs=1000000", "trainer.patience=1000000",
                             "trainer.progress=false", "trainer.max_batches_per_epoch=null", "trainer.resume_from=null",
                             *overrides])
    device = resolve_device(device)
    seed_everything(settings.seed)
    data = settings.dataset.build()
    total = warmup + steps
    detector = detector_from_settings(settings, device)
    if not isinstance(detector, TorchDetector):
        raise SystemExit(f"{model} is not a torch model")

    stamps: list[tuple[float, float]] = []   # (wall, cpu) after each step
    build_module = detector.build_module

    def build_timed_module(n_channels: int):
        module = build_module(n_channels)
        own_hook = getattr(module, "after_step", None)

        def after_step(step: int) -> None:
            if own_hook is not None:
                own_hook(step)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            stamps.append((time.perf_counter(), time.process_time()))
            if len(stamps) == 1 and device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            if len(stamps) > total:
                raise StopBenchmark

        module.after_step = after_step
        return module

    detector.build_module = build_timed_module
    rss_before = peak_rss_mib()
    started = time.perf_counter()
    try:
        detector.fit(data.train, None)
    except StopBenchmark:
        pass
    if len(stamps) <= warmup + 1:
        raise SystemExit(f"{model}: training stopped after {len(stamps)} steps; lower --warmup/--steps")
    timed = len(stamps) - 1 - warmup
    (wall_0, cpu_0), (wall_1, cpu_1) = stamps[warmup], stamps[-1]
    first_step_wall = stamps[0][0]
    result = {"model": model, "device": device, "batch_size": settings.trainer.batch_size, "steps": timed,
              "steps_per_s": timed / (wall_1 - wall_0), "ms_per_step": 1000 * (wall_1 - wall_0) / timed,
              "cpu_ms_per_step": 1000 * (cpu_1 - cpu_0) / timed, "setup_s": first_step_wall - started,
              "peak_rss_mib": peak_rss_mib(), "rss_growth_mib": max(0.0, peak_rss_mib() - rss_before),
              "threads": torch.get_num_threads()}
    if device.startswith("cuda"):
        result["cuda_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def format_line(result: dict) -> str:
    memory = (f"cuda_peak={result['cuda_peak_mib']:.0f}MiB" if "cuda_peak_mib" in result else
              f"peak_rss={result['peak_rss_mib']:.0f}MiB (+{result['rss_growth_mib']:.0f} while training)")
    return (f"{result['model']:<14} steps/s={result['steps_per_s']:7.2f}  ms/step={result['ms_per_step']:8.1f}  "
            f"cpu_ms/step={result['cpu_ms_per_step']:8.1f}  {memory}  batch={result['batch_size']}  "
            f"setup={result['setup_s']:.1f}s  device={result['device']}  threads={result['threads']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="*", help="registered model names (default: every torch model)")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per model")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.add_argument("-o", "--override", action="append", default=[],
                        help="config override, e.g. -o dataset.n_channels=32")
    parser.add_argument("--single", action="store_true", help=argparse.SUPPRESS)   # child process: one model, JSON out
    args = parser.parse_args()

    if args.single:
        print(json.dumps(bench_one(args.models[0], args.steps, args.warmup, args.device, args.threads, args.override)))
        return
    models = args.models or torch_models()
    failed = False
    for model in models:
        command = [sys.executable, __file__, model, "--single", "--steps", str(args.steps),
                   "--warmup", str(args.warmup), "--device", args.device, "--threads", str(args.threads),
                   *(f"--override={o}" for o in args.override)]
        child = subprocess.run(command, capture_output=True, text=True)
        lines = child.stdout.strip().splitlines()
        if child.returncode != 0 or not lines:
            failed = True
            message = (child.stderr.strip().splitlines() or ["no output"])[-1]
            print(f"{model:<14} FAILED: {message}", flush=True)
            continue
        print(format_line(json.loads(lines[-1])), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
