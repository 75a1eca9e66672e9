"""The detector contract, the model registry, and building a detector from the run config.

Every detector:
  fit(train, val) -> self     learns from train (val only for early stopping), never test
  score(data) -> Scores       one score per step of every series and one per series;
                              higher means more anomalous; shapes match the input
  score_train(train) -> Scores scores of the data fit() saw, for thresholds taken on train: by default
                              score(train); a detector that memorises its train data (kNN) overrides
                              it to score each part out of sample
  save(dir) / load(dir)       round-trip weights, normaliser and parameters

A detector is a dataclass: its fields are its hyperparameters, declared once with their defaults
(tsad/conf/model/<name>.yaml must hold the same keys and defaults; a test checks), and the keyword
`runtime` says how and where it runs (normalisation, trainer, device, seed, test-time
augmentation, checkpoints, causal scoring), all given at construction. Checks of the
hyperparameters go in __post_init__, which also creates the fitted state (empty until fit).
Window models build on window_scoring.WindowScorer, torch models on torch_detector.TorchDetector.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from tsad.data.normalise import Normaliser
from tsad.data.series import SeriesSet
from tsad.errors import UserError
from tsad.models.tta import TestTimeAugmentation
from tsad.registry import Registry

MODELS: Registry[type[Detector]] = Registry("model", "tsad.models")


def require_at_least(minimum: int, **values) -> None:
    """For __post_init__ checks: a one-line UserError naming the first model.<key> that is not an integer >= minimum."""
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise UserError(f"model.{key} must be an integer >= {minimum}, got {value!r}")


def require_choice(key: str, value, allowed) -> None:
    """For __post_init__ checks: a one-line UserError when model.<key> is not one of `allowed`."""
    if value not in allowed:
        raise UserError(f"model.{key} must be one of {', '.join(allowed)}, got {value!r}")


def register(name: str):
    """Class decorator: make a detector available as `model=<name>`."""

    def add(cls):
        cls.name = name
        return MODELS.register(name)(cls)

    return add


@dataclass
class Runtime:
    """How and where a detector runs, apart from what it is: set by the run, not by the model config."""

    normalise: str = "standard"  # dataset.normalise
    trainer: dict = field(default_factory=dict)  # the trainer config group
    device: str = "cpu"
    seed: int = 0
    tta: TestTimeAugmentation = field(default_factory=TestTimeAugmentation)
    checkpoint_dir: Path | None = None  # where a torch model's trainer keeps last.pt / best.pt
    causal: bool = False  # online protocols: a window model scores each step from the window ending at it only
    epoch_callbacks: tuple = ()  # called by the trainer after every epoch with the history so far (history.csv, logger)


@dataclass
class Scores:
    """Per-step scores (one array [T_i] per series) and per-series scores [N]."""

    steps: list[np.ndarray]
    series: np.ndarray


@dataclass(eq=False)
class Detector(ABC):
    """Base class: normalisation fitted on train, then the model's own `_fit` / `_score`."""

    name: ClassVar[str] = "detector"
    runtime: Runtime = field(default_factory=Runtime, kw_only=True, repr=False)

    def __post_init__(self) -> None:
        self.normaliser = Normaliser(self.runtime.normalise)
        self.n_channels: int | None = None
        self.history: list[dict] = []

    @property
    def seed(self) -> int:
        return self.runtime.seed

    @property
    def device(self) -> str:
        return self.runtime.device

    # -- the contract -------------------------------------------------------------
    def fit(self, train: SeriesSet, val: SeriesSet | None = None) -> Detector:
        self.normaliser.fit(train.values)
        self.n_channels = train.n_channels
        self._fit(self._normalised(train), None if val is None else self._normalised(val))
        return self

    def score(self, data: SeriesSet) -> Scores:
        if self.n_channels is None:
            raise UserError(f"{self.name} is not fitted: call fit(train) first, or load a saved detector")
        if data.n_channels != self.n_channels:
            raise UserError(f"data has {data.n_channels} channels but {self.name} was trained on {self.n_channels}")
        scores = self._score(self._normalised(data))
        for step, series in zip(scores.steps, data.values):
            if step.shape != (len(series),):
                raise RuntimeError(f"{self.name} broke the detector contract: it returned {step.shape} scores for a "
                                   f"series of {len(series)} steps")
        return scores

    def score_train(self, train: SeriesSet) -> Scores:
        return self.score(train)

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {"name": self.name, "params": self.get_params(), "normaliser": self.normaliser.state(),
                "n_channels": self.n_channels, "seed": self.seed, "tta": self.runtime.tta.state()}
        (directory / "detector.json").write_text(json.dumps(meta, indent=2))
        self._save_state(directory)

    @classmethod
    def load(cls, directory: str | Path, device: str = "cpu", causal: bool = False) -> Detector:
        """The saved detector, on `device`; causal=True scores each step from the window ending at it (Runtime)."""
        directory = Path(directory)
        meta = json.loads((directory / "detector.json").read_text())
        normaliser = Normaliser.from_state(meta["normaliser"])
        runtime = Runtime(normalise=normaliser.kind, device=device, seed=meta["seed"],
                          tta=TestTimeAugmentation(**meta.get("tta", {})), causal=causal)
        detector = MODELS.get(meta["name"])(**meta["params"], runtime=runtime)
        detector.normaliser, detector.n_channels = normaliser, meta["n_channels"]
        detector._load_state(directory)
        return detector

    def get_params(self) -> dict:
        """The hyperparameters (every dataclass field but runtime)."""
        return {f.name: getattr(self, f.name) for f in hyperparameters(type(self))}

    @property
    def n_parameters(self) -> int:
        """Trainable weights (0 for detectors without a torch module)."""
        return 0

    @classmethod
    def reads_whole_series(cls) -> bool:
        """Whether a step's score may read the whole series, later steps included: such a detector suits
        series-level data and cannot score causally (online protocols refuse it)."""
        return False

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


