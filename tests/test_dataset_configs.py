"""Every dataset family is one typed settings class: its yaml mirrors it and every option composes into checked
settings (its keys' ranges: tests/test_settings.py)."""

from dataclasses import fields
from pathlib import Path

import pytest
from omegaconf import OmegaConf

import tsad.conf
from tsad.data.registry import DATASETS, dataset_settings
from tsad.errors import UserError

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


def test_an_unknown_family_or_key_names_what_is_known():
    with pytest.raises(UserError, match="unknown dataset.family 'synthetics'; known: csv, ecg5000, nab, "):
        dataset_settings({"family": "synthetics"})
    with pytest.raises(UserError, match="unknown key 'dataset.n_tests'; did you mean dataset.n_test?"):
        dataset_settings({"family": "synthetic", "n_tests": 3})
