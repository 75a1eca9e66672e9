"""The detector contract, the registry, and the shared wrapper that runs torch modules.

Every detector:
  fit(train, val) -> self     learns from train (val only for early stopping), never test
  score(data) -> Scores       one score per step of every series and one per series;
                              higher means more anomalous; shapes match the input
  score_train(train) -> Scores scores of the data fit() saw, for thresholds taken on train: by default
                              score(train); a detector that memorises its train data (kNN) overrides
                              it to score each part out of sample
  save(dir) / load(dir)       round-trip weights, normaliser and parameters

Torch models subclass `TorchDetector` and only build an `nn.Module` exposing
  loss(batch) -> dict with a "loss" entry (plus any components worth logging)
  score(batch) -> (step_scores [B, T], series_scores [B])
where batch = {"x": [B, T, C], "mask": [B, T] bool, "lengths": [B], "label": [B]} and
label is the series label the detector may see (1 anomaly, 0 normal, -1 unknown); window batches
built with step_labels=True add "step_label" [B, T] likewise, when the data has visible step labels.
In window mode T is the window length and the wrapper maps window scores back to steps;
a module may return NaN for steps it does not score (e.g. only the last step of a window).

Optional module hooks the shared trainer calls: on_fit_start(trainer, batches),
on_epoch_start(epoch), after_step(step), on_fit_end(trainer, batches), and a `stages`
tuple for models trained in several stages (the trainer sets `module.stage`). By stage name,
optional `stage_epochs` (set in on_fit_start from `trainer.epochs_for(n)`, so that a user's
trainer.max_epochs still caps them) and `stage_settings`: a stage's own lr, weight_decay,
schedule or patience.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterator

import numpy as np

from tsad.data.normalise import Normaliser
from tsad.data.series import SeriesSet
from tsad.data.windows import aggregate_series, causal_window_scores, make_windows, windows_to_steps
from tsad.errors import UserError

_REGISTRY: dict[str, type["Detector"]] = {}


def register(name: str):
    """Class decorator: make a detector available as `model=<name>`."""

    def add(cls):
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return add


def _import_all_models() -> None:
    import tsad.models as package

    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"tsad.models.{module.name}")


def registered_names() -> list[str]:
    _import_all_models()
    return sorted(_REGISTRY)


def get_detector_class(name: str) -> type["Detector"]:
    if name not in _REGISTRY:
        _import_all_models()
    if name not in _REGISTRY:
        raise UserError(f"unknown model {name!r}; known models: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def build_detector(name: str, params: dict, *, normalise: str = "standard", trainer: dict | None = None,
                   device: str = "cpu", seed: int = 0, tta: dict | None = None) -> "Detector":
    """Instantiate a registered detector from config values, validating every parameter."""
    cls = get_detector_class(name)
    detector = cls(**validate_params(cls, params, prefix="model"))
    detector.tta = TestTimeAugmentation(**validate_params(TestTimeAugmentation, dict(tta or {}), prefix="tta"))
    detector.normaliser = Normaliser(normalise)
    detector.trainer_config = dict(trainer or {})
    detector.device = device
    detector.seed = seed
    return detector


def validate_params(cls: type, params: dict, prefix: str) -> dict:
    """Check config values against the constructor: unknown keys and wrong types fail in one line."""
    signature = inspect.signature(cls.__init__)
    known = {k: p for k, p in signature.parameters.items() if k != "self" and p.kind is p.POSITIONAL_OR_KEYWORD}
    checked = {}
    for key, value in params.items():
        if key not in known:
            raise UserError(f"{prefix}.{key} is not a parameter of {cls.name}; known: {', '.join(sorted(known))}")
        checked[key] = _coerce(f"{prefix}.{key}", value, known[key].default)
    return checked


def _coerce(key: str, value: Any, default: Any) -> Any:
    if value is None or default is None or default is inspect.Parameter.empty:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise UserError(f"{key} must be true or false, got {value!r}")
        return value
    if isinstance(default, int) and not isinstance(value, bool) and isinstance(value, (int, float)) and float(value).is_integer():
        return int(value)
    if isinstance(default, float) and not isinstance(value, bool) and isinstance(value, (int, float)):
        return float(value)
    if isinstance(default, (int, float)):
        raise UserError(f"{key} must be a number like {default!r}, got {value!r}")
    if isinstance(default, str) and not isinstance(value, str):
        raise UserError(f"{key} must be a string like {default!r}, got {value!r}")
    return value


@dataclass
class Scores:
    """Per-step scores (one array [T_i] per series) and per-series scores [N]."""

    steps: list[np.ndarray]
    series: np.ndarray


class TestTimeAugmentation:
    """Average window scores over `n` label-preserving perturbations of the input (n=1: off).

    Augmentation k > 0 adds Gaussian jitter (std `jitter`, in normalised units), scales each
    channel by 1 + N(0, scale), and shifts the window grid by a random offset in
    [0, score_stride) (only matters when score_stride > 1). Applies to window models.
    """

    name = "tta"

    def __init__(self, n: int = 1, jitter: float = 0.01, scale: float = 0.02, seed: int = 0):
        if n < 1:
            raise UserError(f"tta.n must be >= 1 (1 turns augmentation off), got {n}")
        self.n, self.jitter, self.scale, self.seed = n, jitter, scale, seed

    def state(self) -> dict:
        return {"n": self.n, "jitter": self.jitter, "scale": self.scale, "seed": self.seed}

    def variants(self, series: np.ndarray, stride: int):
        """Yield (augmented series, window-grid offset); the first is the original."""
        rng = np.random.default_rng([self.seed, len(series)])
        yield series, 0
        for _ in range(self.n - 1):
            scaled = series * (1 + rng.normal(scale=self.scale, size=(1, series.shape[1])))
            jittered = scaled + rng.normal(scale=self.jitter, size=series.shape)
            yield jittered.astype(series.dtype), int(rng.integers(0, stride)) if stride > 1 else 0


class Detector(ABC):
    """Base class: normalisation fitted on train, then the model's own `_fit` / `_score`."""

    name: ClassVar[str] = "detector"

    def __init__(self) -> None:
        self.tta = TestTimeAugmentation()
        self.normaliser = Normaliser("standard")
        self.trainer_config: dict = {}
        self.device = "cpu"
        self.seed = 0
        self.n_channels: int | None = None
        self.history: list[dict] = []

    # -- the contract -------------------------------------------------------------
    def fit(self, train: SeriesSet, val: SeriesSet | None = None) -> "Detector":
        self.normaliser.fit(train.values)
        self.n_channels = train.n_channels
        self._fit(self._normalised(train), None if val is None else self._normalised(val))
        return self

    def score(self, data: SeriesSet) -> Scores:
        if data.n_channels != self.n_channels:
            raise UserError(f"data has {data.n_channels} channels but {self.name} was trained on {self.n_channels}")
        scores = self._score(self._normalised(data))
        for step, series in zip(scores.steps, data.values):
            assert step.shape == (len(series),), f"{self.name} returned {step.shape} scores for {len(series)} steps"
        return scores

    def score_train(self, train: SeriesSet) -> Scores:
        return self.score(train)

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {"name": self.name, "params": self.get_params(), "normaliser": self.normaliser.state(),
                "n_channels": self.n_channels, "seed": self.seed, "tta": self.tta.state()}
        (directory / "detector.json").write_text(json.dumps(meta, indent=2))
        self._save_state(directory)

    @classmethod
    def load(cls, directory: str | Path, device: str = "cpu") -> "Detector":
        directory = Path(directory)
        meta = json.loads((directory / "detector.json").read_text())
        detector_cls = get_detector_class(meta["name"])
        detector = detector_cls(**meta["params"])
        detector.normaliser = Normaliser.from_state(meta["normaliser"])
        detector.n_channels = meta["n_channels"]
        detector.seed = meta["seed"]
        detector.tta = TestTimeAugmentation(**meta.get("tta", {}))
        detector.device = device
        detector._load_state(directory)
        return detector

    def get_params(self) -> dict:
        """Constructor parameters, read back from attributes of the same name (scikit-learn habit)."""
        names = [k for k in inspect.signature(type(self).__init__).parameters if k != "self"]
        return {k: getattr(self, k) for k in names}

    # -- what a model implements --------------------------------------------------
    @abstractmethod
    def _fit(self, train: SeriesSet, val: SeriesSet | None) -> None: ...

    @abstractmethod
    def _score(self, data: SeriesSet) -> Scores: ...

    @abstractmethod
    def _save_state(self, directory: Path) -> None: ...

    @abstractmethod
    def _load_state(self, directory: Path) -> None: ...

    def _normalised(self, data: SeriesSet) -> SeriesSet:
        return data.with_values(self.normaliser.transform(data.values))


