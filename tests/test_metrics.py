import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score, roc_auc_score

from tsad.evaluation.metrics import best_f1, binary_metrics


@pytest.fixture
def fixed():
    rng = np.random.default_rng(0)
    labels = (rng.random(500) < 0.2).astype(int)
    scores = rng.normal(size=500) + 1.5 * labels
    return labels, scores


def test_matches_scikit_learn(fixed):
    labels, scores = fixed
    result = binary_metrics(labels, scores, threshold=1.0)
    predicted = (scores > 1.0).astype(int)
    assert result["roc_auc"] == pytest.approx(roc_auc_score(labels, scores))
    assert result["pr_auc"] == pytest.approx(average_precision_score(labels, scores))
    assert result["precision"] == pytest.approx(precision_score(labels, predicted))
    assert result["recall"] == pytest.approx(recall_score(labels, predicted))
    assert result["f1"] == pytest.approx(f1_score(labels, predicted))
    confusion = result["confusion"]
    assert confusion["tp"] + confusion["fn"] == labels.sum()
    assert sum(confusion.values()) == len(labels)


def test_oracle_best_f1_equals_brute_force(fixed):
    labels, scores = fixed
    brute = max(f1_score(labels, (scores > t).astype(int), zero_division=0) for t in np.r_[scores, scores.min() - 1])
    f1, threshold = best_f1(labels, scores)
    assert f1 == pytest.approx(brute)
    assert f1_score(labels, (scores > threshold).astype(int)) == pytest.approx(brute)


def test_ties_are_cut_only_between_distinct_scores():
    labels = np.array([1, 0, 1, 0])
    scores = np.array([1.0, 1.0, 1.0, 0.0])
    f1, threshold = best_f1(labels, scores)
    assert f1 == pytest.approx(0.8) and 0.0 < threshold < 1.0


def test_only_normal_labels_leave_ranking_recall_and_f1_undefined_never_0():
    result = binary_metrics(np.zeros(10), np.arange(10.0), threshold=5)
    for name in ("roc_auc", "pr_auc", "oracle_best_f1", "recall", "f1"):
        assert result[name] is None, name
    assert result["undefined"]["roc_auc"] == "all 10 test labels are normal"
    assert result["undefined"]["f1"] == "no test label is anomalous"
    assert result["precision"] == 0.0 and result["confusion"]["fp"] == 4  # 4 alarms, all false: defined


def test_only_anomalous_labels_leave_the_ranking_undefined_and_recall_defined():
    result = binary_metrics(np.ones(4), np.arange(4.0), threshold=1.5)
    assert result["roc_auc"] is None and result["undefined"]["pr_auc"] == "all 4 test labels are anomalous"
    assert (result["precision"], result["recall"], result["f1"]) == (1.0, 0.5, pytest.approx(2 / 3))


def test_no_alarm_leaves_precision_undefined_and_f1_zero():
    labels = np.array([0, 0, 1, 1])
    result = binary_metrics(labels, np.array([0.1, 0.2, 0.3, 0.4]), threshold=1.0)
    assert result["precision"] is None
    assert result["undefined"] == {"precision": "no test score is above the threshold 1"}
    assert (result["recall"], result["f1"]) == (0.0, 0.0) and result["roc_auc"] == 1.0
