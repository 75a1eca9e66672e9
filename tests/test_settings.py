"""Typed config sections: every numeric key of every section declares its range, and any value outside it fails
in one line naming the key. The cases are generated from the declarations, so a new key is covered when declared."""

from __future__ import annotations

import dataclasses
import math
import typing
from importlib import resources

import pytest
import yaml

from tsad.data.registry import DATASETS, dataset_settings
from tsad.errors import UserError
from tsad.evaluation.thresholds import POLICIES, threshold_policy
from tsad.models.base import MODELS, build_detector
from tsad.models.tta import TestTimeAugmentation as TTA
from tsad.postprocess import PostProcess
from tsad.settings.fields import check_values, config_fields, default_of, numeric_fields_without_range
from tsad.settings.run import Paths, RunConfig
from tsad.tracking import SETTINGS as LOGGERS
from tsad.tracking import check_logger
from tsad.training.trainer import TrainerSettings

# (prefix, settings class, how a run parses a mapping of it): every typed section of the config
SECTIONS = [("trainer", TrainerSettings, lambda m: TrainerSettings.parse(m, "trainer")),
            ("postprocess", PostProcess, lambda m: PostProcess.parse(m, "postprocess")),
            ("tta", TTA, lambda m: TTA.parse(m, "tta")),
            ("paths", Paths, lambda m: Paths.parse(m, "paths")),
            ("", RunConfig, lambda m: check_values(RunConfig, m, ""))]
SECTIONS += [("threshold", cls, lambda m, name=name: threshold_policy({"policy": name, "value": 0.5, **m}
                                                                      if name == "fixed" else {"policy": name, **m}))
             for name, cls in POLICIES.items()]
SECTIONS += [("logger", cls, lambda m, name=name: check_logger({"name": name, **m})) for name, cls in LOGGERS.items()]
SECTIONS += [("model", cls, lambda m, name=name: build_detector(name, m)) for name, cls in MODELS.items()]
SECTIONS += [("dataset", cls, lambda m, name=name: dataset_settings({"family": name, **m}))
             for name, cls in DATASETS.items()]


def section_id(section) -> str:
    return f"{section[0] or 'top'}:{section[1].__name__}"


@pytest.mark.parametrize("section", SECTIONS, ids=section_id)
def test_every_numeric_key_declares_its_range(section):
    assert numeric_fields_without_range(section[1]) == []


def numbers_admitted(annotation) -> set[type]:
    """int and float, as far as `annotation` admits them (inside unions, lists and tuples too)."""
    if annotation in (int, float):
        return {annotation}
    return {kind for argument in typing.get_args(annotation) if argument is not Ellipsis
            for kind in numbers_admitted(argument)}


def values_outside(annotation, allowed) -> list:
    """Values just outside each bound of a declared range, and NaN and infinity where the key takes floats, as the
    key's type holds them: a list or tuple key gets one with every element so."""
    integer = float not in numbers_admitted(annotation)
    values = []
    if allowed.at_least is not None:
        values.append(allowed.at_least - 1 if integer else math.nextafter(allowed.at_least, -math.inf))
    if allowed.above is not None:
        values.append(allowed.above)
    if allowed.at_most is not None:
        values.append(allowed.at_most + 1 if integer else math.nextafter(allowed.at_most, math.inf))
    if allowed.below is not None:
        values.append(allowed.below)
    if not integer:
        values += [math.nan, math.inf]
    values = [int(v) if integer else v for v in values]
    sequences = [a for a in (annotation, *typing.get_args(annotation)) if typing.get_origin(a) in (list, tuple)]
    if sequences:
        arguments = typing.get_args(sequences[0])
        length = len(arguments) if typing.get_origin(sequences[0]) is tuple and Ellipsis not in arguments else 1
        return [[value] * length for value in values]
    return values


def out_of_range_cases():
    for prefix, cls, parse in SECTIONS:
        hints = typing.get_type_hints(cls)
        for spec in config_fields(cls):
            if "range" in spec.metadata:
                for value in values_outside(hints[spec.name], spec.metadata["range"]):
                    yield pytest.param(prefix, parse, spec.name, value,
                                       id=f"{section_id((prefix, cls))}.{spec.name}={value}".replace(" ", ""))


@pytest.mark.parametrize(("prefix", "parse", "key", "value"), list(out_of_range_cases()))
def test_a_value_outside_the_declared_range_fails_in_one_line_naming_the_key(prefix, parse, key, value):
    """Through the way a run parses the section (a model is built, a dataset family picked), before any data."""
    with pytest.raises(UserError) as raised:
        parse({key: value})
    message = str(raised.value)
    assert "\n" not in message and message.startswith(f"{prefix + '.' if prefix else ''}{key}="), message
    assert "out of range" in message


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
    with pytest.raises(UserError, match="plots=maybe has the wrong type: expected true or false"):
        check_values(RunConfig, {"plots": "maybe"}, "")
    with pytest.raises(UserError, match="tags=hello has the wrong type"):
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
