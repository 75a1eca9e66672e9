"""Typed config sections: every numeric key of every section declares its range, and any value outside it fails
in one line naming the key. The cases are generated from the declarations, so a new key is covered when declared."""

from __future__ import annotations

import dataclasses
import math
import typing
from importlib import resources

import pytest
import yaml

from tsad.data.registry import DATASETS
from tsad.errors import UserError
from tsad.evaluation.thresholds import POLICIES, Fixed, threshold_policy
from tsad.models.base import MODELS
from tsad.models.tta import TestTimeAugmentation as TTA
from tsad.postprocess import PostProcess
from tsad.settings.fields import check_values, config_fields, default_of, numeric_fields_without_range
from tsad.settings.run import Paths, RunConfig
from tsad.tracking import SETTINGS as LOGGERS
from tsad.training.trainer import TrainerSettings

# (prefix, class, the keys a mapping of it needs besides the one under test)
SECTIONS = [("trainer", TrainerSettings, {}), ("postprocess", PostProcess, {}), ("tta", TTA, {}),
            ("paths", Paths, {}), ("", RunConfig, {})]
SECTIONS += [("threshold", cls, {"value": 0.5} if cls is Fixed else {}) for cls in POLICIES.values()]
SECTIONS += [("logger", cls, {}) for cls in dict.fromkeys(LOGGERS.values())]
SECTIONS += [("model", cls, {}) for _, cls in MODELS.items()]
SECTIONS += [("dataset", cls, {}) for _, cls in DATASETS.items()]


def section_id(section) -> str:
    return f"{section[0] or 'top'}:{section[1].__name__}"


@pytest.mark.parametrize("section", SECTIONS, ids=section_id)
def test_every_numeric_key_declares_its_range(section):
    assert numeric_fields_without_range(section[1]) == []


def out_of_range_cases():
    """(prefix, class, needed keys, key, a value outside the key's declared range) for every ranged key."""
    for prefix, cls, needed in SECTIONS:
        hints = typing.get_type_hints(cls)
        for spec in config_fields(cls):
            allowed = spec.metadata.get("range")
            if allowed is None:
                continue
            integer = int in typing.get_args(hints[spec.name]) or hints[spec.name] is int
            values = []
            if allowed.at_least is not None:
                values.append(allowed.at_least - 1)
            if allowed.above is not None:
                values.append(allowed.above)
            if allowed.at_most is not None:
                values.append(allowed.at_most + 1)
            if allowed.below is not None:
                values.append(allowed.below)
            if not integer:
                values.append(math.nan)
            if not values:  # "any finite number"
                values.append(math.inf)
            default = default_of(spec)
            for value in values:
                value = int(value) if integer and math.isfinite(value) else value
                if isinstance(default, (list, tuple)):  # a list of numbers: one element out of range
                    value = [*list(default)[:-1], value] if default else [value]
                yield pytest.param(prefix, cls, needed, spec.name, value, id=f"{prefix or 'top'}.{spec.name}={value}")


@pytest.mark.parametrize(("prefix", "cls", "needed", "key", "value"), list(out_of_range_cases()))
def test_a_value_outside_the_declared_range_fails_in_one_line_naming_the_key(prefix, cls, needed, key, value):
    with pytest.raises(UserError) as raised:
        check_values(cls, {**needed, key: value}, prefix)
    message = str(raised.value)
    assert "\n" not in message and f"{prefix + '.' if prefix else ''}{key}=" in message and "allowed" in message


def test_the_trainer_yaml_mirrors_its_dataclass():
    config = yaml.safe_load(resources.files("tsad.conf").joinpath("trainer", "default.yaml").read_text())
    assert config == {spec.name: default_of(spec) for spec in config_fields(TrainerSettings)}


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_each_threshold_yaml_mirrors_its_policy(name):
    config = yaml.safe_load(resources.files("tsad.conf").joinpath("threshold", f"{name}.yaml").read_text())
    assert config.pop("policy") == name
    assert config == {spec.name: default_of(spec) for spec in config_fields(POLICIES[name])}


def postprocess_options() -> list[str]:
    folder = resources.files("tsad.conf").joinpath("postprocess")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


@pytest.mark.parametrize("option", postprocess_options())
def test_each_postprocess_yaml_names_itself_and_keeps_the_published_constants(option):
    """An option turns transforms on (likelihood, spatial, rest); the constants it states are the dataclass's."""
    config = yaml.safe_load(resources.files("tsad.conf").joinpath("postprocess", f"{option}.yaml").read_text())
    settings = PostProcess.parse(config, "postprocess")
    assert settings.name == option
    switches = {spec.name for spec in config_fields(PostProcess) if spec.type in (bool, "bool")}
    defaults = PostProcess()
    assert {key: value for key, value in config.items() if key not in switches | {"name"}} == {
        key: getattr(defaults, key) for key in config if key not in switches | {"name"}}


def test_the_top_level_yaml_mirrors_the_run_config():
    config = yaml.safe_load(resources.files("tsad.conf").joinpath("config.yaml").read_text())
    top = {spec.name: default_of(spec) for spec in config_fields(RunConfig) if spec.default is not None
           or spec.default_factory is not dataclasses.MISSING}
    assert {key: config[key] for key in top} == top
    assert config["tta"] == {**{spec.name: default_of(spec) for spec in config_fields(TTA)},
                             "seed": "${seed}"}
    assert config["paths"] == {"output_dir": Paths().output_dir}
    assert set(config) - {"defaults", "hydra"} == {spec.name for spec in config_fields(RunConfig)} - {
        "model", "dataset", "trainer", "threshold", "postprocess", "logger"}


def test_unknown_keys_and_wrong_types_fail_in_one_line():
    with pytest.raises(UserError, match=r"unknown key 'trainer.lrr'; did you mean trainer.lr\?"):
        TrainerSettings.parse({"lrr": 0.1}, "trainer")
    with pytest.raises(UserError, match="plots='maybe' has the wrong type: expected true or false"):
        check_values(RunConfig, {"plots": "maybe"}, "")
    with pytest.raises(UserError, match="tags='hello' has the wrong type"):
        check_values(RunConfig, {"tags": "hello"}, "")
    with pytest.raises(UserError, match="unknown key 'foo'"):
        check_values(RunConfig, {"foo": 1}, "")
    with pytest.raises(UserError, match=r"paths.output_dir='' names no folder"):
        Paths.parse({"output_dir": " "}, "paths")
    with pytest.raises(UserError, match="threshold.policy must be one of"):
        threshold_policy({"policy": "median"})


def test_values_are_taken_as_their_declared_types():
    settings = TrainerSettings.parse({"lr": 1, "max_epochs": 3.0, "precision": 32}, "trainer")
    assert settings.lr == 1.0 and isinstance(settings.lr, float)
    assert settings.max_epochs == 3 and isinstance(settings.max_epochs, int)
    with pytest.raises(UserError, match="trainer.max_epochs=2.5 has the wrong type: expected an integer"):
        TrainerSettings.parse({"max_epochs": 2.5}, "trainer")
    with pytest.raises(UserError, match="trainer.batch_size=true has the wrong type"):
        TrainerSettings.parse({"batch_size": True}, "trainer")
