import numpy as np
import pytest

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
