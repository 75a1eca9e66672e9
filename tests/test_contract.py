"""Every registered detector honours the contract: shapes, direction, save/load."""

from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from tsad.data.series import SeriesSet
from tsad.models.base import MODELS, Detector, build_detector

CONF = Path(str(resources.files("tsad.conf"))) / "model"
QUICK_TRAINER = {"max_epochs": 2, "max_batches_per_epoch": 10, "warmup_epochs": 0, "batch_size": 32, "progress": False}


def model_params(name: str) -> dict:
    params = OmegaConf.to_container(OmegaConf.load(CONF / f"{name}.yaml"), resolve=True)
    params.pop("name")
    return params


def sine_set(rng, n, lengths=(100, 150), shift=0.0) -> SeriesSet:
    values = []
    for _ in range(n):
        t = np.arange(rng.integers(*lengths))
        phase = rng.uniform(0, 2 * np.pi)
        x = np.stack([np.sin(2 * np.pi * t / 20 + phase), np.cos(2 * np.pi * t / 33 + phase)], axis=1)
        x = x + rng.normal(scale=0.05, size=x.shape)
        x[len(t) // 3: 2 * len(t) // 3] += shift
        values.append(x)
    return SeriesSet(values)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return sine_set(rng, 30), sine_set(rng, 8), sine_set(rng, 4), sine_set(rng, 4, shift=8.0)


@pytest.fixture(scope="module", params=MODELS.names())
def fitted(request, data, tmp_path_factory):
    train, val, _, _ = data
    detector = build_detector(request.param, model_params(request.param), trainer=QUICK_TRAINER, seed=0,
                              checkpoint_dir=tmp_path_factory.mktemp("checkpoints"))
    return detector.fit(train, val)


def test_fit_returns_self_and_scores_match_input_shapes(fitted, data):
    _, _, normal, anomalous = data
    both = SeriesSet(normal.values + anomalous.values)
    scores = fitted.score(both)
    assert len(scores.steps) == len(both) and scores.series.shape == (len(both),)
    for steps, series in zip(scores.steps, both.values):
        assert steps.shape == (len(series),)
        assert np.isfinite(steps).all()
    assert np.isfinite(scores.series).all()


def test_higher_means_more_anomalous_on_an_obvious_case(fitted, data):
    if fitted.name == "random":
        pytest.skip("random scores carry no signal by design")
    _, _, normal, anomalous = data
    normal_scores, anomalous_scores = fitted.score(normal).series, fitted.score(anomalous).series
    assert anomalous_scores.min() > normal_scores.max(), f"{fitted.name}: {anomalous_scores} vs {normal_scores}"


def test_save_load_gives_identical_scores(fitted, data, tmp_path):
    _, _, normal, anomalous = data
    fitted.save(tmp_path)
    loaded = Detector.load(tmp_path)
    before, after = fitted.score(anomalous), loaded.score(anomalous)
    np.testing.assert_array_equal(before.series, after.series)
    for a, b in zip(before.steps, after.steps):
        np.testing.assert_array_equal(a, b)


def test_saved_files_hold_no_pickle(fitted, tmp_path):
    """A saved detector's files are JSON, plain NumPy archives and torch weights: none runs code when read."""
    import torch

    fitted.save(tmp_path)
    for path in tmp_path.iterdir():
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                [archive[key] for key in archive.files]
        elif path.suffix == ".pt":
            torch.load(path, weights_only=True)
        else:
            assert path.suffix == ".json", f"{fitted.name} saves {path.name}, in no format known to load safely"


def test_torch_checkpoints_load_with_weights_only(fitted):
    import torch

    checkpoint_dir = fitted.runtime.checkpoint_dir
    if not (Path(checkpoint_dir) / "last.pt").exists():
        pytest.skip("not a torch detector")
    state = torch.load(Path(checkpoint_dir) / "last.pt", weights_only=True)
    assert "module" in state and "optimizer" in state