class WindowScorer:
    """Mixin for detectors that score fixed-length windows: windows out, one score per step back.

    Needs attributes window, score_stride, step_reduce and series_aggregate. A detector that
    can rebuild windows (`reconstruct_windows`) also gets `reconstruct` for the plots.
    Online protocols set `causal`: each step then gets the score of the window ending at it
    only, and steps before the first full window stay unscored (NaN).
    """

    causal = False

    @property
    def can_reconstruct(self) -> bool:
        return hasattr(self, "reconstruct_windows")

    def reconstruct(self, data: SeriesSet) -> list[np.ndarray]:
        """Reconstructions [T_i, C] of each series in original units (overlapping windows averaged)."""
        rebuilt = []
        for series in self._normalised(data).values:
            windows, starts, n_pad = make_windows(series, self.window, self.score_stride)
            output = self.reconstruct_windows(windows)
            channels = [windows_to_steps(output[:, :, c], starts, len(series), "mean", n_pad) for c in range(series.shape[1])]
            rebuilt.append(np.stack(channels, axis=1) * self.normaliser.scale + self.normaliser.shift)
        return rebuilt

    def _window_scores_to_scores(self, data: SeriesSet, score_windows) -> Scores:
        """score_windows: callable mapping windows [N_w, L, C] to scores [N_w, L] (NaN = not scored).

        With test-time augmentation the per-step scores of every variant are averaged.
        """
        steps = []
        for series in data.values:
            variants = []
            for augmented, offset in self.tta.variants(series, self.score_stride):
                if self.causal:
                    variants.append(causal_window_scores(augmented, self.window, score_windows))
                    continue
                windows, starts, n_pad = make_windows(augmented, self.window, self.score_stride, offset)
                variants.append(windows_to_steps(score_windows(windows), starts, len(series), self.step_reduce, n_pad))
            steps.append(np.mean(variants, axis=0))
        return Scores(steps, np.array([aggregate_series(s, self.series_aggregate) for s in steps]))


