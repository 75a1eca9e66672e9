"""Overhead of the shared trainer: seconds per epoch of Trainer.fit against a bare PyTorch loop.

    OMP_NUM_THREADS=1 python scripts/bench_trainer.py --max-batches 30      # lstm_vae and patchtrad, CPU
    python scripts/bench_trainer.py patchtrad --epochs 3 --repeats 7 --device cuda
    python scripts/bench_trainer.py --trainer-file /tmp/trainer_old.py       # another version of trainer.py

Both loops train a fresh module of the same model (built by `build_detector(name).build_module`, same seed)
on the same precomputed window batches of the default synthetic data (one epoch's batches, built once), with
the same AdamW (the trainer's lr and weight_decay), the same warm-up + cosine schedule (the trainer's own
lr lambda), the same gradient clipping, the module's own hooks (on_epoch_start, after_step) and the same
number of steps. The trainer runs with no validation data, no checkpoint folder and no progress bar; it
still computes its monitored loss each epoch (the loss over the training batches in eval mode), so the bare
loop does the same pass. Overhead = trainer / bare - 1, from the median over --repeats alternating runs,
in wall time and in process CPU time (the steadier figure on a busy machine, as in bench_models.py).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time


def load_trainer_module(path: str | None):
    """tsad's trainer module, or another copy of trainer.py (e.g. an older version kept in /tmp)."""
    if path is None:
        from tsad.training import trainer

        return trainer
    spec = importlib.util.spec_from_file_location("bench_trainer_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def precomputed_batches(model: str, batch_size: int, max_batches: int | None) -> tuple[list[dict], int]:
    """One epoch of window batches of the default synthetic training data, and its channel count."""
    from tsad.config import run_settings
    from tsad.data.batches import WindowBatches
    from tsad.models.base import detector_from_settings

    settings = run_settings([f"model={model}"])
    data = settings.dataset.build().train
    detector = detector_from_settings(settings)
    source = WindowBatches(data, detector.window, detector.train_stride, batch_size, shuffle=True, seed=0)
    batches = list(source)[:max_batches]
    return batches, batches[0]["x"].shape[-1]


def new_module(model: str, n_channels: int, device: str):
    import torch

    from tsad.config import run_settings
    from tsad.models.base import detector_from_settings

    torch.manual_seed(0)
    return detector_from_settings(run_settings([f"model={model}"])).build_module(n_channels).to(device)


def run_trainer(trainer_class, module, batches, settings, device: str) -> None:
    trainer_class(settings, device=device).fit(module, batches)


def run_bare(trainer_class, module, batches, settings, device: str) -> None:
    """The same work without the trainer: AdamW, the same schedule and clipping, hooks, one eval pass per epoch."""
    import torch

    epochs, steps = settings.max_epochs, len(batches)
    parameters = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=settings.lr, weight_decay=settings.weight_decay)
    lr_lambda = trainer_class(settings, device=device)._lr_lambda(epochs * steps, steps, settings.schedule)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)
    step = 0
    for epoch in range(epochs):
        module.train()
        if hasattr(module, "on_epoch_start"):
            module.on_epoch_start(epoch)
        for batch in batches:
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            loss = module.loss(batch)["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, settings.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            if hasattr(module, "after_step"):
                module.after_step(step)
        module.eval()
        total = torch.zeros((), dtype=torch.float64, device=device)
        with torch.no_grad():
            for batch in batches:
                batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
                total += module.loss(batch)["loss"].double() * len(batch["x"])
        float(total)


def seconds_per_epoch(run, trainer_class, model, batches, n_channels, settings, device) -> tuple[float, float]:
    """Wall and process CPU seconds per epoch of one run on a fresh module."""
    import torch

    module = new_module(model, n_channels, device)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    started, cpu_started = time.perf_counter(), time.process_time()
    run(trainer_class, module, batches, settings, device)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    epochs = settings.max_epochs
    return (time.perf_counter() - started) / epochs, (time.process_time() - cpu_started) / epochs


def bench(model: str, args, trainer_module) -> dict:
    batches, n_channels = precomputed_batches(model, args.batch_size, args.max_batches)
    trainer_class = trainer_module.Trainer
    settings = trainer_module.TrainerSettings(max_epochs=args.epochs, batch_size=args.batch_size, patience=10**6,
                                              progress=False, precision="32")
    times = {"trainer": [], "bare": []}
    seconds_per_epoch(run_bare, trainer_class, model, batches, n_channels, settings, args.device)   # warm-up
    for _ in range(args.repeats):
        for name, run in (("trainer", run_trainer), ("bare", run_bare)):
            times[name].append(seconds_per_epoch(run, trainer_class, model, batches, n_channels, settings,
                                                 args.device))
    result = {"model": model, "batches": len(batches)}
    for index, clock in enumerate(("s", "cpu_s")):
        trainer = statistics.median(t[index] for t in times["trainer"])
        bare = statistics.median(t[index] for t in times["bare"])
        result.update({f"trainer_{clock}": trainer, f"bare_{clock}": bare,
                       f"overhead_{clock}_pct": 100 * (trainer / bare - 1)})
    return result


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="*", default=["lstm_vae", "patchtrad"], help="registered window models")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per timed run")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each loop (median reported)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-batches", type=int, default=None, help="batches per epoch (default: all)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--trainer-file", default=None, help="benchmark the Trainer of this trainer.py instead")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    trainer_module = load_trainer_module(args.trainer_file)
    print(f"{'model':<12} {'batches':>7} {'trainer s/epoch':>16} {'bare s/epoch':>13} {'overhead':>9}   "
          f"{'trainer cpu s':>13} {'bare cpu s':>10} {'cpu overhead':>12}")
    for model in args.models:
        r = bench(model, args, trainer_module)
        print(f"{r['model']:<12} {r['batches']:>7} {r['trainer_s']:>16.3f} {r['bare_s']:>13.3f} "
              f"{r['overhead_s_pct']:>8.1f}%   {r['trainer_cpu_s']:>13.3f} {r['bare_cpu_s']:>10.3f} "
              f"{r['overhead_cpu_s_pct']:>11.1f}%", flush=True)


if __name__ == "__main__":
    main()
