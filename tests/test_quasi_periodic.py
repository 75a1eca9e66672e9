"""Synthetic quasi-periodic series: determinism, nuisances, and the labels of every anomaly type."""

import copy

import numpy as np
import pytest

from tsad.data.quasi_periodic import ANOMALY_TYPES, ECTOPIC, FLAT, BeatProcess, QuasiPeriodicSettings, inject
from tsad.data.registry import dataset_settings
from tsad.errors import UserError

SMALL = dict(family="quasi_periodic", n_train=12, n_val=4, n_test=25, min_length=160, max_length=300, n_channels=3,
             seed=5)


def small(**overrides):
    return dataset_settings({**SMALL, **overrides}).build()


def assert_same(a, b):
    assert a.names == b.names
    for x, y in zip(a.values, b.values):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a.series_labels, b.series_labels)


def test_same_seed_same_data_and_splits_are_independent_streams():
    a, b = small(), small()
    for split in ("train", "val", "test"):
        assert_same(getattr(a, split), getattr(b, split))
    assert_same(a.test, small(n_train=30).test)
    assert not np.array_equal(a.test.values[0][:100], small(seed=6).test.values[0][:100])


def test_population_has_the_nuisances():
    data = small(n_test=40, test_anomaly_rate=0.0, n_channels=4)
    assert data.n_channels == 4 and data.level == "series"
    assert all(160 <= n <= 300 for n in data.test.lengths) and len(set(data.test.lengths)) > 5
    spacing = np.concatenate([np.diff(t) for t in data.test.timestamps])
    assert spacing.min() > 0 and 0.1 < spacing.std() < 0.3 and abs(spacing.mean() - 1) < 0.01
    uniform = small(sampling_jitter=0.0).test.timestamps[0]
    np.testing.assert_allclose(np.diff(uniform), 1.0)


@pytest.mark.parametrize("spread", [0.0, 0.15])
def test_periods_vary_between_series_more_than_within(spread):
    process = BeatProcess(np.random.default_rng(0), QuasiPeriodicSettings(n_channels=2, period_spread=spread))
    schedules = [process.cycles(np.random.default_rng(s), 500.0) for s in range(40)]
    means = np.array([c.duration[:10].mean() for c in schedules])
    within = np.array([c.duration[:10].std() / c.duration[:10].mean() for c in schedules])
    assert 0 < within.max() < 0.1, "beat intervals jitter a little inside a series"
    assert (np.ptp(means) > 10) == (spread > 0), "the mean period differs between series only with a spread"
    starts = np.array([c.start[0] for c in schedules])
    assert (starts <= 0).all() and np.ptp(starts) > 20, "each series starts at its own phase"


def test_anomaly_counts_types_and_label_levels():
    data = small(n_test=50, test_anomaly_rate=0.4, anomaly_types=["missing_cycle", "amplitude"])
    assert data.test.series_labels.sum() == 20
    assert data.info["test_anomalies_per_type"] == {"missing_cycle": 10, "amplitude": 10}
    for y, label in zip(data.test.step_labels, data.test.series_labels):
        assert y.any() == bool(label)
    assert data.train.series_labels.sum() == 0 and data.val.series_labels.sum() == 0


def test_contamination_and_labelled_train_anomalies():
    data = small(n_train=20, train_contamination=0.25, train_labelled_anomalies=0.2)
    assert len(data.train) == 24 and data.train.series_labels.sum() == 5 + 4
    visible = data.train.visible_series_labels()
    assert (visible[:20] == -1).all() and (visible[20:] == 1).all()
    assert data.val.series_labels.sum() == 1


def render_pair(kind: str, seed: int, length: int = 400, n_channels: int = 3):
    """The same series rendered with and without one anomaly (same nuisances and noise draws)."""
    process = BeatProcess(np.random.default_rng(seed), QuasiPeriodicSettings(n_channels=n_channels))
    times = process.sample_times(np.random.default_rng(seed + 1), length)
    normal = process.cycles(np.random.default_rng(seed + 2), times[-1])
    anomalous = copy.deepcopy(normal)
    chosen = inject(np.random.default_rng(seed + 3), anomalous, kind, times[-1])
    x_normal, _ = process.render(np.random.default_rng(seed + 4), normal, times)
    x_anomalous, index = process.render(np.random.default_rng(seed + 4), anomalous, times)
    labels = np.isin(index, chosen)
    return x_normal, x_anomalous, labels, normal, anomalous, chosen, times


def runs(labels: np.ndarray) -> int:
    return int(np.sum(np.diff(np.concatenate([[0], labels.astype(int)])) == 1))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("kind", ANOMALY_TYPES)
def test_labels_cover_exactly_the_changed_cycles(kind, seed):
    x_normal, x_anomalous, labels, normal, anomalous, chosen, times = render_pair(kind, seed)
    assert labels.any() and runs(labels) == 1, "one contiguous labelled stretch"
    changed = np.abs(x_anomalous - x_normal).max(axis=1) > 1e-9
    labelled_span = times[labels]
    inside = [k for k in chosen if anomalous.start[k] >= 0 and anomalous.start[k] + anomalous.duration[k] <= times[-1]]
    assert inside == list(chosen), "anomalous cycles lie inside the series"
    if kind == "period":  # later beats shift in time, earlier ones are untouched
        assert not changed[times < labelled_span[0]].any() and changed[labels].any()
        ratio = anomalous.duration[chosen] / normal.duration[chosen]
        assert np.abs(ratio - 1).min() > 0.25
    else:
        assert not changed[~labels].any(), "steps outside the labels are untouched"
        assert changed[labels].mean() > 0.5
    difference = np.abs(x_anomalous - x_normal)[labels].max(axis=0)  # per channel
    if kind == "amplitude":
        assert (difference > 1e-9).sum() == 1, "one channel only"
    elif kind == "morphology":
        assert (anomalous.shape[chosen] == ECTOPIC).all() and (difference > 0.05).all()
    elif kind == "missing_cycle":
        assert (anomalous.shape[chosen] == FLAT).all()
        assert np.abs(x_anomalous[labels]).max() < 0.5 * np.abs(x_anomalous[~labels]).max()
    elif kind == "extra_cycle":
        first = chosen[0]
        np.testing.assert_allclose(anomalous.duration[first:first + 2], normal.duration[first] / 2)


def test_series_labels_match_inject_through_the_public_path():
    process = BeatProcess(np.random.default_rng(0), QuasiPeriodicSettings(n_channels=2))
    for kind in (None, *ANOMALY_TYPES):
        values, labels, times = process.series(np.random.default_rng(1), 250, kind)
        assert values.shape == (250, 2) and labels.shape == (250,) and times.shape == (250,)
        assert labels.any() == (kind is not None)


@pytest.mark.parametrize("overrides, message", [
    (dict(anomaly_types=["spike"]), "unknown"),
    (dict(min_length=100), "at least 3 cycles"),
    (dict(test_anomaly_rate=1.5), "test_anomaly_rate"),
    (dict(warp=1.0), "dataset.warp=1.0 is out of range"),
    (dict(level="point"), "dataset.level=point is not allowed: choose one of series"),
    (dict(n_test=0), "n_test"),
])
def test_bad_settings_fail_in_one_line(overrides, message):
    with pytest.raises(UserError, match=message) as error:
        dataset_settings({**SMALL, **overrides})
    assert "\n" not in str(error.value)
