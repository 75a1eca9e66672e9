"""Resuming from a checkpoint ends bit for bit as the uninterrupted run (on CPU); bad checkpoints fail in one line."""

import numpy as np
import pytest
import torch
from torch import nn

from tsad.data.batches import SeriesBatches, WindowBatches
from tsad.data.series import SeriesSet
from tsad.errors import UserError
from tsad.models.base import build_detector
from tsad.runtime import seed_everything
from tsad.training.trainer import Trainer, TrainerSettings

EPOCHS, INTERRUPTED_AFTER = 6, 3
QUIET = {"progress": False, "batch_size": 8, "patience": 10}


def trainer_settings(**settings) -> TrainerSettings:
    return TrainerSettings.parse({**QUIET, **settings}, "trainer")


def small_data(n: int, seed: int) -> SeriesSet:
    rng = np.random.default_rng(seed)
    t = np.arange(48)
    return SeriesSet([np.stack([np.sin(t / 4 + p), np.cos(t / 7 + p)], axis=1) + rng.normal(scale=0.1, size=(48, 2))
                      for p in rng.uniform(0, 6, size=n)])


def interrupt_after(epochs: int):
    """An epoch callback that stops training as Ctrl-C (or SIGTERM in a job) would, after `epochs` epochs."""
    def callback(history):
        if len(history) == epochs:
            raise KeyboardInterrupt
    return callback


def fit_lstm_vae(checkpoint_dir, callbacks=(), **trainer):
    detector = build_detector("lstm_vae", {"window": 8, "hidden_size": 8, "latent_size": 4, "dropout": 0.2,
                                           "num_layers": 2},
                              trainer={**QUIET, "max_epochs": EPOCHS, **trainer}, seed=3,
                              checkpoint_dir=checkpoint_dir, epoch_callbacks=callbacks)
    detector.fit(small_data(8, 0), small_data(3, 1))
    return detector


def losses(history):
    """Each epoch's training loss, monitored loss and learning rate."""
    return np.array([[record["train_loss"], record[record["monitor"]], record["lr"]] for record in history])


