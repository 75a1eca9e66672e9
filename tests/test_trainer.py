"""The shared training loop: schedule, early stopping, checkpoints, resume, NaN detection, hooks."""

import pytest
import torch
from torch import nn

from tsad.errors import NaNLossError, UserError
from tsad.training.trainer import Trainer, TrainerSettings


class Batches:
    def __init__(self, n_batches=4, scale=1.0):
        generator = torch.Generator().manual_seed(0)
        self.data = [torch.randn(8, 5, 2, generator=generator) * scale for _ in range(n_batches)]

    def __len__(self):
        return len(self.data)

    def __iter__(self):
        for x in self.data:
            yield {"x": x, "mask": torch.ones(8, 5, dtype=torch.bool)}


class Autoencoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(2, 2)
        self.events = []

    def loss(self, batch):
        return {"loss": ((self.layer(batch["x"]) - batch["x"]) ** 2).mean()}

    def on_fit_start(self, trainer, batches):
        self.events.append("fit_start")

    def on_epoch_start(self, epoch):
        self.events.append(f"epoch{epoch}")

    def on_fit_end(self, trainer, batches):
        self.events.append("fit_end")


def quiet(**overrides) -> TrainerSettings:
    return TrainerSettings.parse({"progress": False, "warmup_epochs": 0, **overrides}, "trainer")


def test_loss_goes_down_and_hooks_run_in_order():
    module = Autoencoder()
    history = Trainer(quiet(max_epochs=8, lr=0.05)).fit(module, Batches(), Batches())
    assert history[-1]["train_loss"] < history[0]["train_loss"] * 0.5
    assert module.events[0] == "fit_start" and module.events[-1] == "fit_end"
    assert module.events[1:-1] == [f"epoch{i}" for i in range(8)]


def test_early_stopping_and_best_weights_restored():
    module = Autoencoder()
    # lr=0 never improves after the first epoch: stops after `patience` more epochs.
    history = Trainer(quiet(max_epochs=20, lr=0.0, patience=2)).fit(module, Batches(), Batches())
    assert len(history) == 3


def test_early_stopping_cannot_end_a_stage_before_min_steps():
    # lr=0: early stopping ends it after 3 epochs (12 steps); 30 steps need 8 epochs of 4 batches.
    stopped = Trainer(quiet(max_epochs=20, lr=0.0, patience=2)).fit(Autoencoder(), Batches(), Batches())
    budget = Trainer(quiet(max_epochs=20, lr=0.0, patience=2, min_steps=30)).fit(Autoencoder(), Batches(), Batches())
    assert (len(stopped), len(budget)) == (3, 8)


def test_min_steps_raise_the_epochs_past_max_epochs_and_the_schedule_spans_them():
    history = Trainer(quiet(max_epochs=2, lr=0.05, min_steps=18)).fit(Autoencoder(), Batches(), Batches())
    assert [record["epoch"] for record in history] == [1, 2, 3, 4, 5], "18 steps of 4 per epoch: 5 epochs"
    assert history[1]["lr"] > 0.02 and history[-1]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_warmup_then_cosine_schedule():
    trainer = Trainer(quiet(warmup_epochs=2, max_epochs=4))
    factor = trainer._lr_lambda(total_steps=40, steps_per_epoch=10, schedule="cosine")
    assert factor(0) == pytest.approx(0.05) and factor(19) == pytest.approx(1.0)
    assert factor(30) == pytest.approx(0.5) and factor(40) == pytest.approx(0.0, abs=1e-9)


def test_checkpoints_and_resume_continue_where_training_stopped(tmp_path):
    first = Trainer(quiet(max_epochs=2), checkpoint_dir=tmp_path)
    first.fit(Autoencoder(), Batches(), Batches())
    assert (tmp_path / "best.pt").exists() and (tmp_path / "last.pt").exists()
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    assert state["epoch"] == 1
    resumed = Trainer(quiet(max_epochs=4, resume_from=str(tmp_path)), checkpoint_dir=tmp_path)
    history = resumed.fit(Autoencoder(), Batches(), Batches())
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]


