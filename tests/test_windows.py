import numpy as np
import pytest

from tsad.data.series import SeriesSet
from tsad.data.windows import aggregate_series, make_windows, window_starts, windows_to_steps


def test_windows_cover_every_step_and_end_at_the_end():
    starts = window_starts(103, 10, 4)
    assert starts[0] == 0 and starts[-1] == 93
    covered = np.zeros(103, bool)
    for s in starts:
        covered[s:s + 10] = True
    assert covered.all()


@pytest.mark.parametrize("reduce", ["mean", "max"])
def test_round_trip_of_a_per_step_quantity(reduce):
    series = np.arange(57, dtype=float)[:, None]
    windows, starts, n_pad = make_windows(series, 8, 3)
    assert windows.shape == (len(starts), 8, 1)
    steps = windows_to_steps(windows[:, :, 0], starts, len(series), reduce, n_pad)
    np.testing.assert_allclose(steps, series[:, 0])


def test_short_series_is_padded_and_padding_dropped_again():
    series = np.arange(5, dtype=float)[:, None]
    windows, starts, n_pad = make_windows(series, 8, 1)
    assert n_pad == 3 and windows.shape == (1, 8, 1)
    np.testing.assert_array_equal(windows[0, :3, 0], [0, 0, 0])
    steps = windows_to_steps(windows[:, :, 0] + 1, starts, 5, "mean", n_pad)
    np.testing.assert_allclose(steps, np.arange(5) + 1)


def test_nan_means_unscored_and_warm_up_takes_the_nearest_score():
    series = np.zeros((20, 1))
    windows, starts, n_pad = make_windows(series, 5, 1)
    last_only = np.full((len(starts), 5), np.nan)
    last_only[:, -1] = starts + 4  # score = index of the step it belongs to
    steps = windows_to_steps(last_only, starts, 20, "mean", n_pad)
    np.testing.assert_allclose(steps[4:], np.arange(4, 20))
    np.testing.assert_allclose(steps[:4], 4)


def test_mean_and_max_of_overlapping_windows():
    starts = np.array([0, 2])
    scores = np.array([[1.0, 1, 1, 1], [3.0, 3, 3, 3]])
    np.testing.assert_allclose(windows_to_steps(scores, starts, 6, "mean"), [1, 1, 2, 2, 3, 3])
    np.testing.assert_allclose(windows_to_steps(scores, starts, 6, "max"), [1, 1, 3, 3, 3, 3])


def test_series_aggregates():
    scores = np.arange(20, dtype=float)
    assert aggregate_series(scores, "max") == 19
    assert aggregate_series(scores, "mean") == 9.5
    assert aggregate_series(scores, "top10") == 18.5


def spike_series(length: int = 100, row: int = 50) -> np.ndarray:
    series = np.zeros((length, 1))
    series[row] = 10.0
    return series


def last_value_of_each_window(windows: np.ndarray) -> np.ndarray:
    """A model whose step scores are the window's values (so a window's score is its last value)."""
    return windows[:, :, 0]


def test_causal_scores_give_every_row_its_own_window_whatever_the_score_stride():
    from tsad.models.base import Runtime
    from tsad.models.pca import PCADetector

    for stride in (1, 8):
        detector = PCADetector(window=16, score_stride=stride, runtime=Runtime(causal=True))
        scores = detector._window_scores_to_scores(SeriesSet([spike_series()]), last_value_of_each_window).steps[0]
        assert np.isnan(scores[:15]).all()
        assert scores[50] == 10.0, f"score_stride={stride}: the spike's row got {scores[50]}"
        np.testing.assert_array_equal(np.delete(scores[15:], 50 - 15), 0.0)


def test_causal_scores_with_a_stride_never_change_when_later_rows_change():
    from tsad.models.base import Runtime
    from tsad.models.pca import PCADetector

    detector = PCADetector(window=16, score_stride=8, runtime=Runtime(causal=True))
    rng = np.random.default_rng(0)
    series = rng.normal(size=(120, 2))
    mean_of_window = lambda windows: np.repeat(windows.mean(axis=(1, 2))[:, None], windows.shape[1], axis=1)  # noqa: E731
    before = detector._window_scores_to_scores(SeriesSet([series]), mean_of_window).steps[0]
    for row in (15, 40, 119):
        altered = series.copy()
        altered[row] += 5.0
        after = detector._window_scores_to_scores(SeriesSet([altered]), mean_of_window).steps[0]
        np.testing.assert_array_equal(after[:row], before[:row])
        assert after[row] != before[row]
