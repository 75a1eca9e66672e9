"""Each model's hyperparameters are declared once (its dataclass fields, with their ranges: tests/test_settings.py
tries every one); its yaml must mirror them."""

from importlib import resources
from pathlib import Path

import pytest
import yaml

from tsad.errors import UserError
from tsad.models.base import MODELS, build_detector, model_names
from tsad.settings.fields import config_fields, default_of

CONF = Path(str(resources.files("tsad.conf")))


def test_every_registered_model_has_a_config_and_every_config_a_model():
    assert sorted(p.stem for p in (CONF / "model").glob("*.yaml")) == MODELS.names()


@pytest.mark.parametrize("name", MODELS.names())
def test_the_yaml_sets_every_hyperparameter_to_its_declared_default(name):
    config = yaml.safe_load((CONF / "model" / f"{name}.yaml").read_text())
    assert config.pop("name") == name
    defaults = {spec.name: default_of(spec) for spec in config_fields(MODELS.get(name))}
    assert list(config) == list(defaults), "same keys, in the order the model declares them"
    assert config == defaults


def preset_model_sections() -> list:
    """(model name, model values) of every preset that sets model values."""
    sections = []
    for path in sorted((CONF / "experiment").glob("*.yaml")):
        preset = yaml.safe_load(path.read_text())
        overrides = [entry for entry in preset.get("defaults", []) if isinstance(entry, dict)]
        name = next((entry["override /model"] for entry in overrides if "override /model" in entry), None)
        if preset.get("model"):
            sections.append(pytest.param(name, preset["model"], id=path.stem))
    return sections


@pytest.mark.parametrize("name, values", preset_model_sections())
def test_every_preset_sets_model_values_inside_their_ranges(name, values):
    build_detector(name, values, causal=True)   # causal: the NAB preset's growing memory needs online scoring


def test_presets_select_models_by_kind():
    assert model_names("all").split(",") == MODELS.names()
    point_level = model_names("point_level").split(",")
    assert "dagmm" not in point_level and "seq2gmm" not in point_level and "lstm_vae" in point_level
    with pytest.raises(UserError, match="tsad_models:nope"):
        model_names("nope")


def test_a_detector_is_built_in_one_step_and_refuses_to_score_or_save_before_fit(tmp_path):
    detector = build_detector("zscore", {}, seed=3, normalise="minmax")
    assert detector.seed == 3 and detector.normaliser.kind == "minmax"
    with pytest.raises(UserError, match="zscore is not fitted, so there is nothing to score"):
        detector.score(None)
    with pytest.raises(UserError, match="zscore is not fitted, so there is nothing to save"):
        detector.save(tmp_path / "detector")
    assert not (tmp_path / "detector").exists()


def test_a_dropout_of_one_or_more_is_refused_before_torch_sees_it_however_the_detector_is_built():
    with pytest.raises(UserError, match=r"model.dropout=2 is out of range: allowed a number >= 0 and < 1"):
        build_detector("lstm_vae", {"dropout": 2})
    with pytest.raises(UserError, match=r"model.dropout=1.0 is out of range"):
        MODELS.get("lstm_vae")(dropout=1.0)


def test_pca_components_from_one_up_must_be_a_whole_number():
    assert build_detector("pca", {"n_components": 5}).n_components == 5.0
    with pytest.raises(UserError, match="model.n_components=2.5 is neither a fraction"):
        build_detector("pca", {"n_components": 2.5})
