"""kNN's block means, growing memory and out-of-sample scores of the fitted rows (tsad/models/knn.py), against a
brute-force search."""

import numpy as np
import pytest

from tsad.data.nab_format import probationary_length
from tsad.data.series import SeriesSet
from tsad.errors import UserError
from tsad.models.base import Detector, build_detector
from tsad.protocols.nab import detect_online


def growing_knn(window: int = 8, block: int = 2):
    return build_detector("knn", {"window": window, "block": block, "memory": "growing", "stride": 1, "k": 1},
                          causal=True)


def block_means(values: np.ndarray, end: int, window: int, block: int) -> np.ndarray:
    """The window ending at row `end` as window / block means."""
    return values[end - window + 1:end + 1].reshape(-1, block).mean(axis=1)


def noisy_sine(n_rows: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.sin(np.arange(n_rows) * 2 * np.pi / 20) + 0.2 * rng.normal(size=n_rows)


def noise_then_a_repeating_pattern(n_rows: int) -> np.ndarray:
    """Noise over the probationary rows, then a 7-row pattern over and over: the window starting one row after
    an 8-row window ends is its twin, so a memory that let a window meet its own rows would differ."""
    rng = np.random.default_rng(1)
    pattern = rng.normal(size=7)
    probation = probationary_length(n_rows)
    return np.concatenate([rng.normal(size=probation), np.tile(pattern, n_rows)[:n_rows - probation]])


def brute_force_scores(normalised: np.ndarray, probation: int, window: int, block: int, k: int,
                       memory: str) -> dict[int, float]:
    """Each row's score from the window ending at it: the k-th nearest remembered window, each window counted once
    (the fitted windows, plus with a growing memory every window that ended before it starts); a window inside
    the fitted rows leaves out every window that shares a row with it, itself included, or where fewer than k
    share none, only itself."""
    fitted = set(range(probation - window + 1))
    scores = {}
    for row in range(window - 1, len(normalised)):
        start = row - window + 1
        remembered = fitted | (set(range(start - window + 1)) if memory == "growing" else set())
        if start in fitted:
            apart = {other for other in remembered if abs(other - start) >= window}
            remembered = apart if len(apart) >= k else remembered - {start}
        scored = block_means(normalised, row, window, block)
        distances = sorted(np.linalg.norm(scored - block_means(normalised, other + window - 1, window, block))
                           for other in remembered)
        scores[row] = distances[k - 1]
    return scores


def normalised_values(detection, values: np.ndarray) -> np.ndarray:
    normalised = detection.pipeline.detector.normaliser.transform([values[:, None].astype(np.float32)])[0][:, 0]
    return normalised.astype(np.float64)


@pytest.mark.parametrize("values", [noisy_sine(400), noise_then_a_repeating_pattern(400)], ids=["sine", "repeating"])
@pytest.mark.parametrize("memory, k", [("growing", 1), ("growing", 3), ("fitted", 1), ("fitted", 2)])
def test_each_row_scores_its_kth_nearest_remembered_window_counted_once_and_out_of_sample(values, memory, k):
    window, block, probation = 8, 2, 60                       # NAB's 15 % of 400 rows
    detection = detect_online(lambda: build_detector("knn", {"window": window, "block": block, "memory": memory,
                                                             "stride": 1, "k": k}, causal=True), values)
    expected = brute_force_scores(normalised_values(detection, values), probation, window, block, k, memory)
    for row, score in expected.items():
        assert detection.raw_scores[row] == pytest.approx(score, abs=1e-5), row
    assert np.isnan(detection.raw_scores[:window - 1]).all()
    assert (detection.raw_scores[window - 1:probation] > 0).all()     # no window of the fitted rows meets itself


def test_a_saved_detector_scores_the_fitted_rows_out_of_sample_after_loading(tmp_path):
    values = noisy_sine(160)
    detection = detect_online(growing_knn, values)
    detection.pipeline.detector.save(tmp_path / "knn")
    loaded = Detector.load(tmp_path / "knn", causal=True)
    rescored = loaded.score(SeriesSet([values[:, None].astype(np.float32)])).steps[0]
    np.testing.assert_allclose(rescored[7:], detection.raw_scores[7:], rtol=1e-6)


@pytest.mark.parametrize("memory", ["fitted", "growing"])
def test_fitted_rows_too_short_for_k_windows_apart_score_each_window_from_the_others(memory):
    window, block, k, probation = 8, 2, 3, 24                 # 17 fitted windows: a middle one is 2 apart
    values = noisy_sine(160)
    detection = detect_online(lambda: build_detector("knn", {"window": window, "block": block, "memory": memory,
                                                             "stride": 1, "k": k}, causal=True), values)
    expected = brute_force_scores(normalised_values(detection, values), probation, window, block, k, memory)
    for row, score in expected.items():
        assert detection.raw_scores[row] == pytest.approx(score, abs=1e-5), row
    assert (detection.raw_scores[window - 1:probation] > 0).all()


def test_a_pattern_seen_once_is_no_longer_new_to_a_growing_memory():
    values = noisy_sine(400)
    values[200:210] += 4.0
    values[300:310] += 4.0
    fitted_memory = detect_online(lambda: build_detector("knn", {"window": 8, "block": 2, "stride": 1, "k": 1},
                                                         causal=True), values).raw_scores
    growing = detect_online(growing_knn, values).raw_scores
    first, second = slice(200, 212), slice(300, 312)
    assert fitted_memory[second].max() == pytest.approx(fitted_memory[first].max(), rel=0.2)
    assert growing[first].max() == pytest.approx(fitted_memory[first].max())  # nothing like it had passed yet
    assert growing[second].max() < 0.5 * growing[first].max()


@pytest.mark.parametrize("params, causal, message", [
    ({"window": 16, "block": 3}, False, "model.block=3 must divide model.window=16"),
    ({"memory": "growing"}, False, "only an online protocol does (dataset=nab); use model.memory=fitted"),
    ({"memory": "everything"}, False, "model.memory=everything is not allowed: choose one of fitted, growing"),
])
def test_settings_a_knn_cannot_honour_fail_in_one_line(params, causal, message):
    with pytest.raises(UserError, match=message.replace(".", r"\.").replace("(", r"\(").replace(")", r"\)")):
        build_detector("knn", params, causal=causal)
