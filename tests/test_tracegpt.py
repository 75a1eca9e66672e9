"""TRACE-GPT (tsad/models/tracegpt.py): an end-to-end run, save/load, the tokeniser and exact causality."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import run_model_on_tiny_series

from tsad.data.series import SeriesSet
from tsad.data.synthetic import SyntheticSettings
from tsad.errors import UserError
from tsad.models.base import Detector, build_detector

TINY_TRAINER = {"max_epochs": 1, "max_batches_per_epoch": 3, "batch_size": 16, "warmup_epochs": 0}
TINY_MODEL = {"window": 24, "train_stride": 4, "score_stride": 5, "n_bins": 32, "d_model": 16, "n_conv_blocks": 2,
              "n_layers": 2, "n_heads": 2}


def test_tsad_run_trains_and_scores(tmp_path):
    run_model_on_tiny_series("tracegpt", tmp_path)


@pytest.fixture(scope="module", params=[False, True], ids=["joint", "channel_independent"])
def fitted(request):
    data = SyntheticSettings(n_train=12, n_val=4, n_test=4, n_channels=2, min_length=30, max_length=60).build()
    detector = build_detector("tracegpt", {**TINY_MODEL, "channel_independent": request.param}, trainer=TINY_TRAINER)
    return detector.fit(data.train, data.val), data


def test_save_load_gives_identical_scores(fitted, tmp_path):
    detector, data = fitted
    before = detector.score(data.test)
    detector.save(tmp_path)
    loaded = Detector.load(tmp_path)
    torch.testing.assert_close(loaded.module.edges, detector.module.edges, rtol=0, atol=0)
    after = loaded.score(data.test)
    np.testing.assert_array_equal(before.series, after.series)
    for a, b in zip(before.steps, after.steps):
        assert np.isfinite(a).all()
        np.testing.assert_array_equal(a, b)


def test_bin_edges_are_fitted_on_train(fitted):
    detector, data = fitted
    module = detector.module
    values = np.concatenate(detector.normaliser.transform(data.train.values))
    median = np.median(values, axis=0)
    iqr = np.subtract(*np.percentile(values, [75, 25], axis=0))
    # Windows overlap, so the fitted statistics are close to (not equal to) the series' own.
    np.testing.assert_allclose(module.center.numpy(), median, atol=0.15)
    np.testing.assert_allclose(module.scale.numpy(), iqr, rtol=0.2)
    edges = module.edges.numpy()
    assert edges.shape == (2, 31) and (np.diff(edges, axis=1) > 0).all()
    np.testing.assert_allclose(edges[:, [0, -1]], module.center.numpy()[:, None] + module.scale.numpy()[:, None]
                               * np.array([-6 + 12 / 32, 6 - 12 / 32]), rtol=1e-5)


def test_a_change_at_step_t_never_changes_scores_before_t(fitted):
    detector, data = fitted
    series = data.test.values[1]                                   # >= 30 steps: several overlapping windows
    base = detector.score(SeriesSet([series])).steps[0]
    for t in (0, 3, 11, 23, 24, len(series) - 6, len(series) - 1):
        changed = series.copy()
        changed[t] += 4.0
        scores = detector.score(SeriesSet([changed])).steps[0]
        np.testing.assert_array_equal(scores[:t], base[:t], err_msg=f"a change at step {t} moved an earlier score")
        assert scores[t] != base[t]


def test_the_prediction_of_step_t_does_not_see_step_t(fitted):
    detector, data = fitted
    series = data.test.values[1]
    module = detector.module
    base = detector.score(SeriesSet([series])).steps[0]
    t = 20
    changed = series.copy()
    changed[t] += 1e-3 * detector.normaliser.scale                 # moves the value, not its bin
    before, after = (module.tokenise(torch.from_numpy(detector.normaliser.transform([s])[0][None]))[1][0, :, t]
                     for s in (series, changed))
    assert torch.equal(before, after)
    scores = detector.score(SeriesSet([changed])).steps[0]
    np.testing.assert_array_equal(scores[: t + 1], base[: t + 1])
    assert not np.array_equal(scores[t + 1:], base[t + 1:])


def test_bad_sizes_are_user_errors():
    with pytest.raises(UserError, match="n_heads"):
        build_detector("tracegpt", {"d_model": 30, "n_heads": 4})
    with pytest.raises(UserError, match="n_bins"):
        build_detector("tracegpt", {"n_bins": 1})


def test_excess_nll_subtracts_the_entropy_of_the_prediction():
    detector = build_detector("tracegpt", {**TINY_MODEL, "step_score": "excess_nll"})
    module = detector.build_module(n_channels=2)
    x = torch.randn(3, TINY_MODEL["window"], 2)
    # A head that predicts every bin equally: the observed bin costs log(n_bins), exactly what was expected.
    torch.nn.init.zeros_(module.head.weight)
    torch.nn.init.zeros_(module.head.bias)
    module.eval()
    steps, series = module.score({"x": x})
    torch.testing.assert_close(steps, torch.zeros(3, TINY_MODEL["window"]), atol=1e-5, rtol=0)
    torch.testing.assert_close(module.step_nll(x), torch.full((3, TINY_MODEL["window"]),
                                                              2 * np.log(TINY_MODEL["n_bins"])))
    # A trained-like head: excess = NLL + sum p log p, per channel.
    torch.nn.init.normal_(module.head.weight)
    nll, excess = module.step_nll(x), module.score({"x": x})[0]
    assert not torch.allclose(nll, excess)
    assert (excess <= nll + 1e-5).all()


def test_step_score_is_checked():
    with pytest.raises(UserError, match="step_score"):
        build_detector("tracegpt", {"step_score": "entropy"})
