"""PatchTrAD (tsad/models/patchtrad.py): an end-to-end run, save/load, and last-patch scoring."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import run_model_on_tiny_series

from tsad.data.synthetic import SyntheticSettings
from tsad.errors import UserError
from tsad.models.base import build_detector
from tsad.models.patchtrad import PatchTrAD

TINY_TRAINER = {"max_epochs": 1, "max_batches_per_epoch": 3, "batch_size": 16, "warmup_epochs": 0}
TINY_MODEL = {"window": 16, "patch_len": 4, "patch_stride": 3, "d_model": 16, "n_heads": 2, "n_layers": 2, "d_ff": 32}


def test_tsad_run_trains_and_scores(tmp_path):
    run_model_on_tiny_series("patchtrad", tmp_path, "model.train_stride=4")


@pytest.fixture(scope="module")
def fitted():
    data = SyntheticSettings(n_train=12, n_val=4, n_test=5, n_channels=2, min_length=30, max_length=50).build()
    detector = build_detector("patchtrad", TINY_MODEL, trainer=TINY_TRAINER)
    return detector.fit(data.train, data.val), data


def test_patches_follow_the_published_layout():
    # ws + 1 = 100 steps, patch 8, stride 6: 17 patches; the last holds x_{t-3..t} and 4 copies of x_t.
    module = PatchTrAD(window=100, patch_len=8, patch_stride=6).build_module(n_channels=1)
    x = torch.arange(100, dtype=torch.float32).view(1, 100, 1)
    patches = module.patches(x)
    assert patches.shape == (1, 1, 17, 8) and module.n_patches == 17
    assert patches[0, 0, -1].tolist() == [96, 97, 98, 99, 99, 99, 99, 99]


def test_step_score_is_the_last_patch_error_of_the_window_ending_there(fitted):
    detector, data = fitted
    module = detector.module.eval()
    series = detector.normaliser.transform(data.test.values)[0]
    scores = detector.score(data.test).steps[0]
    with torch.no_grad():
        windows = torch.from_numpy(np.stack([series[t - 15: t + 1] for t in range(15, len(series))]))
        step, _ = module.score({"x": windows})
        reconstruction, patches = module(windows)
    # Only the last step of a window is scored, with the mean squared error of the last patch.
    assert torch.isnan(step[:, :-1]).all()
    expected = ((reconstruction[:, :, -1] - patches[:, :, -1]) ** 2).mean(dim=(1, 2))
    torch.testing.assert_close(step[:, -1], expected)
    np.testing.assert_allclose(scores[15:], expected.double().numpy(), rtol=1e-5)
    # Warm-up steps (no complete window) take the first scored value.
    np.testing.assert_allclose(scores[:15], scores[15])


def test_bad_patch_geometry_is_a_user_error():
    with pytest.raises(UserError, match="patch_stride"):
        PatchTrAD(window=16, patch_len=20)
    with pytest.raises(UserError, match="n_heads"):
        PatchTrAD(d_model=30, n_heads=4)