def test_non_finite_loss_raises_nan_error():
    with pytest.raises(NaNLossError):
        Trainer(quiet(max_epochs=1)).fit(Autoencoder(), Batches(scale=float("nan")))


def test_stages_get_their_own_epochs():
    module = Autoencoder()
    module.stages = ("pretext", "main")
    module.stage_epochs = {"pretext": 1}
    history = Trainer(quiet(max_epochs=2)).fit(module, Batches())
    assert [(h["stage"], h["epoch"]) for h in history] == [("pretext", 1), ("main", 1), ("main", 2)]


def test_a_stage_can_set_its_own_patience_and_optimiser():
    module = Autoencoder()
    module.stages = ("pretext", "main")
    module.stage_settings = {"main": {"patience": 6, "lr": 0.0, "schedule": "constant"}}
    history = Trainer(quiet(max_epochs=20, lr=0.0, patience=2)).fit(module, Batches(), Batches())
    stages = [h["stage"] for h in history]
    assert (stages.count("pretext"), stages.count("main")) == (1 + 2, 1 + 6)
    module.stage_settings = {"main": {"lr": 0.05, "schedule": "constant"}}
    history = Trainer(quiet(max_epochs=3, lr=0.001)).fit(module, Batches(), Batches())
    assert [h["lr"] for h in history if h["stage"] == "main"] == [0.05] * 3


def test_a_stage_setting_outside_the_allowed_keys_is_refused():
    module = Autoencoder()
    module.stage_settings = {"train": {"batch_size": 4}}
    with pytest.raises(ValueError, match="stage_settings"):
        Trainer(quiet(max_epochs=1)).fit(module, Batches())


@pytest.mark.parametrize("max_epochs, expected", [(None, (30, 100)), (5, (5, 5)), (200, (200, 100))])
def test_max_epochs_caps_a_models_own_length_and_null_leaves_it(max_epochs, expected):
    trainer = Trainer(TrainerSettings(max_epochs=max_epochs))
    assert (trainer.standard_epochs, trainer.epochs_for(100)) == expected


@pytest.mark.parametrize("config, key", [({"max_epochs": 0}, "max_epochs"), ({"min_steps": 0}, "min_steps"),
                                         ({"schedule": "step"}, "schedule"),
                                         ({"precision": "8"}, "precision"),
                                         ({"colour": 1}, "unknown key 'trainer.colour'"),
                                         ({"lr": float("nan")}, "trainer.lr=nan is out of range")])
def test_bad_trainer_settings_name_the_key(config, key):
    with pytest.raises(UserError, match=key):
        TrainerSettings.parse(config, "trainer")


class WarmingUpPenalty(Autoencoder):
    """A loss with a term whose weight grows with the epoch in training (like a KL warm-up) and sits at its
    final value in eval: the running training loss rises while the model improves."""

    epoch = 0

    def on_epoch_start(self, epoch):
        self.epoch = epoch

    def loss(self, batch):
        reconstruction = super().loss(batch)["loss"]
        weight = float(self.epoch) if self.training else 10.0
        return {"loss": reconstruction + weight, "reconstruction": reconstruction}


def test_without_validation_data_early_stopping_follows_the_eval_mode_training_loss():
    torch.manual_seed(0)
    module = WarmingUpPenalty()
    history = Trainer(quiet(max_epochs=8, lr=0.05, patience=2)).fit(module, Batches())
    assert all(h["monitor"] == "train_eval_loss" for h in history)
    assert history[-1]["train_loss"] > history[0]["train_loss"], "the running training loss rises"
    # Following the running loss, which rises every epoch, would stop after 1 + patience epochs; the eval-mode
    # loss may legitimately plateau later (it does for some initialisations), so only that early stop is wrong.
    assert len(history) > 1 + 2, "training was stopped by the rising running loss"
    monitored = [h["train_eval_loss"] for h in history]
    assert monitored[-1] < monitored[0]
    final = Trainer(quiet()).evaluate(module, Batches(), torch.device("cpu"))
    assert final == pytest.approx(min(monitored)), "the weights kept are those of the best monitored epoch"


