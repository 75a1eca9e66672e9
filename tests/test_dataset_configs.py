"""Every dataset family is one typed settings class: its yaml mirrors it, every numeric key declares a range, and
a value outside that range fails in one line naming the key, before any data is read."""

import math
import typing
from dataclasses import fields
from pathlib import Path

import pytest
from omegaconf import OmegaConf

import tsad.conf
from tsad.data.registry import DATASETS, dataset_settings
from tsad.errors import UserError
from tsad.settings.fields import admits_number, numeric_fields_without_range

DATASET_CONF = Path(tsad.conf.__file__).parent / "dataset"
FAMILIES = dict(DATASETS.items())
# Keys a family's yaml leaves at the dataclass default: naming `protocol: offline` in every offline yaml would
# change every run's config hash (sweep folder names, metrics.json) for no change in what runs compute.
LEFT_AT_DEFAULT = {"protocol"}


def keys(cls) -> set[str]:
    return {spec.name for spec in fields(cls)}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_the_yaml_of_each_family_mirrors_its_settings_class(family):
    cls = FAMILIES[family]
    raw = OmegaConf.load(DATASET_CONF / f"{family}.yaml")
    assert set(raw) - keys(cls) == set(), "keys the settings class lacks"
    assert keys(cls) - set(raw) <= LEFT_AT_DEFAULT, "keys the yaml lacks"
    defaults = cls()
    assert defaults.family == family
    for key in raw:
        if OmegaConf.is_interpolation(raw, key):  # seed: ${seed}, min_length: ${oc.select:model.window,1}
            continue
        value = OmegaConf.to_container(raw, resolve=False)[key]
        assert getattr(cls.parse({key: value}, "dataset"), key) == getattr(defaults, key), key


@pytest.mark.parametrize("option", sorted(path.stem for path in DATASET_CONF.glob("*.yaml")))
def test_every_dataset_option_composes_into_checked_settings(option, tmp_path):
    from hydra import compose, initialize_config_module

    overrides = [f"dataset={option}", f"dataset.path={tmp_path}"] if option == "csv" else [f"dataset={option}"]
    with initialize_config_module("tsad.conf", version_base="1.3"):
        config = compose("config", overrides=overrides)
    mapping = OmegaConf.to_container(config.dataset, resolve=True)
    assert dataset_settings(mapping).name == option


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_numeric_key_declares_its_range(family):
    assert numeric_fields_without_range(FAMILIES[family]) == []


def numeric_kinds(annotation) -> set[type]:
    """int and float, as far as `annotation` admits them (inside unions and tuples too)."""
    if annotation in (int, float):
        return {annotation}
    return {kind for argument in typing.get_args(annotation) if argument is not Ellipsis
            for kind in numeric_kinds(argument)}


def outside(spec, annotation) -> list:
    """Values just outside the key's declared range, NaN where it admits floats; tuples get one per element."""
    allowed = spec.metadata["range"]
    kinds = numeric_kinds(annotation)
    integer = float not in kinds
    values = []
    if allowed.at_least is not None:
        values.append(allowed.at_least - 1 if integer else math.nextafter(allowed.at_least, -math.inf))
    if allowed.above is not None:
        values.append(allowed.above)
    if allowed.at_most is not None:
        values.append(allowed.at_most + 1 if integer else math.nextafter(allowed.at_most, math.inf))
    if allowed.below is not None:
        values.append(allowed.below)
    values.append(math.nan)  # a NaN is refused by an integer key's type and by a float key's range
    tuples = [a for a in (annotation, *typing.get_args(annotation)) if typing.get_origin(a) is tuple]
    arity = len(typing.get_args(tuples[0])) if tuples else 0
    return [[value] * arity if arity else value for value in values]


def out_of_range_cases() -> list:
    cases = []
    for family, cls in sorted(FAMILIES.items()):
        hints = typing.get_type_hints(cls)
        for spec in fields(cls):
            if admits_number(hints[spec.name]) and "range" in spec.metadata:
                cases += [pytest.param(family, spec.name, value, id=f"{family}.{spec.name}={value}".replace(" ", ""))
                          for value in outside(spec, hints[spec.name])]
    return cases


@pytest.mark.parametrize("family, key, value", out_of_range_cases())
def test_a_value_outside_a_keys_range_fails_in_one_line_naming_the_key(family, key, value):
    with pytest.raises(UserError) as error:
        dataset_settings({"family": family, key: value})
    message = str(error.value)
    assert "\n" not in message and f"dataset.{key}" in message, message


def test_an_unknown_family_or_key_names_what_is_known():
    with pytest.raises(UserError, match="unknown dataset.family 'synthetics'; known: csv, ecg5000, nab, "):
        dataset_settings({"family": "synthetics"})
    with pytest.raises(UserError, match="unknown key 'dataset.n_tests'; did you mean dataset.n_test?"):
        dataset_settings({"family": "synthetic", "n_tests": 3})
