"""SD-MAE (tsad/models/sdmae.py): an end-to-end run, save/load, the loss signs and the masking."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest
import torch
from conftest import read_metrics, reload_and_compare, run_folders, run_tsad

from tsad.data.batches import WindowBatches
from tsad.data.series import SeriesSet
from tsad.data.synthetic import SyntheticSettings
from tsad.data.windows import window_starts
from tsad.errors import UserError
from tsad.models.base import build_detector
from tsad.models.sdmae import SDMAE
from tsad.training.trainer import Trainer, TrainerSettings

TINY_TRAINER = {"max_epochs": 1, "max_batches_per_epoch": 2, "batch_size": 16, "warmup_epochs": 0}


def tiny_module(**params):
    """A small SD-MAE module on 2 channels, without dropout so two forward passes agree."""
    params = {"window": 20, "patch_size": 5, "score_steps": 5, "d_model": 16, "n_heads": 2, "ff_size": 32,
              "dropout": 0.0, **params}
    return SDMAE(**params).build_module(n_channels=2)


def windows(n: int = 6, length: int = 20, seed: int = 0) -> torch.Tensor:
    t = torch.arange(length, dtype=torch.float32)
    phase = torch.rand(n, 1, 2, generator=torch.Generator().manual_seed(seed)) * 6
    return torch.sin(t[None, :, None] / 3 + phase)                                   # [n, length, 2]


def loss_at(module, batch: dict, mask_seed: int = 0) -> dict:
    torch.manual_seed(mask_seed)  # same random training mask on every call
    return module.loss(batch)


def test_tsad_run_trains_and_scores_both_levels(tmp_path, tiny_series):
    run_tsad(["model=sdmae", *tiny_series, "dataset.train_labelled_anomalies=0.05"], tmp_path)
    [folder] = run_folders(tmp_path)
    record = read_metrics(folder)
    assert record["status"] == "OK"
    assert record["model"] == "sdmae" and record["epochs_trained"] == 2
    for level in ("series", "point"):
        assert 0.0 <= record["metrics"][level]["roc_auc"] <= 1.0


def test_save_load_gives_identical_scores(tmp_path):
    # The default (patch tokens, sliding scoring) also goes through tests/test_contract.py.
    data = SyntheticSettings(n_train=12, n_val=4, n_test=6, min_length=30, max_length=60,
                             train_labelled_anomalies=0.2).build()
    detector = build_detector("sdmae", {"window": 20, "tokens": "step", "score_steps": 5, "d_model": 16, "n_heads": 2,
                                        "ff_size": 32, "scoring": "last_steps", "score_stride": 1},
                              trainer=TINY_TRAINER)
    detector.fit(data.train, data.val)
    reload_and_compare(detector, data.test, tmp_path)


def test_unsupervised_batch_has_no_anomaly_term():
    module = tiny_module().train()
    batch = {"x": windows(), "label": torch.tensor([-1, 0, -1, 0, -1, -1])}
    losses = loss_at(module, batch)
    assert losses["anomaly_hinge"].item() == 0.0
    expected = losses["reconstruction"] + module.lambda_disc * losses["discrepancy_normal"]
    assert losses["loss"].item() == pytest.approx(expected.item(), rel=1e-6)


def test_anomaly_term_pushes_teacher_and_student_apart():
    module = tiny_module(margin=50.0).train()
    batch = {"x": windows(), "label": torch.tensor([0, 0, 0, 0, 1, 1])}
    optimizer = torch.optim.SGD(module.parameters(), lr=0.05)
    before = loss_at(module, batch)
    assert before["anomaly_hinge"].item() > 0
    # The hinge is margin - d(anomalies) below the margin: a step down its gradient must raise d.
    optimizer.zero_grad()
    before["anomaly_hinge"].backward()
    optimizer.step()
    after = loss_at(module, batch)
    assert after["anomaly_hinge"].item() < before["anomaly_hinge"].item()
    # A labelled anomaly adds that push: the same windows labelled normal carry none.
    unlabelled = loss_at(module, {**batch, "label": torch.full((6,), -1)})
    assert unlabelled["anomaly_hinge"].item() == 0.0


def test_normal_term_pulls_student_to_teacher_without_moving_the_teacher():
    module = tiny_module().train()
    batch = {"x": windows(), "label": torch.zeros(6, dtype=torch.long)}
    losses = loss_at(module, batch)
    losses["discrepancy_normal"].backward()
    teacher_grads = [p.grad for p in module.teacher.parameters()]
    assert all(g is None or torch.count_nonzero(g) == 0 for g in teacher_grads)
    assert any(p.grad is not None and torch.count_nonzero(p.grad) > 0 for p in module.student.parameters())
    optimizer = torch.optim.SGD(module.parameters(), lr=0.05)
    optimizer.step()
    assert loss_at(module, batch)["discrepancy_normal"].item() < losses["discrepancy_normal"].item()


# Parameters the student's output depends on: the discrepancy terms may train these and nothing else.
STUDENT_PATH = ("embed.", "mask_token", "encoder.", "student.", "student_head.")


@pytest.mark.parametrize("term", ["discrepancy_normal", "anomaly_hinge"])
def test_discrepancy_terms_never_reach_the_teacher_decoder_or_its_head(term):
    module = tiny_module(margin=50.0).train()
    batch = {"x": windows(), "label": torch.tensor([0, 0, 0, 0, 1, 1])}
    loss_at(module, batch)[term].backward()
    moved = {name for name, p in module.named_parameters() if p.grad is not None and torch.count_nonzero(p.grad) > 0}
    assert sorted(name for name in moved if not name.startswith(STUDENT_PATH)) == []
    assert any(name.startswith("teacher.") for name, _ in module.named_parameters())
    for prefix in STUDENT_PATH:
        assert any(name.startswith(prefix) for name in moved), f"{term} does not train {prefix}"


def test_weights_saved_with_one_shared_head_load_into_both_heads():
    old = tiny_module().state_dict()
    shared = {"output.weight": old.pop("teacher_head.weight"), "output.bias": old.pop("teacher_head.bias")}
    old.pop("student_head.weight"), old.pop("student_head.bias")
    module = tiny_module()
    module.load_state_dict({**old, **shared})
    for name in ("weight", "bias"):
        torch.testing.assert_close(module.teacher_head.state_dict()[name], shared[f"output.{name}"])
        torch.testing.assert_close(module.student_head.state_dict()[name], shared[f"output.{name}"])


def test_training_windows_carry_the_step_labels_of_labelled_series():
    data = SyntheticSettings(n_train=6, n_val=2, n_test=2, min_length=30, max_length=40,
                             train_labelled_anomalies=0.5).build()
    detector = SDMAE(window=20, patch_size=5, score_steps=5, train_stride=5)
    batches = list(detector.batches(data.train, batch_size=8, shuffle=False))
    step_label = torch.cat([b["step_label"] for b in batches])
    x, label = torch.cat([b["x"] for b in batches]), torch.cat([b["label"] for b in batches])
    row = 0
    for values, steps, seen in zip(data.train.values, data.train.step_labels, data.train.labelled):
        for start in window_starts(len(values), 20, 5):
            torch.testing.assert_close(x[row], torch.from_numpy(values[start:start + 20]))
            expected = torch.from_numpy(steps[start:start + 20]) if seen else torch.full((20,), -1)
            assert torch.equal(step_label[row].long(), expected)
            row += 1
    assert row == len(x)
    # Windows of a labelled anomalous series without an anomalous step: the series label alone would count them.
    assert ((label == 1) & (step_label != 1).all(dim=1)).any()
    # Other models' batches stay as they were, and without labelled series SD-MAE's do too.
    assert "step_label" not in next(iter(WindowBatches(data.train, 20, 5, 8, False, 0)))
    assert "step_label" not in next(iter(detector.batches(data.val, batch_size=8, shuffle=False)))


def test_anomaly_term_counts_only_masked_anomalous_steps():
    module = tiny_module(margin=50.0).train()    # 4 patches of 5 steps, 2 of them masked
    x = windows()
    torch.manual_seed(0)
    hidden = module.random_mask(6, torch.device("cpu"))                             # the mask loss_at(..., 0) draws
    masked = module.step_mask(hidden)
    label = torch.tensor([0, 0, 0, -1, 1, 1])
    step_label = torch.zeros(6, 20, dtype=torch.int8)
    step_label[3] = -1
    step_label[4, (~masked[4]).nonzero()[0]] = 1      # anomaly only in the visible context: no term at all
    anomalous_step = masked[5].nonzero()[0].item()    # anomaly in one step of a masked patch
    step_label[5, anomalous_step] = 1
    losses = loss_at(module, {"x": x, "label": label, "step_label": step_label})
    with torch.no_grad():
        teacher, student = module(x, hidden)
    per_token = ((teacher - student) ** 2).reshape(6, 4, -1).mean(dim=2)            # [6, 4]
    per_window = (per_token * hidden).sum(dim=1) / hidden.sum(dim=1)
    # The hinge sees window 5's anomalous patch alone; windows 0-3 are the normal ones (window 4 is not normal,
    # and its masked patches hold no anomaly for the hinge).
    assert losses["anomaly_hinge"].item() == pytest.approx(50.0 - per_token[5, anomalous_step // 5].item(), rel=1e-6)
    assert losses["discrepancy_normal"].item() == pytest.approx(per_window[:4].mean().item(), rel=1e-6)
    # The same windows with series labels only: window 4 counts as an anomaly again, over all its masked patches.
    series_only = loss_at(module, {"x": x, "label": label})
    expected = torch.relu(50.0 - per_window[4:]).mean()
    assert series_only["anomaly_hinge"].item() == pytest.approx(expected.item(), rel=1e-6)


def test_anomaly_warmup_ramps_over_the_configured_fraction():
    module = tiny_module(anomaly_warmup_fraction=0.2)
    module.on_fit_start(Trainer(TrainerSettings(max_epochs=10)), None)
    module.train()
    weights = []
    for epoch in range(4):
        module.on_epoch_start(epoch)
        weights.append(module.anomaly_weight())
    assert weights == [0.0, 0.5, 1.0, 1.0]
    module.on_epoch_start(0)
    assert module.eval().anomaly_weight() == 1.0


def test_labelled_anomalies_stay_out_of_the_reconstruction_term():
    module = tiny_module().train()
    x = windows()
    labels = torch.tensor([0, -1, 0, -1, 1, 1])
    before = loss_at(module, {"x": x, "label": labels})
    changed = x.clone()
    changed[4:] *= 10.0
    after = loss_at(module, {"x": changed, "label": labels})
    assert after["reconstruction"].item() == pytest.approx(before["reconstruction"].item(), rel=1e-6)
    assert after["anomaly_hinge"].item() != pytest.approx(before["anomaly_hinge"].item(), rel=1e-6)


@pytest.mark.parametrize("tokens, score_steps", [("patch", 5), ("patch", 10), ("step", 7)])
def test_last_steps_scoring_masks_exactly_the_configured_steps(tokens, score_steps):
    module = tiny_module(scoring="last_steps", tokens=tokens, score_steps=score_steps, score_reconstruction=0.0).eval()
    hidden = module.step_mask(module.block_masks())
    assert hidden.shape == (1, 20)
    assert hidden[0].nonzero().ravel().tolist() == list(range(20 - score_steps, 20))
    x = windows()
    with torch.no_grad():
        step, series = module.score({"x": x})
        assert torch.equal(~torch.isnan(step), hidden.expand_as(step))
        # The model never sees the masked steps: changing them leaves the score as it is ...
        changed = x.clone()
        changed[:, 20 - score_steps:] += 5.0
        torch.testing.assert_close(module.score({"x": changed})[1], series, rtol=0, atol=0)
        # ... while changing the step just before them does not.
        changed = x.clone()
        changed[:, 20 - score_steps - 1] += 5.0
        assert not torch.allclose(module.score({"x": changed})[1], series)
        # With the reconstruction error in the score, the masked values count through that error alone.
        module.score_reconstruction = 1.0
        changed = x.clone()
        changed[:, 20 - score_steps:] += 5.0
        assert (module.score({"x": changed})[1] > module.score({"x": x})[1]).all()


def test_sliding_scoring_scores_every_step_once_per_block():
    module = tiny_module(scoring="sliding", score_steps=10, window=30, patch_size=5).eval()
    hidden = module.step_mask(module.block_masks())
    assert hidden.shape == (3, 30)
    assert hidden.sum(dim=0).tolist() == [1] * 30
    with torch.no_grad():
        step, _ = module.score({"x": windows(length=30)})
        assert torch.isfinite(step).all()
        assert module.reconstruct(windows(length=30)).shape == (6, 30, 2)


def test_training_mask_hides_the_configured_ratio():
    module = tiny_module(window=40, patch_size=4, score_steps=4, mask_ratio=0.6).train()
    hidden = module.random_mask(8, torch.device("cpu"))
    assert hidden.shape == (8, 10)
    assert hidden.sum(dim=1).tolist() == [6] * 8
    assert len({tuple(row) for row in hidden.tolist()}) > 1
    module.eval()
    assert torch.equal(module.random_mask(8, torch.device("cpu")), module.random_mask(8, torch.device("cpu")))


@pytest.mark.parametrize("params, message", [
    ({"window": 25, "patch_size": 10}, "multiple of model.patch_size"),
    ({"score_steps": 15}, "score_steps"),
    ({"scoring": "middle"}, "model.scoring"),
    ({"tokens": "word"}, "model.tokens"),
    ({"mask_ratio": 0.0}, "mask_ratio"),
])
def test_bad_parameters_fail_in_one_line(params, message):
    with pytest.raises(UserError, match=message) as caught:
        build_detector("sdmae", params)
    assert "\n" not in str(caught.value)


def test_yaml_defaults_match_the_constructor():
    import yaml

    config = yaml.safe_load(resources.files("tsad.conf").joinpath("model", "sdmae.yaml").read_text())
    assert config.pop("name") == "sdmae"
    detector = SDMAE(**config)
    assert detector.get_params() == SDMAE().get_params()


def test_causal_scoring_takes_one_pass_per_window_and_gives_the_sliding_scores():
    detector = build_detector("sdmae", {"window": 20, "patch_size": 5, "score_steps": 5, "d_model": 16, "n_heads": 2,
                                        "ff_size": 32, "score_stride": 1}, trainer={**TINY_TRAINER, "progress": False},
                              causal=True)
    series = np.sin(np.arange(80) / 3)[:, None] + np.random.default_rng(0).normal(scale=0.1, size=(80, 1))
    detector.fit(SeriesSet([series.astype(np.float32)]))
    passes = []
    forward = detector.module.forward
    detector.module.forward = lambda x, hidden: passes.append(len(x)) or forward(x, hidden)
    causal = detector.score(SeriesSet([series.astype(np.float32)])).steps[0]
    detector.module.forward = forward
    assert sum(passes) == 80 - 19, "one masked pass per scored window"
    assert detector.module.scoring == "sliding"
    normalised = detector.normaliser.transform([series.astype(np.float32)])[0]
    windows = np.lib.stride_tricks.sliding_window_view(normalised, 20, axis=0).transpose(0, 2, 1)
    windows = torch.from_numpy(windows.copy())
    detector.module.eval()
    with torch.no_grad():
        sliding = detector.module.score({"x": windows})[0][:, -1].numpy()
    assert np.isnan(causal[:19]).all()
    np.testing.assert_allclose(causal[19:], sliding, rtol=1e-5, atol=1e-6)