def test_an_interrupted_and_resumed_detector_ends_exactly_as_an_uninterrupted_one(tmp_path):
    whole = fit_lstm_vae(tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        fit_lstm_vae(tmp_path / "parts", callbacks=(interrupt_after(INTERRUPTED_AFTER),))
    interrupted = torch.load(tmp_path / "parts" / "last.pt", weights_only=True)["history"]
    resumed = fit_lstm_vae(tmp_path / "parts", resume_from=str(tmp_path / "parts"))

    assert resumed.history[:INTERRUPTED_AFTER] == interrupted, "the first epochs come from the checkpoint"
    np.testing.assert_array_equal(losses(resumed.history), losses(whole.history))
    test = small_data(4, 2)
    whole_scores, resumed_scores = whole.score(test), resumed.score(test)
    np.testing.assert_array_equal(resumed_scores.series, whole_scores.series)
    for a, b in zip(resumed_scores.steps, whole_scores.steps):
        np.testing.assert_array_equal(a, b)


def test_a_resumed_run_with_a_step_budget_ends_exactly_as_an_uninterrupted_one(tmp_path):
    budget = {"min_steps": 100, "patience": 1}  # 11 steps per epoch: 10 epochs, past EPOCHS
    whole = fit_lstm_vae(tmp_path / "whole", **budget)
    with pytest.raises(KeyboardInterrupt):
        fit_lstm_vae(tmp_path / "parts", callbacks=(interrupt_after(EPOCHS + 1),), **budget)
    resumed = fit_lstm_vae(tmp_path / "parts", resume_from=str(tmp_path / "parts"), **budget)

    assert len(whole.history) == 10
    np.testing.assert_array_equal(losses(resumed.history), losses(whole.history))
    test = small_data(4, 2)
    np.testing.assert_array_equal(resumed.score(test).series, whole.score(test).series)


class NoisyAutoencoder(nn.Module):
    """Draws from torch's, numpy's and Python's global generators while training, as a model may."""

    def __init__(self):
        super().__init__()
        self.layer = nn.Sequential(nn.Dropout(0.3), nn.Linear(2, 2))

    def loss(self, batch):
        import random

        x = batch["x"]
        noise = float(np.random.normal(scale=0.01)) + random.gauss(0, 0.01) if self.training else 0.0
        return {"loss": ((self.layer(x + noise) - x) ** 2).mean()}


@pytest.mark.parametrize("source", ["windows", "series"])
def test_a_resumed_trainer_restores_every_generator_and_the_shuffler(tmp_path, source):
    def batches():
        data = small_data(10, 0)
        if source == "windows":
            return WindowBatches(data, window=8, stride=4, batch_size=8, shuffle=True, seed=0)
        return SeriesBatches(data, batch_size=3, shuffle=True, seed=0)

    def fit(folder, callbacks=(), **settings):
        seed_everything(0)
        module = NoisyAutoencoder()
        history = Trainer(trainer_settings(max_epochs=EPOCHS, lr=0.05, **settings), checkpoint_dir=tmp_path / folder,
                          epoch_callbacks=callbacks).fit(module, batches())
        return history, module

    whole, whole_module = fit("whole")
    with pytest.raises(KeyboardInterrupt):
        fit("parts", callbacks=(interrupt_after(INTERRUPTED_AFTER),))
    np.random.seed(99)  # whatever happened in between, the checkpoint brings the generators back
    resumed, resumed_module = fit("parts", resume_from=str(tmp_path / "parts" / "last.pt"))
    np.testing.assert_array_equal(losses(resumed), losses(whole))
    for key, value in whole_module.state_dict().items():
        torch.testing.assert_close(resumed_module.state_dict()[key], value, rtol=0, atol=0)


def checkpoint_of(tmp_path, module_factory):
    Trainer(trainer_settings(max_epochs=1), checkpoint_dir=tmp_path).fit(module_factory(), batches_of(small_data(4, 0)))
    return tmp_path / "last.pt"


def batches_of(data):
    return WindowBatches(data, window=8, stride=8, batch_size=8, shuffle=True, seed=0)


def resume(module, path):
    return Trainer(trainer_settings(max_epochs=2, resume_from=str(path))).fit(module, batches_of(small_data(4, 0)))


def one_line_error(error) -> str:
    message = str(error.value)
    assert "\n" not in message and "trainer.resume_from" in message and "trainer.resume_from=null" in message
    return message


def test_a_missing_checkpoint_fails_in_one_line_naming_the_path(tmp_path):
    with pytest.raises(UserError) as error:
        resume(NoisyAutoencoder(), tmp_path / "nowhere")
    assert f"no checkpoint at {tmp_path / 'nowhere'};" in one_line_error(error)


def test_a_corrupt_checkpoint_fails_in_one_line(tmp_path):
    path = checkpoint_of(tmp_path, NoisyAutoencoder)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(UserError) as error:
        resume(NoisyAutoencoder(), tmp_path)
    assert "not a readable checkpoint" in one_line_error(error) and str(path) in str(error.value)


class WiderAutoencoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.Sequential(nn.Dropout(0.3), nn.Linear(2, 3), nn.Linear(3, 2))

    def loss(self, batch):
        return {"loss": ((self.layer(batch["x"]) - batch["x"]) ** 2).mean()}


def test_a_checkpoint_of_another_model_fails_in_one_line(tmp_path):
    path = checkpoint_of(tmp_path, WiderAutoencoder)
    with pytest.raises(UserError) as error:
        resume(NoisyAutoencoder(), path)
    assert "another model" in one_line_error(error) and str(path) in str(error.value)


def test_a_file_that_is_no_training_checkpoint_fails_in_one_line(tmp_path):
    torch.save({"weights": torch.zeros(3)}, tmp_path / "last.pt")
    with pytest.raises(UserError) as error:
        resume(NoisyAutoencoder(), tmp_path)
    assert "not a tsad training checkpoint" in one_line_error(error)


@pytest.mark.parametrize("attempt", ["killed", "published"])
def test_resume_from_a_run_folder_finds_its_last_checkpoint(tmp_path, attempt):
    """trainer.resume_from=<run folder>: a killed attempt's checkpoint is in .staging/, a published run's in model/."""
    from tsad.run_folder import RunFolder

    folder = RunFolder(tmp_path / "run")
    checkpoints = (folder.staging if attempt == "killed" else folder).checkpoints
    checkpoints.mkdir(parents=True)
    saved = torch.load(checkpoint_of(checkpoints, NoisyAutoencoder), weights_only=True)["history"]
    history = resume(NoisyAutoencoder(), folder.root)
    assert [record["epoch"] for record in history] == [1, 2] and history[0] == saved[0], "epoch 1 is the checkpoint's"
