"""kNN's block means and growing memory (tsad/models/knn.py), against a brute-force search."""

import numpy as np
import pytest

from tsad.errors import UserError
from tsad.models.base import build_detector
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
    return np.concatenate([rng.normal(size=24), np.tile(pattern, n_rows)[:n_rows - 24]])


@pytest.mark.parametrize("values", [noisy_sine(160), noise_then_a_repeating_pattern(160)], ids=["sine", "repeating"])
def test_growing_memory_scores_each_row_by_its_nearest_fitted_or_passed_window(values):
    window, block = 8, 2
    detection = detect_online(lambda: growing_knn(window, block), values)
    probation = 24                                            # NAB's 15 % of 160 rows
    normalised = detection.pipeline.detector.normaliser.transform([values[:, None].astype(np.float32)])[0][:, 0]
    normalised = normalised.astype(np.float64)
    fitted = [block_means(normalised, end, window, block) for end in range(window - 1, probation)]
    for row in range(window - 1, len(values)):
        passed = [block_means(normalised, end, window, block) for end in range(window - 1, row - window + 1)]
        scored = block_means(normalised, row, window, block)
        expected = min(np.linalg.norm(scored - other) for other in fitted + passed)
        assert detection.raw_scores[row] == pytest.approx(expected, abs=1e-5), row
    assert np.isnan(detection.raw_scores[:window - 1]).all()


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


@pytest.mark.parametrize("block", [1, 2, 4])
def test_a_fitted_memory_scores_each_row_by_its_kth_nearest_fitted_window_read_in_blocks(block):
    window, k = 8, 2
    values = noisy_sine(160)
    detection = detect_online(lambda: build_detector("knn", {"window": window, "block": block, "stride": 1, "k": k},
                                                     causal=True), values)
    probation = 24                                            # NAB's 15 % of 160 rows
    normalised = detection.pipeline.detector.normaliser.transform([values[:, None].astype(np.float32)])[0][:, 0]
    normalised = normalised.astype(np.float64)
    fitted = [block_means(normalised, end, window, block) for end in range(window - 1, probation)]
    for row in range(window - 1, len(values)):
        scored = block_means(normalised, row, window, block)
        expected = sorted(np.linalg.norm(scored - other) for other in fitted)[k - 1]
        assert detection.raw_scores[row] == pytest.approx(expected, abs=1e-5), row


@pytest.mark.parametrize("params, causal, message", [
    ({"window": 16, "block": 3}, False, "model.block=3 must divide model.window=16"),
    ({"memory": "growing"}, False, "only an online protocol does (dataset=nab); use model.memory=fitted"),
    ({"memory": "growing", "k": 3}, True, "set model.k=1"),
    ({"memory": "everything"}, False, "model.memory=everything is not allowed: choose one of fitted, growing"),
])
def test_settings_a_knn_cannot_honour_fail_in_one_line(params, causal, message):
    with pytest.raises(UserError, match=message.replace(".", r"\.").replace("(", r"\(").replace(")", r"\)")):
        build_detector("knn", params, causal=causal)
