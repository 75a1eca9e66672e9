"""CARLA: end to end through tsad-run, save/load, per-sample neighbour mining, anomaly injection."""

import numpy as np
import pytest
import torch
from conftest import read_metrics, reload_and_compare, run_folders, run_tsad

from tsad.data.series import SeriesSet
from tsad.errors import UserError
from tsad.models.base import build_detector
from tsad.models.carla import CARLA, INJECTIONS, CARLAModule, inject_anomalies, mine_neighbours
from tsad.training.trainer import Trainer, TrainerSettings

SMALL_MODEL = ["model.window=24", "model.positive_lag=4", "model.num_neighbors=3"]


@pytest.mark.parametrize("dataset", [["dataset=synthetic", "dataset.n_train=40", "dataset.n_val=10",
                                      "dataset.n_test=30", "dataset.min_length=40", "dataset.max_length=80"],
                                     ["dataset=synthetic_points", "dataset.max_length=600"]],
                         ids=["series", "points"])
def test_carla_trains_both_stages_and_scores_through_tsad_run(tmp_path, dataset):
    run_tsad(["model=carla", *dataset, *SMALL_MODEL, "trainer=fast", "trainer.max_batches_per_epoch=3", "plots=false"],
             tmp_path)
    (folder,) = run_folders(tmp_path)
    record = read_metrics(folder)
    assert record["status"] == "OK"
    assert np.isfinite(record["headline"]["roc_auc"])
    stages = (folder / "history.csv").read_text()
    assert "pretext" in stages and "classification" in stages


def small_data(n: int, seed: int, shift: float = 0.0) -> SeriesSet:
    rng = np.random.default_rng(seed)
    t = np.arange(60)
    values = [np.stack([np.sin(t / 4 + p), np.cos(t / 7 + p)], axis=1) + rng.normal(scale=0.05, size=(60, 2)) + shift
              for p in rng.uniform(0, 6, size=n)]
    return SeriesSet(values)


def test_save_load_gives_identical_scores(tmp_path):
    trainer = {"max_epochs": 1, "max_batches_per_epoch": 2, "batch_size": 16, "warmup_epochs": 0, "progress": False}
    detector = build_detector("carla", {"window": 16, "positive_lag": 3, "num_neighbors": 2}, trainer=trainer, seed=1)
    detector.fit(small_data(6, 0), small_data(2, 1))
    loaded = reload_and_compare(detector, small_data(3, 2, shift=1.0), tmp_path)
    assert int(loaded.module.majority_class) == int(detector.module.majority_class)


def brute_force_neighbours(queries: np.ndarray, bank: np.ndarray, k: int, skip_self: bool):
    nearest, furthest = [], []
    for i, q in enumerate(queries):
        distances = ((bank - q) ** 2).sum(axis=1)
        order = [j for j in np.argsort(distances) if not (skip_self and j == i)]
        nearest.append(order[:k])
        furthest.append(order[::-1][:k])
    return np.array(nearest), np.array(furthest)


def test_neighbour_mining_gives_each_sample_its_own_neighbours():
    rng = np.random.default_rng(0)
    bank = rng.normal(size=(40, 4)).astype(np.float32)
    bank /= np.linalg.norm(bank, axis=1, keepdims=True)
    nearest, furthest = mine_neighbours(torch.from_numpy(bank), torch.from_numpy(bank), k=5)
    expected_nearest, expected_furthest = brute_force_neighbours(bank, bank, 5, skip_self=True)
    np.testing.assert_array_equal(nearest.numpy(), expected_nearest)
    np.testing.assert_array_equal(furthest.numpy(), expected_furthest)
    assert len({tuple(row) for row in nearest.numpy()}) > 30   # not one global ordering shared by all samples

    queries = rng.normal(size=(7, 4)).astype(np.float32)       # new windows: nothing of the bank is skipped
    nearest, furthest = mine_neighbours(torch.from_numpy(queries), torch.from_numpy(bank), k=3)
    expected_nearest, expected_furthest = brute_force_neighbours(queries, bank, 3, skip_self=False)
    np.testing.assert_array_equal(nearest.numpy(), expected_nearest)
    np.testing.assert_array_equal(furthest.numpy(), expected_furthest)


def small_module(pretext_epochs: int = 1, classification_epochs: int = 1, num_classes: int = 5,
                 score_type: str = "profile_distance") -> CARLAModule:
    """A 2-channel module on windows of 16 steps (positive_lag 3), 3 neighbours, a bank of 100."""
    config = CARLA(window=16, positive_lag=3, num_classes=num_classes, num_neighbors=3, pretext_epochs=pretext_epochs,
                   classification_epochs=classification_epochs, bank_size=100, score_type=score_type)
    return config.build_module(n_channels=2)


def test_classification_anchors_get_neighbours_from_the_frozen_pretext_space():
    torch.manual_seed(0)
    module = small_module()
    module.train_windows = torch.randn(30, 16, 2)
    bank = module.build_bank(torch.device("cpu"))
    assert bank.windows.shape == (60, 16, 2) and bank.embeddings.shape == (60, 4)
    torch.testing.assert_close(bank.windows[:30], module.train_windows)
    with torch.no_grad():
        module.embedder.head[2].weight.add_(1.0)              # training the live network must not move the bank
    anchors = module.train_windows[:4]
    nearest, _ = bank.neighbours(anchors, k=1)
    expected, _ = mine_neighbours(bank.embedder(anchors), bank.embeddings, 1)
    torch.testing.assert_close(nearest, bank.windows[expected[:, 0]])