def test_with_validation_data_the_history_names_the_validation_loss_as_monitored():
    history = Trainer(quiet(max_epochs=2)).fit(Autoencoder(), Batches(), Batches())
    assert [h["monitor"] for h in history] == ["val_loss", "val_loss"] and "train_eval_loss" not in history[0]


class WorsensAfterTwoEpochs(Autoencoder):
    """Learns to reconstruct for two epochs, then trains towards a wrong target: the best epoch is the second."""

    epoch = 0

    def on_epoch_start(self, epoch):
        self.epoch = epoch

    def loss(self, batch):
        if self.training and self.epoch >= 2:
            return {"loss": ((self.layer(batch["x"]) + 10 * batch["x"]) ** 2).mean()}
        return super().loss(batch)


def test_a_resumed_run_ends_on_the_best_weights_not_the_last(tmp_path):
    settings = {"lr": 0.05, "schedule": "constant", "grad_clip": 0}
    Trainer(quiet(max_epochs=2, **settings), checkpoint_dir=tmp_path).fit(WorsensAfterTwoEpochs(), Batches(), Batches())
    module = WorsensAfterTwoEpochs()
    history = Trainer(quiet(max_epochs=6, patience=10, resume_from=str(tmp_path), **settings),
                      checkpoint_dir=tmp_path).fit(module, Batches(), Batches())
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5, 6]
    losses = [h["val_loss"] for h in history]
    assert losses.index(min(losses)) == 1, "the best epoch is the last one before the resume"
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    assert best["epoch"] == losses.index(min(losses))
    for key, value in module.state_dict().items():
        torch.testing.assert_close(value, best["module"][key])


class TwoStages(Autoencoder):
    stages = ("first", "second")
    stage_epochs = {"first": 2, "second": 3}

    def on_epoch_start(self, epoch):
        self.events.append(f"{self.stage}{epoch}")


def test_resuming_in_a_later_stage_skips_the_stages_the_checkpoint_finished(tmp_path):
    def stop_in_second_stage(history):
        if len(history) == 3:
            raise KeyboardInterrupt

    torch.manual_seed(0)
    whole = Trainer(quiet(lr=0.05)).fit(TwoStages(), Batches(), Batches())
    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):
        Trainer(quiet(lr=0.05), checkpoint_dir=tmp_path, epoch_callbacks=(stop_in_second_stage,)).fit(
            TwoStages(), Batches(), Batches())
    module = TwoStages()
    resumed = Trainer(quiet(lr=0.05, resume_from=str(tmp_path)), checkpoint_dir=tmp_path).fit(
        module, Batches(), Batches())
    assert module.events[1:-1] == ["second1", "second2"]
    assert [(h["stage"], h["val_loss"]) for h in resumed] == [(h["stage"], h["val_loss"]) for h in whole]


class RecordingAutoencoder(Autoencoder):
    """Two loss terms; remembers every training step's terms and every eval loss as Python floats."""

    def __init__(self):
        super().__init__()
        self.steps, self.evals = [], []

    def loss(self, batch):
        error = ((self.layer(batch["x"]) - batch["x"]) ** 2).mean()
        terms = {"loss": error + 0.1 * self.layer.weight.abs().mean(), "error": error}
        target = self.steps if self.training else self.evals
        target.append({k: float(v.detach()) for k, v in terms.items()})
        return terms


def test_history_is_the_per_step_mean_read_once_per_epoch():
    # The loss sums stay on the device (float64) and are read once per epoch: the same numbers as
    # summing each step's float, bit for bit on CPU.
    module = RecordingAutoencoder()
    history = Trainer(quiet(max_epochs=2, lr=0.05)).fit(module, Batches(n_batches=3))
    for epoch, record in enumerate(history):
        steps = module.steps[3 * epoch: 3 * epoch + 3]
        for key in ("loss", "error"):
            total = 0.0
            for step in steps:
                total += step[key]
            assert record[f"train_{key}"] == total / 3
        evals = module.evals[3 * epoch: 3 * epoch + 3]
        total = 0.0
        for value in evals:
            total += value["loss"] * 8
        assert record["train_eval_loss"] == total / 24