# Which registered models a preset may select (`${tsad_models:<kind>}` in tsad/conf/experiment/*.yaml).
MODEL_KINDS = {
    "all": lambda cls: True,
    "point_level": lambda cls: not cls.reads_whole_series(),
}


def model_names(kind: str = "all") -> str:
    """The registered models of one kind, comma-separated (a sweep's choice list)."""
    if kind not in MODEL_KINDS:
        raise UserError(f"tsad_models:{kind} is not a kind of model; known: {', '.join(MODEL_KINDS)}")
    return ",".join(name for name, cls in MODELS.items() if MODEL_KINDS[kind](cls))


# -- building a detector from the run config -----------------------------------------------

def hyperparameters(cls: type[Detector]) -> list:
    """The dataclass fields a model config may set."""
    return [f for f in fields(cls) if f.init and not f.kw_only]


def default_value(spec) -> Any:
    if spec.default is not MISSING:
        return spec.default
    return spec.default_factory() if spec.default_factory is not MISSING else MISSING


def detector_from_config(config: dict, device: str = "cpu", checkpoint_dir: Path | None = None,
                         causal: bool = False, epoch_callbacks: tuple = ()) -> Detector:
    """The unfitted detector a resolved run config describes (model, dataset.normalise, trainer, seed, tta)."""
    params = dict(config["model"])
    return build_detector(params.pop("name"), params, normalise=config["dataset"].get("normalise", "standard"),
                          trainer=dict(config["trainer"]), device=device, seed=config["seed"],
                          tta=config.get("tta"), checkpoint_dir=checkpoint_dir, causal=causal,
                          epoch_callbacks=tuple(epoch_callbacks))


def build_detector(name: str, params: dict | None = None, *, tta: dict | None = None, **runtime) -> Detector:
    """A registered detector from its hyperparameters and Runtime settings (tta as its config mapping).

    Every value is checked like a config value: unknown keys and wrong types fail in one line.
    """
    cls = MODELS.get(name)
    augmentation = TestTimeAugmentation(**checked_settings(TestTimeAugmentation, dict(tta or {}), "tta"))
    return cls(**checked_params(cls, dict(params or {})), runtime=Runtime(**runtime, tta=augmentation))


def checked_params(cls: type[Detector], params: dict) -> dict:
    """Model config values against the model's hyperparameters, coerced to their defaults' types."""
    known = {spec.name: spec for spec in hyperparameters(cls)}
    checked = {}
    for key, value in params.items():
        if key not in known:
            raise UserError(f"model.{key} is not a parameter of {cls.name}; known: {', '.join(sorted(known))}")
        checked[key] = coerce(f"model.{key}", value, default_value(known[key]))
    return checked


def checked_settings(cls: type, params: dict, prefix: str) -> dict:
    """Config values against a plain class's constructor defaults (e.g. tta.*)."""
    import inspect

    known = {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items() if k != "self"}
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise UserError(f"{prefix}.{unknown[0]} is not a parameter of {prefix}; known: {', '.join(sorted(known))}")
    return {key: coerce(f"{prefix}.{key}", value, known[key]) for key, value in params.items()}


def coerce(key: str, value: Any, default: Any) -> Any:
    if value is None or default is None or default is MISSING:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise UserError(f"{key} must be true or false, got {value!r}")
        return value
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, int) and is_number and float(value).is_integer():
        return int(value)
    if isinstance(default, float) and is_number:
        return float(value)
    if isinstance(default, (int, float)):
        raise UserError(f"{key} must be a number like {default!r}, got {value!r}")
    if isinstance(default, str) and not isinstance(value, str):
        raise UserError(f"{key} must be a string like {default!r}, got {value!r}")
    return value
