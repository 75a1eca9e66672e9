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


def test_one_class_only_gives_a_note_not_a_crash():
    result = binary_metrics(np.zeros(10), np.arange(10.0), threshold=5)
    assert result["roc_auc"] is None and "undefined" in result["note"]
    assert result["confusion"]["fp"] == 4
