"""Each model's hyperparameters are declared once (its dataclass fields); its yaml must mirror them."""

from importlib import resources
from pathlib import Path

import pytest
import yaml

from tsad.errors import UserError
from tsad.models.base import MODELS, build_detector, default_value, hyperparameters, model_names

CONF = Path(str(resources.files("tsad.conf"))) / "model"


def test_every_registered_model_has_a_config_and_every_config_a_model():
    assert sorted(p.stem for p in CONF.glob("*.yaml")) == MODELS.names()


@pytest.mark.parametrize("name", MODELS.names())
def test_the_yaml_sets_every_hyperparameter_to_its_declared_default(name):
    config = yaml.safe_load((CONF / f"{name}.yaml").read_text())
    assert config.pop("name") == name
    defaults = {spec.name: default_value(spec) for spec in hyperparameters(MODELS.get(name))}
    assert list(config) == list(defaults), "same keys, in the order the model declares them"
    assert config == defaults


def test_presets_select_models_by_kind():
    assert model_names("all").split(",") == MODELS.names()
    point_level = model_names("point_level").split(",")
    assert "dagmm" not in point_level and "seq2gmm" not in point_level and "lstm_vae" in point_level
    with pytest.raises(UserError, match="tsad_models:nope"):
        model_names("nope")


def test_a_detector_is_built_in_one_step_and_refuses_to_score_before_fit():
    detector = build_detector("zscore", {}, seed=3, normalise="minmax")
    assert detector.seed == 3 and detector.normaliser.kind == "minmax"
    with pytest.raises(UserError, match="zscore is not fitted"):
        detector.score(None)
