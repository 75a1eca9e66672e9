"""ProDiffAD (tsad/models/prodiffad.py): an end-to-end run, save/load, the noise schedule and distillation."""

from __future__ import annotations

import csv
from importlib import resources

import numpy as np
import pytest
import torch
import yaml
from conftest import run_model_on_tiny_series

from tsad.data.synthetic import SyntheticSettings
from tsad.errors import UserError
from tsad.models.base import Detector, build_detector
from tsad.models.prodiffad import ProDiffAD
from tsad.training.trainer import Trainer, TrainerSettings

TINY_TRAINER = {"max_epochs": 1, "max_batches_per_epoch": 3, "batch_size": 16, "warmup_epochs": 0}
# 8 teacher DDIM steps from K = 16, two distillation rounds: 8 -> 4 -> 2 steps.
TINY_MODEL = {"window": 16, "train_stride": 4, "score_stride": 4, "dim": 8, "depth": 2, "noise_steps": 40,
              "score_noise_step": 16, "sampler_steps": 8, "distill_rounds": 2, "distill_epochs": 1}


def test_tsad_run_trains_teacher_then_distils(tmp_path):
    folder, _ = run_model_on_tiny_series("prodiffad", tmp_path, "model.distill_epochs=1")
    with open(folder / "history.csv") as handle:
        stages = [row["stage"] for row in csv.DictReader(handle)]
    assert stages == ["teacher", "teacher", "distill_1"]


@pytest.fixture(scope="module")
def fitted():
    data = SyntheticSettings(n_train=12, n_val=4, n_test=4, n_channels=2, min_length=30, max_length=50).build()
    detector = build_detector("prodiffad", TINY_MODEL, trainer=TINY_TRAINER)
    return detector.fit(data.train, data.val), data


def test_default_schedule_spans_noise_steps_and_noises_visibly():
    params = yaml.safe_load(resources.files("tsad.conf").joinpath("model", "prodiffad.yaml").read_text())
    params.pop("name")
    module = ProDiffAD(**params).build_module(n_channels=1)
    betas = np.linspace(params["beta_start"], params["beta_end"], params["noise_steps"])
    expected = np.concatenate([[1.0], np.cumprod(1 - betas)])
    np.testing.assert_allclose(module.alpha_bar.numpy(), expected, rtol=1e-6)
    # The released code noises to K = 5 of a 3000-step schedule (std 0.026); the default here is 0.3-0.5.
    assert 0.3 <= module.noise_std(params["score_noise_step"]) <= 0.5
    assert module.noise_std(params["noise_steps"]) > 0.75
    assert module.current_sampler_steps() == params["sampler_steps"]


def count_denoiser_calls(module, x: torch.Tensor) -> int:
    calls = []
    handle = module.denoiser.register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad():
        module.score({"x": x})
    handle.remove()
    return len(calls)


def test_distillation_halves_the_sampler_each_round(fitted, tmp_path):
    detector, data = fitted
    assert [h["stage"] for h in detector.history] == ["teacher", "distill_1", "distill_2"]
    module = detector.module.eval()
    x = torch.randn(3, 16, 2)
    assert int(module.distilled_rounds) == 2 and count_denoiser_calls(module, x) == 8 // 4
    # The frozen teacher (the distill_1 model) is not part of the saved state and the loaded
    # model samples with the distilled step count.
    teacher = module.frozen["teacher"]
    assert not any(p.requires_grad for p in teacher.parameters())
    assert not any(key.startswith("frozen") for key in module.state_dict())
    assert any(not torch.equal(a, b) for a, b in zip(teacher.parameters(), module.denoiser.parameters()))
    detector.save(tmp_path)
    assert count_denoiser_calls(Detector.load(tmp_path).module.eval(), x) == 2


def test_rounds_that_do_not_run_do_not_count():
    data = SyntheticSettings(n_train=6, n_val=2, n_test=2, n_channels=2, min_length=30, max_length=40).build()
    detector = build_detector("prodiffad", {**TINY_MODEL, "distill_epochs": 0}, trainer=TINY_TRAINER)
    detector.fit(data.train, data.val)
    assert int(detector.module.distilled_rounds) == 0
    assert count_denoiser_calls(detector.module.eval(), torch.randn(2, 16, 2)) == 8


@pytest.mark.parametrize("max_epochs, expected", [(2, 2), (30, 5), (None, 5)])
def test_distillation_rounds_fit_the_trainer_epoch_budget(max_epochs, expected):
    module = build_detector("prodiffad", {}).build_module(1)
    module.on_fit_start(Trainer(TrainerSettings(max_epochs=max_epochs)), batches=[])
    assert module.stage_epochs == {"distill_1": expected}


def test_one_student_step_with_the_target_lands_on_two_teacher_steps():
    module = ProDiffAD(**TINY_MODEL).build_module(n_channels=2).eval()
    module.stage = "distill_1"
    module.start_distillation_round()
    teacher = module.frozen["teacher"]
    z = torch.randn(4, 2, 16, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([4, 8, 12, 16])
    for t_next in (t - 4, torch.zeros_like(t)):
        t_mid = (t + t_next) // 2
        with torch.no_grad():
            target = module.distillation_target(z, t, t_mid, t_next)
            two_teacher_steps = module.ddim_step(teacher, module.ddim_step(teacher, z, t, t_mid), t_mid, t_next)
            one_student_step = module.ddim_step(lambda *_, target=target: target, z, t, t_next)
        torch.testing.assert_close(one_student_step, two_teacher_steps, rtol=1e-4, atol=1e-4)


def test_inconsistent_step_counts_are_user_errors():
    with pytest.raises(UserError, match="sampler_steps"):
        ProDiffAD(score_noise_step=40, sampler_steps=12)
    with pytest.raises(UserError, match="sampler_steps"):
        ProDiffAD(score_noise_step=40, sampler_steps=10, distill_rounds=2)
    with pytest.raises(UserError, match="window"):
        ProDiffAD(window=20, depth=3)