@pytest.mark.parametrize("max_epochs, expected", [(None, {"pretext": 30, "classification": 50}),
                                                   (2, {"pretext": 2, "classification": 2})])
def test_stages_train_their_published_length_and_classification_is_not_stopped_early(max_epochs, expected):
    module = small_module(pretext_epochs=30, classification_epochs=50)
    module.on_fit_start(Trainer(TrainerSettings(max_epochs=max_epochs)), [{"x": torch.randn(4, 19, 2)}])
    assert module.stage_epochs == expected
    assert module.stage_settings["classification"]["patience"] == expected["classification"]
    assert module.stage_settings["classification"]["lr"] == 1e-2


@pytest.mark.parametrize("kind", INJECTIONS)
def test_each_injection_changes_every_window_and_leaves_the_input_alone(kind):
    torch.manual_seed(0)
    x = torch.randn(32, 40, 10)
    original = x.clone()
    injected = inject_anomalies(x, [kind])
    torch.testing.assert_close(x, original)
    assert injected.shape == x.shape
    changed = (injected != x).any(dim=1)                                     # [B, C]
    assert changed.any(dim=1).all(), f"{kind} left some windows untouched"
    assert (changed.sum(dim=1) <= 4).all(), "fewer than C/2 channels carry the anomaly"


def test_an_unknown_injection_or_none_at_all_is_a_user_error():
    with pytest.raises(UserError, match=r"model.injections\[1\]=spike is not allowed: choose one of seasonal,"):
        build_detector("carla", {"injections": ["seasonal", "spike"]})
    with pytest.raises(UserError, match=r"model.injections=\[\] leaves no anomaly to inject"):
        build_detector("carla", {"injections": []})


def module_with_fixed_probabilities(score_type: str, probabilities: torch.Tensor, profile: torch.Tensor) -> CARLAModule:
    module = small_module(num_classes=3, score_type=score_type)
    module.class_probabilities = lambda x: probabilities
    module.normal_profile.copy_(profile)
    module.majority_class.fill_(int(profile.argmax()))
    return module


def test_profile_distance_equals_the_published_score_when_normal_windows_sit_in_one_class():
    probabilities = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [1 / 3, 1 / 3, 1 / 3]])
    one_hot = torch.tensor([1.0, 0.0, 0.0])
    batch = {"x": torch.zeros(3, 16, 2)}
    profile_scores = module_with_fixed_probabilities("profile_distance", probabilities, one_hot).score(batch)[1]
    published = module_with_fixed_probabilities("majority_class", probabilities, one_hot).score(batch)[1]
    torch.testing.assert_close(profile_scores, published)
    torch.testing.assert_close(published, 1 - probabilities[:, 0])


def test_a_window_put_confidently_in_the_majority_class_is_anomalous_when_normal_windows_are_unsure():
    """After short training the head is unsure on normal windows, and magnitude anomalies land confidently in
    the majority class: the published score calls them the most normal windows, the profile distance does not."""
    profile = torch.tensor([0.4, 0.3, 0.3])
    typical, confident = profile, torch.tensor([1.0, 0.0, 0.0])
    batch = {"x": torch.zeros(2, 16, 2)}
    probabilities = torch.stack([typical, confident])
    published = module_with_fixed_probabilities("majority_class", probabilities, profile).score(batch)[1]
    profile_scores = module_with_fixed_probabilities("profile_distance", probabilities, profile).score(batch)[1]
    assert published[1] < published[0]
    assert profile_scores[0] == 0 and profile_scores[1] == pytest.approx(0.6)


def test_the_normal_profile_is_the_mean_class_distribution_of_the_training_windows_and_is_saved(tmp_path):
    trainer = {"max_epochs": 1, "max_batches_per_epoch": 2, "batch_size": 16, "warmup_epochs": 0, "progress": False}
    detector = build_detector("carla", {"window": 16, "positive_lag": 3, "num_neighbors": 2}, trainer=trainer, seed=1)
    train = small_data(6, 0)
    detector.fit(train, small_data(2, 1))
    module = detector.module
    batches = detector.batches(detector._normalised(train), 16, False)
    windows = torch.cat([module.anchor_part(batch["x"]) for batch in batches])
    with torch.no_grad():
        expected = module.class_probabilities(windows).mean(dim=0)
    torch.testing.assert_close(module.normal_profile, expected, rtol=1e-5, atol=1e-6)
    loaded = reload_and_compare(detector, small_data(3, 2, shift=1.0), tmp_path)
    torch.testing.assert_close(loaded.module.normal_profile, module.normal_profile)


def test_an_unknown_score_type_is_refused():
    with pytest.raises(UserError, match="model.score_type=majority is not allowed: choose one of profile_distance"):
        build_detector("carla", {"score_type": "majority"})