class TorchDetector(WindowScorer, Detector):
    """Runs an nn.Module through the shared trainer, on windows or on whole padded series."""

    input_mode: ClassVar[str] = "windows"  # "windows" or "series"

    def __init__(self, window: int = 64, train_stride: int = 4, score_stride: int = 1, step_reduce: str = "mean",
                 series_aggregate: str = "max"):
        super().__init__()
        self.window = window
        self.train_stride = train_stride
        self.score_stride = score_stride
        self.step_reduce = step_reduce
        self.series_aggregate = series_aggregate
        self.module = None
        self.checkpoint_dir: Path | None = None

    @abstractmethod
    def build_module(self, n_channels: int):
        """Return the nn.Module for `n_channels` input channels."""

    @property
    def can_reconstruct(self) -> bool:
        return self.input_mode == "windows" and hasattr(self.module, "reconstruct")

    def reconstruct_windows(self, windows: np.ndarray) -> np.ndarray:
        import torch

        self.module.eval()
        with torch.no_grad():
            return self.module.reconstruct(torch.from_numpy(np.ascontiguousarray(windows)).to(self.device)).cpu().numpy()

    # -- batches ------------------------------------------------------------------
    def batches(self, data: SeriesSet, batch_size: int, shuffle: bool, stride: int | None = None) -> "BatchSource":
        if self.input_mode == "windows":
            return WindowBatches(data, self.window, stride or self.train_stride, batch_size, shuffle, self.seed)
        return SeriesBatches(data, batch_size, shuffle, self.seed)

    # -- fit / score ----------------------------------------------------------------
    def _fit(self, train: SeriesSet, val: SeriesSet | None) -> None:
        import torch

        from tsad.training.trainer import Trainer

        torch.manual_seed(self.seed)
        self.module = self.build_module(train.n_channels)
        trainer = Trainer(self.trainer_config, device=self.device, checkpoint_dir=self.checkpoint_dir)
        batch_size = trainer.batch_size
        val_batches = None if val is None or len(val) == 0 else self.batches(val, batch_size, shuffle=False)
        self.history = trainer.fit(self.module, self.batches(train, batch_size, shuffle=True), val_batches)

    def _score(self, data: SeriesSet) -> Scores:
        import torch

        self.module.eval()
        device = torch.device(self.device)
        self.module.to(device)
        batch_size = int(self.trainer_config.get("batch_size", 64))

        def run(batch: dict) -> tuple[np.ndarray, np.ndarray]:
            with torch.no_grad():
                step, series = self.module.score({k: v.to(device) for k, v in batch.items()})
            return step.float().cpu().numpy(), series.float().cpu().numpy()

        if self.input_mode == "windows":
            def score_windows(windows: np.ndarray) -> np.ndarray:
                out = []
                for start in range(0, len(windows), batch_size):
                    chunk = torch.from_numpy(np.ascontiguousarray(windows[start:start + batch_size]))
                    out.append(run(window_batch(chunk))[0])
                return np.concatenate(out)

            return self._window_scores_to_scores(data, score_windows)

        steps, series_scores = [], []
        for index, batch in SeriesBatches(data, batch_size, shuffle=False, seed=0).with_index():
            step, series = run(batch)
            for row, i in enumerate(index):
                steps.append((i, step[row, : len(data.values[i])].astype(np.float64)))
            series_scores.extend(zip(index, series.astype(np.float64)))
        steps = [s for _, s in sorted(steps, key=lambda item: item[0])]
        return Scores(steps, np.array([s for _, s in sorted(series_scores, key=lambda item: item[0])]))

    # -- persistence ----------------------------------------------------------------
    def _save_state(self, directory: Path) -> None:
        import torch

        torch.save({k: v.detach().cpu() for k, v in self.module.state_dict().items()}, directory / "weights.pt")

    def _load_state(self, directory: Path) -> None:
        import torch

        self.module = self.build_module(self.n_channels)
        self.module.load_state_dict(torch.load(directory / "weights.pt", map_location="cpu", weights_only=True))


