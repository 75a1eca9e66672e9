"""The detector contract, the model registry, and building a detector from the run config.

Every detector:
  fit(train, val) -> self     learns from train (val only for early stopping), never test
  score(data) -> Scores       one score per step of every series and one per series;
                              higher means more anomalous; shapes match the input
  score_train(train) -> Scores scores of the data fit() saw, for thresholds taken on train: by default
                              score(train); a detector that memorises its train data (kNN) overrides
                              it to score each part out of sample
  save(dir) / load(dir)       round-trip weights, normaliser and parameters

A detector is a dataclass: its fields are its hyperparameters, each declared once with its default
and the values it allows (`tsad.settings.fields.setting`; conf/model/<name>.yaml must hold the
same keys and defaults, a test checks), and the keyword `runtime` says how and where it runs
(normalisation, trainer, device, seed, test-time augmentation, checkpoints, causal scoring), all
given at construction. Construction checks the values against the declarations; checks that
relate several keys go in __post_init__, which also creates the fitted state (empty until fit).
Window models build on window_scoring.WindowScorer, torch models on torch_detector.TorchDetector.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from tsad.data.normalise import KINDS as NORMALISE_KINDS
from tsad.data.normalise import Normaliser
from tsad.data.series import SeriesSet
from tsad.errors import UserError
from tsad.models.state_files import damaged, read_json_object, required_entries, rethrown_for
from tsad.models.tta import TestTimeAugmentation
from tsad.registry import Registry
from tsad.settings.fields import check_values, config_fields
from tsad.training.trainer import TrainerSettings

MODELS: Registry[type[Detector]] = Registry("model", "tsad.models")
DETECTOR_FILE = "detector.json"  # in a saved detector's folder: model name, hyperparameters, normaliser, runtime


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
    trainer: TrainerSettings = field(default_factory=TrainerSettings)
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
        check_values(type(self), self.get_params(), "model")   # declared types and ranges, however it is built
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
        self._require_fitted("score")
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
        self._require_fitted("save")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {"name": self.name, "params": self.get_params(), "normaliser": self.normaliser.state(),
                "n_channels": self.n_channels, "seed": self.seed, "tta": self.runtime.tta.as_dict()}
        (directory / DETECTOR_FILE).write_text(json.dumps(meta, indent=2))
        self._save_state(directory)

    @classmethod
    def load(cls, directory: str | Path, device: str = "cpu", causal: bool = False,
             channels_beside: tuple[Path, int] | None = None) -> Detector:
        """The saved detector, on `device`; causal=True scores each step from the window ending at it (Runtime).
        Files that are missing, damaged or from different runs are a one-line UserError naming the file;
        channels_beside = (file, count): the channel count another file of the folder gives, checked first."""
        path = Path(directory) / DETECTOR_FILE
        meta = read_json_object(path)
        entries = {"name": str, "params": dict, "normaliser": dict, "n_channels": int, "seed": int}
        required_entries(path, meta, {**entries, "tta": dict} if "tta" in meta else entries)   # older: no tta
        try:
            model = MODELS.get(meta["name"])
            params = check_values(model, meta["params"], "model", f"model {model.name}")
            tta = TestTimeAugmentation.parse(meta.get("tta", {}), "tta")
        except UserError as error:
            raise rethrown_for(path, error) from None
        if channels_beside is not None and channels_beside[1] != meta["n_channels"]:
            raise damaged(path, f"describes a detector of {meta['n_channels']} channels, but {channels_beside[0]} "
                                f"lists {channels_beside[1]}: the files come from different runs")
        normaliser = saved_normaliser(path, meta["normaliser"], meta["n_channels"])
        runtime = Runtime(normalise=normaliser.kind, device=device, seed=meta["seed"], tta=tta, causal=causal)
        detector = model(**params, runtime=runtime)
        detector.normaliser, detector.n_channels = normaliser, meta["n_channels"]
        detector._load_state(Path(directory))
        return detector

    def get_params(self) -> dict:
        """The hyperparameters (every dataclass field but runtime)."""
        return {f.name: getattr(self, f.name) for f in config_fields(type(self))}

    @property
    def n_parameters(self) -> int:
        """Trainable weights (0 for detectors without a torch module)."""
        return 0

    # What a detector can do, for protocols whose data cannot suit every detector (TSB-AD's: one series per file).
    learns_from_one_series: ClassVar[bool] = True  # False: fit() needs a set of training series, not one
    scores_vary_within_series: ClassVar[bool] = True  # False: every step gets its series' score

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

    def _require_fitted(self, action: str) -> None:
        if self.n_channels is None:
            raise UserError(f"{self.name} is not fitted, so there is nothing to {action}: call fit(train) first, "
                            f"or load a saved detector")

    def _normalised(self, data: SeriesSet) -> SeriesSet:
        return data.with_values(self.normaliser.transform(data.values))


def saved_normaliser(path: Path, state: dict, n_channels: int) -> Normaliser:
    """The normaliser of detector.json (`path`), with one shift and scale per channel."""
    if n_channels < 1 or state.get("kind") not in NORMALISE_KINDS:
        raise damaged(path, f"has n_channels={n_channels} and normaliser kind {state.get('kind')!r}, which no "
                            f"tsad detector saves")
    try:
        normaliser = Normaliser.from_state(state)
        shapes_fit = normaliser.shift.shape == normaliser.scale.shape == (n_channels,)
        numbers = shapes_fit and np.isfinite(normaliser.shift.astype(np.float64)).all() and (normaliser.scale > 0).all()
    except (KeyError, TypeError, ValueError):
        numbers = False
    if not numbers:
        raise damaged(path, f"has a normaliser that is not {n_channels} finite shifts and positive scales")
    return normaliser


# Which registered models a preset may select (`${tsad_models:<kind>}` in conf/experiment/*.yaml).
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

def detector_from_settings(settings, device: str = "cpu", checkpoint_dir: Path | None = None,
                           causal: bool = False, epoch_callbacks: tuple = ()) -> Detector:
    """The unfitted detector a run's settings (tsad.settings.run.RunConfig) describe: the model's checked
    hyperparameters, and as its runtime dataset.normalise, the trainer, the seed and test-time augmentation."""
    runtime = Runtime(normalise=settings.dataset.normalise, trainer=settings.trainer, device=device,
                      seed=settings.seed, tta=settings.tta, checkpoint_dir=checkpoint_dir, causal=causal,
                      epoch_callbacks=tuple(epoch_callbacks))
    return MODELS.get(settings.model.name)(**settings.model.params, runtime=runtime)


def build_detector(name: str, params: dict | None = None, *, trainer: dict | TrainerSettings | None = None,
                   tta: dict | TestTimeAugmentation | None = None, **runtime) -> Detector:
    """A registered detector, unfitted, from its hyperparameters and Runtime settings (trainer and tta as their
    config mappings or settings). Every value is checked like a config value: unknown keys, wrong types and
    values outside a key's declared range fail in one line, then the model's own checks across keys run."""
    if not isinstance(trainer, TrainerSettings):
        trainer = TrainerSettings.parse(trainer, "trainer")
    if not isinstance(tta, TestTimeAugmentation):
        tta = TestTimeAugmentation.parse(tta, "tta")
    cls = MODELS.get(name)
    checked = check_values(cls, params, "model", f"model {cls.name}")
    return cls(**checked, runtime=Runtime(**runtime, trainer=trainer, tta=tta))
