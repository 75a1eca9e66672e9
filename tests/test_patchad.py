"""PatchAD: end to end through tsad-run, save/load, patch views and their step alignment, trained heads."""

import numpy as np
import pytest
import torch
from conftest import read_metrics, run_folders, run_tsad

from tsad.errors import UserError
from tsad.models.base import build_detector
from tsad.models.patchad import PatchAD, mean_kl, patch_views, step_discrepancy

SMALL_MODEL = ["model.window=30", "model.patch_sizes=[3,5]", "model.d_model=16", "model.e_layers=2"]


@pytest.mark.parametrize("dataset", [["dataset=synthetic", "dataset.n_train=40", "dataset.n_val=10",
                                      "dataset.n_test=30", "dataset.min_length=40", "dataset.max_length=80"],
                                     ["dataset=synthetic_points", "dataset.max_length=600"]],
                         ids=["series", "points"])
def test_patchad_trains_and_scores_through_tsad_run(tmp_path, dataset):
    run_tsad(["model=patchad", *dataset, *SMALL_MODEL, "trainer=fast", "trainer.max_batches_per_epoch=3",
              "plots=false"], tmp_path)
    (folder,) = run_folders(tmp_path)
    record = read_metrics(folder)
    assert record["status"] == "OK"
    assert np.isfinite(record["headline"]["roc_auc"])


@pytest.mark.parametrize("window,patch_size", [(12, 1), (12, 2), (12, 3), (12, 4), (105, 7), (128, 16), (12, 12)])
def test_patch_views_have_the_right_shapes_and_steps(window, patch_size):
    batch, channels = 2, 3
    steps = torch.arange(window, dtype=torch.float32)
    x = steps[None, :, None].expand(batch, window, channels)
    inter, intra = patch_views(x, patch_size)
    n_patches = window // patch_size
    assert inter.shape == (batch, channels, n_patches, patch_size)
    assert intra.shape == (batch, channels, patch_size, n_patches)
    n, p = torch.meshgrid(torch.arange(n_patches), torch.arange(patch_size), indexing="ij")
    torch.testing.assert_close(inter[0, 0], (n * patch_size + p).float())          # patch n holds steps nP .. nP+P-1
    torch.testing.assert_close(intra[0, 0], (n * patch_size + p).float().T)        # position p holds steps p, P+p, ...


def brute_force_step_kl(inter, intra, window):
    """Upsample both distributions to steps (t // P and t mod P) and compare them step by step."""
    patch_size = intra.shape[1]
    t = torch.arange(window)
    a, b = inter[:, t // patch_size], intra[:, t % patch_size]

    def kl(p, q):
        return (p * ((p + 1e-7).log() - (q + 1e-7).log())).sum(dim=-1)

    return kl(a, b), kl(b, a)


@pytest.mark.parametrize("window,patch_size", [(12, 2), (12, 3), (105, 5), (128, 16)])
def test_step_discrepancy_pairs_patch_and_position_of_each_step(window, patch_size):
    torch.manual_seed(0)
    inter = torch.randn(2, window // patch_size, 6).softmax(dim=-1)
    intra = torch.randn(2, patch_size, 6).softmax(dim=-1)
    forward, backward = brute_force_step_kl(inter, intra, window)
    torch.testing.assert_close(step_discrepancy(inter, intra), forward + backward)
    torch.testing.assert_close(mean_kl(inter, intra), forward.mean())
    torch.testing.assert_close(mean_kl(intra, inter), backward.mean())


@pytest.mark.parametrize("window,patch_sizes", [(105, [3, 5, 7]), (32, [2, 4, 8]), (24, [1, 24])])
def test_module_outputs_per_scale_and_layer(window, patch_sizes):
    module = PatchAD(window=window, patch_sizes=patch_sizes, d_model=8, e_layers=2, dropout=0.0,
                     score_beta=0.5).build_module(n_channels=2)
    out = module(torch.randn(4, window, 2))
    assert len(out["inter"]) == len(out["intra_proj"]) == 2 * len(patch_sizes)
    for k, patch_size in enumerate(np.repeat(patch_sizes, 2)):
        assert out["inter"][k].shape == out["inter_proj"][k].shape == (4, window // patch_size, 8)
        assert out["intra"][k].shape == out["intra_proj"][k].shape == (4, patch_size, 8)
        torch.testing.assert_close(out["inter"][k].sum(dim=-1), torch.ones(4, window // patch_size))
    assert out["reconstruction"].shape == (4, window, 2)
    step, series = module.score({"x": torch.randn(4, window, 2)})
    assert step.shape == (4, window) and series.shape == (4,)


def test_reconstruction_heads_are_trained_by_the_loss():
    torch.manual_seed(0)
    module = PatchAD(window=20, patch_sizes=[4, 5], d_model=8, e_layers=2, dropout=0.0).build_module(n_channels=2)
    module.loss({"x": torch.randn(8, 20, 2)})["loss"].backward()
    for scale in module.scales:
        for head in (scale.rebuild_inter, scale.rebuild_intra):
            assert head[-1].weight.grad is not None and head[-1].weight.grad.abs().sum() > 0
        assert scale.alpha.grad is not None


def test_window_must_be_divisible_by_every_patch_size():
    with pytest.raises(UserError, match="divisible"):
        build_detector("patchad", {"window": 100, "patch_sizes": [3, 5]})


def test_patch_sizes_must_be_positive_and_at_least_one():
    with pytest.raises(UserError, match=r"model.patch_sizes=\[3, 0\] is out of range: allowed an integer >= 1"):
        build_detector("patchad", {"patch_sizes": [3, 0]})
    with pytest.raises(UserError, match=r"model.patch_sizes=\[\] gives no scale"):
        build_detector("patchad", {"patch_sizes": []})
