import numpy as np
import pytest

from tsad.data.registry import dataset_settings
from tsad.data.synthetic import ANOMALY_TYPES, SignalProcess, inject
from tsad.errors import UserError


def build(**settings):
    return dataset_settings({"family": "synthetic", **settings}).build()


def small(**overrides):
    settings = dict(n_train=20, n_val=5, n_test=30, min_length=60, max_length=120, n_channels=4, seed=7)
    return build(**{**settings, **overrides})


def test_same_seed_same_data_other_seed_other_data():
    a, b, c = small(), small(), small(seed=8)
    for x, y in zip(a.test.values, b.test.values):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a.test.series_labels, b.test.series_labels)
    assert not np.array_equal(a.test.values[0][:50], c.test.values[0][:50])


def test_shapes_lengths_channels_and_rates():
    data = small(n_channels=256, n_test=40, test_anomaly_rate=0.25)
    assert data.n_channels == 256 and data.level == "series"
    assert all(60 <= len(v) <= 120 for v in data.test.values)
    assert len(set(data.test.lengths)) > 1, "lengths must vary"
    assert data.test.series_labels.sum() == 10
    assert data.train.series_labels.sum() == 0 and data.val.series_labels.sum() == 0


def test_channels_are_correlated():
    x = small(n_channels=6).train.values[0]
    correlation = np.corrcoef(x.T)
    assert np.abs(correlation[np.triu_indices(6, 1)]).max() > 0.5


@pytest.mark.parametrize("kind", [t for t in ANOMALY_TYPES if t != "trend_change"])
def test_segment_anomaly_changes_exactly_the_labelled_steps(kind):
    rng = np.random.default_rng(0)
    process = SignalProcess(rng, n_channels=3, noise=0.1)
    x, _ = process.sample(rng, 200)
    changed, labels = inject(rng, x, kind, 80, 120, 3.0, process)
    moved = np.abs(changed - x).max(axis=1) > 0
    assert labels.any()
    assert not moved[labels == 0].any(), "steps outside the labels must be untouched"
    assert labels[:80].sum() == 0 and labels[120:].sum() == 0
    if kind != "spike":
        assert moved[labels == 1].mean() > 0.9


def test_trend_change_is_labelled_until_the_end():
    rng = np.random.default_rng(1)
    process = SignalProcess(rng, n_channels=2, noise=0.1)
    x, _ = process.sample(rng, 150)
    changed, labels = inject(rng, x, "trend_change", 100, 110, 3.0, process)
    assert labels[:100].sum() == 0 and labels[100:].all()
    assert np.abs(changed[:100] - x[:100]).max() == 0


def test_every_anomalous_series_has_step_labels_and_normals_none():
    data = small(anomaly_types=["level_shift", "spike"], n_test=60)
    for labels, label in zip(data.test.step_labels, data.test.series_labels):
        assert labels.any() == bool(label)


def test_point_level_has_several_segments_and_clean_train():
    data = build(level="point", max_length=3000, n_train=1, n_val=1, n_test=2, n_anomalies=10, seed=3)
    assert data.level == "point" and len(data.test.values[0]) == 3000
    segments = np.sum(np.diff(np.r_[0, data.test.step_labels[0], 0]) == 1)
    assert 8 <= segments <= 30, "ten anomalies (a spike may be several isolated points)"
    assert data.train.step_labels[0].sum() == 0


def test_contamination_and_labelled_anomalies_in_train():
    data = small(n_train=100, train_contamination=0.1, train_labelled_anomalies=0.05)
    visible = data.train.visible_series_labels()
    assert (visible == 1).sum() == 5, "only the labelled anomalies are visible"
    assert data.train.series_labels.sum() == 15, "10 hidden + 5 labelled anomalies"
    assert set(visible.tolist()) == {-1, 1}


@pytest.mark.parametrize("overrides, message", [
    (dict(anomaly_types=["meteor"]), "dataset.anomaly_types: unknown"),
    (dict(anomaly_types=[]), "dataset.anomaly_types: unknown empty list"),
    (dict(min_length=300), "dataset.min_length"),
    (dict(segment_fraction=[0.5, 0.2]), "dataset.segment_fraction"),
    (dict(anomaly_length=[40, 5]), "dataset.anomaly_length"),
    (dict(labelled_val=2.5), "dataset.labelled_val=2.5"),
    (dict(level="points"), "dataset.level"),
])
def test_bad_options_fail_in_one_line_with_the_key(overrides, message):
    with pytest.raises(UserError, match=message) as error:
        dataset_settings({"family": "synthetic", **overrides})
    assert "\n" not in str(error.value)
