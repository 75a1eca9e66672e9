"""One training loop for every torch detector.

AdamW with linear warm-up then cosine decay, gradient clipping, mixed precision on CUDA,
early stopping (not before `min_steps` optimiser steps, where set), best/last checkpoints, resume from last,
optional multi-stage training, and small hooks for models with unusual training. The run's epoch callbacks
(Runtime.epoch_callbacks: history.csv, the experiment logger) are called after every epoch with the history so far,
the new record last.

Early stopping and the best checkpoint follow one monitored loss, always computed in eval mode,
where every module's loss has its final weights and fixed randomness (an annealed KL weight is at
its end value, dropout is off): the validation loss, or without validation data (the NAB protocol
fits on the probationary rows alone) the same loss over the training batches (`train_eval_loss`).
The running training loss is no substitute: it mixes weights of a whole epoch and, with a warm-up
of a loss term, rises while the model improves, so early stopping would keep an untrained model.
Each history record names the monitored quantity (`monitor`).

A resumed run ends exactly as the uninterrupted one would (bit for bit on CPU): a checkpoint holds, besides
weights, optimiser and schedule, every random-number state training draws from (torch's CPU and CUDA generators,
numpy's and Python's global ones, the training batches' shuffler) and a digest of the module's structure, so a
checkpoint of another model is refused rather than half loaded.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import random
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from tsad.cores import rebalance
from tsad.errors import NaNLossError, UserError
from tsad.run_folder import RunFolder
from tsad.settings.fields import Section, setting

log = logging.getLogger(__name__)

# Epochs per stage for a model without its own training length, when trainer.max_epochs is null.
STANDARD_EPOCHS = 30
PRECISIONS = ("auto", "32", "bf16", "16", 32, 16)
CHECKPOINT_KEYS = ("module", "optimizer", "scheduler", "stage", "epoch", "best", "stale", "history")
START_AFRESH = "or set trainer.resume_from=null to train from the start"


@dataclass(frozen=True)
class TrainerSettings(Section):
    """The trainer config group (conf/trainer/default.yaml mirrors it)."""

    max_epochs: int | None = setting(None, at_least=1)  # null: each model's own training length
    batch_size: int = setting(64, at_least=1)
    lr: float = setting(1e-3, at_least=0)
    weight_decay: float = setting(1e-4, at_least=0)
    warmup_epochs: float = setting(1, at_least=0)
    schedule: str = setting("cosine", choices=("cosine", "constant"))
    grad_clip: float = setting(1.0, at_least=0)
    precision: str | int = setting("auto", choices=PRECISIONS)
    patience: int = setting(5, at_least=1)
    min_steps: int | None = setting(None, at_least=1)  # null: early stopping may end a stage at any epoch
    min_delta: float = setting(0.0, at_least=0)
    max_batches_per_epoch: int | None = setting(None, at_least=1)
    deterministic: bool = False
    progress: bool | str = setting("auto", choices=(True, False, "auto"))
    resume_from: str | None = None


# Trainer settings a training stage may set for itself (module.stage_settings[stage]).
STAGE_SETTINGS = ("lr", "weight_decay", "schedule", "patience")


def shows_progress(progress) -> bool:
    """trainer.progress: true, false, or auto (a bar only when stderr is a terminal, never in logs or tests)."""
    return sys.stderr.isatty() if progress == "auto" else bool(progress)


class Trainer:
    def __init__(self, settings: TrainerSettings, device: str = "cpu", checkpoint_dir: Path | None = None,
                 epoch_callbacks: tuple = ()):
        self.settings = settings
        self.device = device
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.batch_size = settings.batch_size
        self.epoch_callbacks = tuple(epoch_callbacks)
        self.history: list[dict] = []

    @property
    def standard_epochs(self) -> int:
        """Epochs per stage for a model that sets no length of its own."""
        return self.settings.max_epochs or STANDARD_EPOCHS

    def epochs_for(self, own: int) -> int:
        """A model's own training length, capped by trainer.max_epochs when that is set (trainer=fast stays fast)."""
        return own if self.settings.max_epochs is None else min(own, self.settings.max_epochs)

    # -- precision ----------------------------------------------------------------
    def _autocast_dtype(self):
        import torch

        precision = str(self.settings.precision)
        if not self.device.startswith("cuda") or precision == "32":
            return None
        if precision == "auto":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if precision == "bf16" else torch.float16

    def _progress(self, iterable, total: int, description: str):
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, desc=description, leave=False,
                    disable=not shows_progress(self.settings.progress))

    # -- the loop -----------------------------------------------------------------
    def fit(self, module, train_batches, val_batches=None) -> list[dict]:
        import torch

        if self.settings.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        device = torch.device(self.device)
        module.to(device)
        checkpoint = self._checkpoint_to_resume()
        if hasattr(module, "on_fit_start"):
            module.on_fit_start(self, train_batches)
        if checkpoint is not None:  # after on_fit_start, which may still shape the module
            check_same_model(checkpoint, module)
        stages = tuple(getattr(module, "stages", ("train",)))
        for index, stage in enumerate(stages):
            if checkpoint is not None and checkpoint["stage"] in stages[index + 1:]:
                continue  # finished before the checkpoint was saved: its weights are in the checkpoint
            module.stage = stage
            resume = checkpoint if checkpoint is not None and checkpoint["stage"] == stage else None
            self._fit_stage(module, stage, train_batches, val_batches, device, resume)
        if hasattr(module, "on_fit_end"):
            module.on_fit_end(self, train_batches)
        return self.history

    def _fit_stage(self, module, stage: str, train_batches, val_batches, device, resume: dict | None) -> None:
        import torch

        epochs = int(getattr(module, "stage_epochs", {}).get(stage, self.standard_epochs))
        own = getattr(module, "stage_settings", {}).get(stage, {})
        if set(own) - set(STAGE_SETTINGS):
            raise ValueError(f"stage_settings[{stage!r}] may set only {STAGE_SETTINGS}, got {sorted(own)}")
        settings = replace(self.settings, **own)
        parameters = [p for p in module.parameters() if p.requires_grad]
        if not parameters or epochs == 0:
            return
        optimizer = torch.optim.AdamW(parameters, lr=settings.lr, weight_decay=settings.weight_decay)
        steps_per_epoch = self._steps_per_epoch(train_batches)
        epochs = self._epochs_reaching_min_steps(epochs, steps_per_epoch)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, self._lr_lambda(epochs * steps_per_epoch, steps_per_epoch, settings.schedule))
        dtype = self._autocast_dtype()
        scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
        start_epoch, best, best_state, stale, step = 0, math.inf, None, 0, 0
        if resume is not None:
            start_epoch, best, best_state, stale, step = self._resume(resume, module, optimizer, scheduler,
                                                                       train_batches)
        for epoch in range(start_epoch, epochs):
            rebalance()  # the run's share of the cores, as neighbouring runs start and end
            started = time.perf_counter()
            module.train()
            if hasattr(module, "on_epoch_start"):
                module.on_epoch_start(epoch)
            totals: dict = {}   # loss term -> float64 sum on the device, read once per epoch (no sync per step)
            n_batches = 0
            for batch in self._progress(self._limited(train_batches), steps_per_epoch, f"{stage} {epoch + 1}/{epochs}"):
                batch = self._to_device(batch, device)
                with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                    losses = module.loss(batch)
                loss = losses["loss"]
                if not torch.isfinite(loss):
                    raise NaNLossError(f"non-finite training loss in {stage} epoch {epoch + 1}: {loss.item()}")
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if self.settings.grad_clip:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(parameters, self.settings.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                step += 1
                if hasattr(module, "after_step"):
                    module.after_step(step)
                for key, value in losses.items():
                    term = value.detach().double()
                    totals[key] = totals[key] + term if key in totals else term
                n_batches += 1
            record = {"stage": stage, "epoch": epoch + 1, "lr": scheduler.get_last_lr()[0],
                      **{f"train_{k}": v / max(n_batches, 1) for k, v in read_totals(totals).items()}}
            monitor = "val_loss" if val_batches is not None else "train_eval_loss"
            record[monitor] = self.evaluate(module, val_batches if val_batches is not None else train_batches,
                                            device, dtype)
            record["monitor"] = monitor
            record["seconds"] = round(time.perf_counter() - started, 3)
            self.history.append(record)
            log.info("%s epoch %d/%d  %s", stage, epoch + 1, epochs,
                     "  ".join(f"{k}={v:.4g}" for k, v in record.items() if isinstance(v, float) and k != "seconds"))
            monitored = record[monitor]
            if monitored < best - self.settings.min_delta:
                best, stale = monitored, 0
                best_state = copy.deepcopy({k: v.detach().cpu() for k, v in module.state_dict().items()})
            else:
                stale += 1
            progress = {"stage": stage, "epoch": epoch, "best": best, "stale": stale, "step": step}
            if stale == 0:
                self._save("best", module, optimizer, scheduler, train_batches, progress)
            self._save("last", module, optimizer, scheduler, train_batches, progress)
            for callback in self.epoch_callbacks:
                callback(self.history)
            if stale >= settings.patience and step >= (self.settings.min_steps or 0):
                log.info("early stopping: no improvement in %d epochs", stale)
                break
        if best_state is not None:
            module.load_state_dict(best_state)

    def evaluate(self, module, batches, device, dtype=None) -> float:
        import torch

        module.eval()
        total, count = torch.zeros((), dtype=torch.float64, device=device), 0
        with torch.no_grad():
            for batch in self._limited(batches):
                batch = self._to_device(batch, device)
                with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                    loss = module.loss(batch)["loss"]
                total += loss.double() * len(batch["x"])
                count += len(batch["x"])
        module.train()
        return float(total) / max(count, 1)

    # -- helpers ------------------------------------------------------------------
    @staticmethod
    def _to_device(batch: dict, device) -> dict:
        """The batch on the device; on CUDA from pinned memory, so the copy runs asynchronously."""
        if device.type != "cuda":
            return {k: v.to(device) for k, v in batch.items()}
        return {k: v.pin_memory().to(device, non_blocking=True) for k, v in batch.items()}

    def _limited(self, batches):
        limit = self.settings.max_batches_per_epoch
        for index, batch in enumerate(batches):
            if limit is not None and index >= limit:
                return
            yield batch

    def _steps_per_epoch(self, batches) -> int:
        limit = self.settings.max_batches_per_epoch
        return max(1, min(len(batches), limit) if limit is not None else len(batches))

    def _epochs_reaching_min_steps(self, epochs: int, steps_per_epoch: int) -> int:
        """A stage's epochs, raised (past trainer.max_epochs too) until they hold trainer.min_steps optimiser steps:
        on a few hundred rows an epoch is one to three steps, and a budget in epochs ends training before it learns.
        The schedule spans the raised length, so the learning rate has not decayed to zero before the budget ends."""
        if self.settings.min_steps is None:
            return epochs
        return max(epochs, math.ceil(self.settings.min_steps / steps_per_epoch))

    def _lr_lambda(self, total_steps: int, steps_per_epoch: int, schedule: str):
        warmup = int(self.settings.warmup_epochs * steps_per_epoch)
        cosine = schedule == "cosine"

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            if not cosine:
                return 1.0
            progress = (step - warmup) / max(1, total_steps - warmup)
            return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

        return factor

    def _save(self, which: str, module, optimizer, scheduler, train_batches, progress: dict) -> None:
        import torch

        if self.checkpoint_dir is None:
            return
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        state = {"module": module.state_dict(), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), **progress, "history": self.history,
                 "structure": structure_digest(module), "rng": rng_state(train_batches)}
        tmp = self.checkpoint_dir / f".{which}.pt.tmp"
        with open(tmp, "wb") as handle:  # through Python: a full disk is an OSError with its errno, not torch's own
            torch.save(state, handle)
        tmp.replace(self.checkpoint_dir / f"{which}.pt")

    def _checkpoint_to_resume(self) -> dict | None:
        """The checkpoint trainer.resume_from names (a folder's last.pt, or a file), with the best weights saved
        beside it (`best_module`); None when not resuming."""
        if not self.settings.resume_from:
            return None
        path = Path(self.settings.resume_from)
        if path.is_dir():
            path = RunFolder(path).newest_last_checkpoint() or path / "last.pt"  # a run folder, or checkpoints/
        if not path.is_file():
            raise UserError(f"trainer.resume_from: no checkpoint at {path}; name an earlier run's folder, its "
                            f"checkpoint folder or last.pt, {START_AFRESH}")
        state = read_checkpoint(path)
        best_path = path.with_name("best.pt")
        best = read_checkpoint(best_path) if best_path.is_file() else None
        state["best_module"] = best["module"] if best is not None and best["stage"] == state["stage"] else None
        state["path"] = path
        return state

    def _resume(self, state: dict, module, optimizer, scheduler, train_batches):
        """Load a checkpoint of this stage: (start epoch, best monitored loss, best weights, stale epochs, step)."""
        module.load_state_dict(state["module"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        self.history = list(state["history"])
        if "rng" in state:
            load_rng_state(state["rng"], train_batches)
        else:
            log.warning("%s holds no random-number state (written by an older tsad): the resumed run will not "
                        "match an uninterrupted one exactly", state["path"])
        log.info("resumed from %s at %s epoch %d", state["path"], state["stage"], state["epoch"] + 1)
        steps_so_far = (state["epoch"] + 1) * self._steps_per_epoch(train_batches)
        return state["epoch"] + 1, state["best"], state["best_module"], state["stale"], state.get("step", steps_so_far)


def read_totals(totals: dict) -> dict[str, float]:
    """Per-term loss sums kept on the device as float64 tensors, read with one transfer (one sync on GPU)."""
    import torch

    if not totals:
        return {}
    values = torch.stack([value.reshape(()) for value in totals.values()]).tolist()
    return dict(zip(totals, values))


def read_checkpoint(path: Path) -> dict:
    """A checkpoint file written by Trainer; UserError for anything else."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated, corrupt or foreign file: torch raises many kinds
        raise UserError(f"trainer.resume_from: {path} is not a readable checkpoint ({type(error).__name__}); name "
                        f"a last.pt written by tsad, {START_AFRESH}") from None
    if not isinstance(state, dict) or not set(CHECKPOINT_KEYS) <= set(state):
        raise UserError(f"trainer.resume_from: {path} is not a tsad training checkpoint; name a last.pt written by "
                        f"tsad, {START_AFRESH}")
    return state


def check_same_model(checkpoint: dict, module) -> None:
    """UserError unless the checkpoint (and the best weights beside it) hold weights of `module`'s structure."""
    own = module.state_dict()
    saved = [checkpoint["module"]] + ([checkpoint["best_module"]] if checkpoint["best_module"] is not None else [])
    if checkpoint.get("structure", structure_digest(module)) != structure_digest(module) or not all(
            _same_shapes(weights, own) for weights in saved):
        raise UserError(f"trainer.resume_from: {checkpoint['path']} is a checkpoint of another model (its weights' "
                        f"names or shapes differ from this {type(module).__name__}'s); name a checkpoint of this "
                        f"config's run, {START_AFRESH}")


def _same_shapes(saved: dict, own: dict) -> bool:
    return saved.keys() == own.keys() and all(tuple(saved[k].shape) == tuple(own[k].shape) for k in own)


def structure_digest(module) -> str:
    """A digest of the module's class and its weights' names and shapes: tells a checkpoint of another model."""
    layout = [type(module).__qualname__, *[[key, list(value.shape)] for key, value in module.state_dict().items()]]
    return hashlib.sha256(json.dumps(layout).encode()).hexdigest()[:16]


def rng_state(train_batches) -> dict:
    """Every random-number state training draws from, in types a weights-only torch.load accepts."""
    import torch

    numpy_state = np.random.get_state(legacy=False)
    numpy_state["state"]["key"] = numpy_state["state"]["key"].tolist()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": numpy_state, "python": random.getstate(),
            "batches": train_batches.state() if hasattr(train_batches, "state") else None}


def load_rng_state(state: dict, train_batches) -> None:
    """Put back the random-number states `rng_state` saved."""
    import torch

    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    numpy_state = copy.deepcopy(state["numpy"])
    numpy_state["state"]["key"] = np.asarray(numpy_state["state"]["key"], dtype=np.uint32)
    np.random.set_state(numpy_state)
    random.setstate(state["python"])
    if state["batches"] is not None and hasattr(train_batches, "load_state"):
        train_batches.load_state(state["batches"])
