"""The run configuration as typed sections, parsed once at the door of every job.

`RunConfig.parse(config)` turns the resolved Hydra config (a plain dict without Hydra's own node) into one
frozen object: the model's checked hyperparameters, the dataset family's section, the trainer, the threshold
policy, the post-processing, the logger, test-time augmentation and the top-level keys. Every section checks its
own keys, types and declared ranges as it is parsed, so a bad value anywhere fails here in one line; from then
on code receives these objects, never the raw dict (which stays only for the config hash and job.json).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from tsad.errors import UserError
from tsad.settings.fields import Section, check_values, display, setting

OBJECTIVE_PREFIX = "validation."
DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")
SECTIONS = ("model", "dataset", "trainer", "threshold", "postprocess", "logger", "tta", "paths")


@dataclass(frozen=True)
class ModelSettings:
    """The model group: a registered model's name and its hyperparameters, checked against its dataclass."""

    name: str
    params: dict[str, Any]

    @classmethod
    def parse(cls, mapping: dict) -> ModelSettings:
        from tsad.models.base import MODELS

        params = dict(mapping or {})
        model = MODELS.get(params.pop("name", None))
        return cls(model.name, check_values(model, params, "model", f"model {model.name}"))


@dataclass(frozen=True)
class Paths(Section):
    output_dir: str = "outputs"  # run folders go to <output_dir>/runs/..., sweeps to <output_dir>/multiruns/...

    def __post_init__(self) -> None:
        if not self.output_dir.strip():
            raise UserError("paths.output_dir='' names no folder; give one, e.g. paths.output_dir=outputs")


@dataclass(frozen=True)
class RunConfig(Section):
    """A whole run's settings: the top-level keys (conf/config.yaml) and one typed section per config group."""

    seed: int = setting(0, at_least=0, at_most=2**63 - 1)
    device: str = "auto"
    threads: int = setting(0, at_least=0, at_most=4096)  # 0: the allowed cores shared with other runs (tsad/cores.py)
    tags: list[str] = setting(factory=list)
    plots: bool = True
    resume: bool = False
    overwrite: bool = False
    objective: str | None = None
    # The sections, typed by their own classes (ModelSettings, the dataset family's DatasetSettings,
    # TrainerSettings, a ThresholdPolicy, PostProcess, the logger's settings, TestTimeAugmentation, Paths); declared
    # Any here because check_values reads these annotations and the classes live in the modules above this one.
    model: Any = field(default=None)
    dataset: Any = field(default=None)
    trainer: Any = field(default=None)
    threshold: Any = field(default=None)
    postprocess: Any = field(default=None)
    logger: Any = field(default=None)
    tta: Any = field(default=None)
    paths: Any = field(default=None)

    @classmethod
    def parse(cls, config: dict) -> RunConfig:
        from tsad.data.registry import dataset_settings
        from tsad.evaluation.thresholds import threshold_policy
        from tsad.models.tta import TestTimeAugmentation
        from tsad.postprocess import PostProcess
        from tsad.tracking import check_logger
        from tsad.training.trainer import TrainerSettings

        raw = {key: config.get(key) for key in SECTIONS}
        # The top-level keys first: sections copy some of them (dataset.seed: ${seed}), and an error names the key
        # the user wrote.
        top = check_values(cls, {key: value for key, value in config.items() if key not in SECTIONS}, "")
        for key in ("model", "dataset"):
            if not isinstance(raw[key], dict):
                raise UserError(f"the config has no {key} section; choose one, e.g. {key}=...")
        sections = {
            "model": ModelSettings.parse(raw["model"]),
            "dataset": dataset_settings(raw["dataset"]),
            "trainer": TrainerSettings.parse(raw["trainer"], "trainer"),
            "threshold": threshold_policy(raw["threshold"] or {"policy": "val_percentile"}),
            "postprocess": PostProcess.parse(raw["postprocess"], "postprocess"),
            "logger": check_logger(raw["logger"]),
            "tta": TestTimeAugmentation.parse(raw["tta"], "tta"),
            "paths": Paths.parse(raw["paths"], "paths"),
        }
        return cls(**top, **sections)

    def __post_init__(self) -> None:
        if not DEVICE.fullmatch(self.device):
            raise UserError(f"device={display(self.device)} is not a device: choose auto, cpu, cuda or cuda:N")
        if self.objective is not None:
            if not self.objective.startswith(OBJECTIVE_PREFIX):
                raise UserError(f"objective must name a validation metric (validation.<...>, e.g. "
                                f"validation.val_loss), got {self.objective!r}: optimising a test metric would leak "
                                "test labels into the search")
            if self.objective.startswith("validation.labelled_val") and not getattr(self.dataset, "labelled_val", 0):
                raise UserError(f"objective {self.objective} needs a labelled validation split: set "
                                "dataset.labelled_val (a fraction of n_test or a count of series, e.g. "
                                "dataset.labelled_val=0.3)")