# -- batch sources (re-iterable: each pass is one epoch) ------------------------------------
def window_batch(x, label=None) -> dict:
    import torch

    batch = {"x": x, "mask": torch.ones(x.shape[:2], dtype=torch.bool),
             "lengths": torch.full((x.shape[0],), x.shape[1], dtype=torch.long)}
    batch["label"] = label if label is not None else torch.full((x.shape[0],), -1, dtype=torch.long)
    return batch


class BatchSource(ABC):
    """An iterable of batches; iterating again starts a new (reshuffled) epoch."""

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def __iter__(self) -> Iterator[dict]: ...


class WindowBatches(BatchSource):
    """All windows of all series, with each window's visible series label (and step labels if asked)."""

    def __init__(self, data: SeriesSet, window: int, stride: int, batch_size: int, shuffle: bool, seed: int,
                 step_labels: bool = False):
        import torch

        windows, labels = [], []
        visible = data.visible_series_labels()
        for series, label in zip(data.values, visible):
            w, _, _ = make_windows(series, window, stride)
            windows.append(w)
            labels.append(np.full(len(w), label))
        self.x = torch.from_numpy(np.concatenate(windows))
        self.label = torch.from_numpy(np.concatenate(labels))
        steps = data.visible_step_labels() if step_labels else None
        self.step_label = None if steps is None else torch.from_numpy(np.concatenate(
            [make_windows(y[:, None].astype(np.int8), window, stride)[0][..., 0] for y in steps]))
        self.batch_size, self.shuffle = batch_size, shuffle
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return (len(self.x) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[dict]:
        import torch

        order = torch.randperm(len(self.x), generator=self.generator) if self.shuffle else torch.arange(len(self.x))
        for start in range(0, len(order), self.batch_size):
            index = order[start:start + self.batch_size]
            batch = window_batch(self.x[index], self.label[index])
            if self.step_label is not None:
                batch["step_label"] = self.step_label[index]                            # [B, L] int8
            yield batch


class SeriesBatches(BatchSource):
    """Whole series padded to the longest in the batch, with a mask of valid steps."""

    def __init__(self, data: SeriesSet, batch_size: int, shuffle: bool, seed: int):
        self.data, self.batch_size, self.shuffle = data, batch_size, shuffle
        self.visible = data.visible_series_labels()
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return (len(self.data) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[dict]:
        for _, batch in self.with_index():
            yield batch

    def with_index(self) -> Iterator[tuple[np.ndarray, dict]]:
        order = self.rng.permutation(len(self.data)) if self.shuffle else np.arange(len(self.data))
        for start in range(0, len(order), self.batch_size):
            index = order[start:start + self.batch_size]
            yield index, pad_batch([self.data.values[i] for i in index], self.visible[index])


def pad_batch(series: list[np.ndarray], labels: np.ndarray) -> dict:
    """Pad series [T_i, C] to [B, T_max, C] with zeros and a boolean mask of real steps."""
    import torch

    lengths = np.array([len(s) for s in series])
    x = np.zeros((len(series), lengths.max(), series[0].shape[1]), dtype=np.float32)
    for row, s in enumerate(series):
        x[row, : len(s)] = s
    mask = np.arange(lengths.max())[None, :] < lengths[:, None]
    return {"x": torch.from_numpy(x), "mask": torch.from_numpy(mask), "lengths": torch.from_numpy(lengths),
            "label": torch.from_numpy(np.asarray(labels, dtype=np.int64))}
