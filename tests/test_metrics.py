"""Tests of lcl_jax.metrics against scikit-learn and a direct NumPy transcription of Eq. 7."""
import doctest
import math

import jax.numpy as jnp
import numpy as np
import pytest
import sklearn.metrics as skm

from lcl_jax import metrics


def _predictions_with_gaps(seed, n, num_classes):
  """Labels/predictions where some classes are absent from one side or from both."""
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, num_classes - 2, size=n)  # classes C-2, C-1 never true
  predictions = np.where(rng.uniform(size=n) < 0.6, labels, rng.integers(0, num_classes, size=n))
  predictions[predictions == 1] = 0  # class 1 never predicted
  predictions[predictions == num_classes - 1] = num_classes - 2  # class C-1 in neither
  return labels, predictions


@pytest.mark.parametrize("seed,n,num_classes", [(0, 50, 7), (1, 333, 32), (2, 9, 5)])
def test_classification_metrics_match_sklearn(seed, n, num_classes):
  labels, predictions = _predictions_with_gaps(seed, n, num_classes)
  assert 1 not in predictions and num_classes - 2 not in labels
  assert num_classes - 1 not in labels and num_classes - 1 not in predictions
  result = metrics.classification_metrics(labels, predictions, num_classes=num_classes)
  assert set(result) == {"accuracy", "weighted_f1", "macro_f1"}
  np.testing.assert_allclose(result["accuracy"], skm.accuracy_score(labels, predictions), rtol=1e-12)
  np.testing.assert_allclose(
      result["weighted_f1"], skm.f1_score(labels, predictions, average="weighted"), rtol=1e-12
  )
  np.testing.assert_allclose(
      result["macro_f1"], skm.f1_score(labels, predictions, average="macro"), rtol=1e-12
  )
  # Appendix Eq. 8 written out: sum_c (n_c / N) * F1_c over the true classes.
  eq8 = 0.0
  for c in range(num_classes):
    tp = np.sum((labels == c) & (predictions == c))
    precision = tp / max(np.sum(predictions == c), 1)
    recall = tp / max(np.sum(labels == c), 1)
    f1 = 0.0 if tp == 0 else 2 * precision * recall / (precision + recall)
    eq8 += np.sum(labels == c) / n * f1
  np.testing.assert_allclose(result["weighted_f1"], eq8, rtol=1e-12)


def test_classification_metrics_perfect_and_jax_inputs():
  labels = jnp.array([0, 3, 3, 1])
  result = metrics.classification_metrics(labels, labels, num_classes=5)
  assert result == {"accuracy": 1.0, "weighted_f1": 1.0, "macro_f1": 1.0}


@pytest.mark.parametrize("seed,n,num_classes", [(3, 40, 6), (4, 200, 27)])
def test_confusion_matrix_matches_sklearn(seed, n, num_classes):
  labels, predictions = _predictions_with_gaps(seed, n, num_classes)
  ours = metrics.confusion_matrix(labels, predictions, num_classes=num_classes)
  expected = skm.confusion_matrix(labels, predictions, labels=np.arange(num_classes))
  assert ours.shape == (num_classes, num_classes)
  np.testing.assert_array_equal(ours, expected)


def _multilabel_case(seed, n, num_classes):
  rng = np.random.default_rng(seed)
  truth = (rng.uniform(size=(n, num_classes)) < 0.3).astype(np.int32)
  predicted = np.where(rng.uniform(size=truth.shape) < 0.7, truth, 1 - truth)
  truth[:, 0] = 0  # class 0: never true
  predicted[:, 1] = 0  # class 1: never predicted
  truth[:, 2] = 0  # class 2: neither
  predicted[:, 2] = 0
  return truth, predicted


@pytest.mark.parametrize("seed,n,num_classes", [(5, 30, 6), (6, 500, 28), (7, 3, 4)])
def test_multilabel_metrics_match_sklearn_zero_division_0(seed, n, num_classes):
  truth, predicted = _multilabel_case(seed, n, num_classes)
  result = metrics.multilabel_metrics(truth, predicted.astype(bool))
  for average in ("micro", "macro"):
    p, r, f, _ = skm.precision_recall_fscore_support(
        truth, predicted, average=average, zero_division=0
    )
    np.testing.assert_allclose(
        [result[f"{average}_precision"], result[f"{average}_recall"], result[f"{average}_f1"]],
        [p, r, f], rtol=1e-12, atol=1e-15,
    )


@pytest.mark.parametrize("seed,n,num_classes", [(11, 40, 6), (12, 400, 28)])
def test_multilabel_weighted_exact_match_and_per_class_match_sklearn(seed, n, num_classes):
  truth, predicted = _multilabel_case(seed, n, num_classes)
  predicted[: n // 4] = truth[: n // 4]  # some exact matches
  predicted[:, 1] = 0  # class 1 stays never predicted
  result = metrics.multilabel_metrics(truth, predicted)
  p, r, f, _ = skm.precision_recall_fscore_support(truth, predicted, average="weighted",
                                                   zero_division=0)
  np.testing.assert_allclose([result["weighted_precision"], result["weighted_recall"],
                              result["weighted_f1"]], [p, r, f], rtol=1e-12, atol=1e-15)
  # Exact match by hand: rows whose whole label set is right.
  assert result["exact_match"] == np.mean(np.all(truth == predicted, axis=1))
  assert result["exact_match"] > 0
  per_class = metrics.per_class_metrics(truth, predicted)
  # Independent per-class transcription (0/0 = 0).
  for c in range(num_classes):
    tp = np.sum((truth[:, c] == 1) & (predicted[:, c] == 1))
    n_pred, n_true = predicted[:, c].sum(), truth[:, c].sum()
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_true if n_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    np.testing.assert_allclose([per_class["precision"][c], per_class["recall"][c],
                                per_class["f1"][c]], [precision, recall, f1], rtol=1e-12)
    assert per_class["support"][c] == n_true
  assert per_class["support"][0] == 0 and per_class["precision"][1] == 0.0
  assert per_class["f1"][2] == 0.0  # never present, never predicted: F1 0 (and counted)
  np.testing.assert_allclose(np.mean(per_class["f1"]), result["macro_f1"], rtol=1e-12)
  for key in ("precision", "recall", "f1"):
    np.testing.assert_allclose(per_class["std"][key],
                               math.sqrt(np.mean((per_class[key] - per_class[key].mean()) ** 2)),
                               rtol=1e-12)


def test_per_class_std_reproduces_seed000_table5_row():
  """Seed 000's Table 5 std row (0.18 / 0.19 / 0.17) from its own per-class columns."""
  from lcl_jax.studies import paper_numbers
  table = paper_numbers.SEED000_TABLE5
  for key, printed in (("precision", 0.18), ("recall", 0.19), ("f1", 0.17)):
    values = np.array([table[e][key] for e in paper_numbers.GOEMOTIONS28_LABELS])
    assert round(float(np.std(values)), 2) == printed


def test_multilabel_metrics_with_no_predictions_at_all():
  truth = np.array([[1, 0], [0, 1], [1, 1]])
  result = metrics.multilabel_metrics(truth, np.zeros_like(truth))
  assert all(value == 0.0 for value in result.values())
  p, r, f, _ = skm.precision_recall_fscore_support(truth, np.zeros_like(truth), average="micro", zero_division=0)
  assert (p, r, f) == (0.0, 0.0, 0.0)


def _entropy_transcription(probabilities, k):
  """Eq. 7 by hand: per example top-k, renormalise, -sum q log2 q (bits); mean over examples."""
  values = []
  for row in np.asarray(probabilities, np.float64):
    top = sorted(row.tolist(), reverse=True)[:k]
    total = sum(top)
    entropy = 0.0
    for p in top:
      q = p / total
      if q > 0:
        entropy -= q * math.log2(q)
    values.append(entropy)
  return sum(values) / len(values)


def _probabilities(seed, n, num_classes):
  rng = np.random.default_rng(seed)
  logits = 3 * rng.normal(size=(n, num_classes))
  probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
  probabilities /= probabilities.sum(axis=1, keepdims=True)
  probabilities[0] = 1.0 / num_classes  # all tied
  probabilities[1] = 0.0  # one-hot with exact zeros
  probabilities[1, 2] = 1.0
  probabilities[2, : num_classes // 2] = 0.0  # some exact zeros inside the top-k
  probabilities[2] /= probabilities[2].sum()
  return probabilities


@pytest.mark.parametrize("seed,n,num_classes", [(8, 25, 7), (9, 100, 32)])
def test_topk_entropy_matches_transcription(seed, n, num_classes):
  probabilities = _probabilities(seed, n, num_classes)
  for k in range(1, num_classes + 1):
    np.testing.assert_allclose(
        metrics.topk_entropy_bits(probabilities, k), _entropy_transcription(probabilities, k),
        rtol=1e-10, atol=1e-12,
    )
  assert metrics.topk_entropy_bits(probabilities, 1) == 0.0
  # The all-tied row alone has entropy log2 k bits.
  np.testing.assert_allclose(metrics.topk_entropy_bits(probabilities[:1], 3), math.log2(3),
                             rtol=1e-12)
  curve = metrics.topk_entropy_curve_bits(jnp.asarray(probabilities, jnp.float32))
  assert curve.shape == (num_classes - 1,) and curve.dtype == np.float64
  for k, value in zip(range(2, num_classes + 1), curve):
    np.testing.assert_allclose(value, _entropy_transcription(probabilities, k), rtol=1e-5, atol=1e-6)


def test_topk_entropy_is_scale_free():
  probabilities = _probabilities(10, 12, 5)
  np.testing.assert_allclose(
      metrics.topk_entropy_bits(3.0 * probabilities, 4), metrics.topk_entropy_bits(probabilities, 4), rtol=1e-12
  )


BAD_INPUTS = [
    ("labels rank", lambda: metrics.classification_metrics([[0, 1]], [0, 1], num_classes=2), r"`labels`.*\(1, 2\)"),
    ("label range", lambda: metrics.classification_metrics([0, 2], [0, 1], num_classes=2), r"`labels`.*\[0, 2\)"),
    ("prediction range", lambda: metrics.confusion_matrix([0, 1], [0, -1], num_classes=2), r"`predictions`.*\[0, 2\)"),
    ("length mismatch", lambda: metrics.classification_metrics([0, 1, 1], [0, 1], num_classes=2), r"\(3,\).*\(2,\)"),
    ("fractional labels", lambda: metrics.classification_metrics([0.5, 1.0], [0, 1], num_classes=2), r"`labels`.*integer"),
    ("empty", lambda: metrics.classification_metrics([], [], num_classes=2), r"empty"),
    ("num_classes", lambda: metrics.confusion_matrix([0], [0], num_classes=0), r"`num_classes`"),
    ("multi-hot rank", lambda: metrics.multilabel_metrics([0, 1], [0, 1]), r"`label_sets`.*\(2,\)"),
    ("multi-hot values", lambda: metrics.multilabel_metrics([[0, 2]], [[0, 1]]), r"`label_sets`.*0/1"),
    ("multi-hot shapes", lambda: metrics.multilabel_metrics([[0, 1]], [[0, 1, 1]]), r"\(1, 2\).*\(1, 3\)"),
    ("per-class empty", lambda: metrics.per_class_metrics(np.zeros((0, 3)), np.zeros((0, 3))), r"empty"),
    ("probability rank", lambda: metrics.topk_entropy_bits([0.5, 0.5], 1), r"`probabilities`.*\(2,\)"),
    ("negative probability", lambda: metrics.topk_entropy_bits([[1.5, -0.5]], 1), r"non-negative"),
    ("k too large", lambda: metrics.topk_entropy_bits([[0.5, 0.5]], 3), r"`k`.*\[1, 2\]"),
    ("curve with one class", lambda: metrics.topk_entropy_curve_bits([[1.0]]), r"C >= 2"),
]


@pytest.mark.parametrize("name,call,pattern", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_raises_value_error(name, call, pattern):
  with pytest.raises(ValueError, match=pattern):
    call()


def test_doctests():
  result = doctest.testmod(metrics, optionflags=doctest.NORMALIZE_WHITESPACE)
  assert result.attempted >= 8
  assert result.failed == 0


def test_topk_entropy_is_in_bits_on_hand_computed_cases():
  """Eq. 7 uses log base 2 (issue 14 item 3). By hand:
  row 1 [0.5, 0.25, 0.25]: k=2 -> q = (2/3, 1/3): H = log2 3 - 2/3 = 0.918296 bits;
                           k=3 -> -(0.5 log2 0.5 + 2 * 0.25 log2 0.25) = 1.5 bits.
  row 2 [0.8, 0.1, 0.1]:   k=2 -> q = (8/9, 1/9): H = log2 9 - (8/9) log2 8 = 0.503258 bits;
                           k=3 -> 0.8 log2 1.25 + 0.2 log2 10 = 0.921928 bits."""
  probabilities = [[0.5, 0.25, 0.25], [0.8, 0.1, 0.1]]
  h2 = ((math.log2(3) - 2 / 3) + (math.log2(9) - 8 / 9 * 3)) / 2
  h3 = (1.5 + (0.8 * math.log2(1.25) + 0.2 * math.log2(10))) / 2
  assert abs(h2 - (0.918296 + 0.503258) / 2) < 1e-6 and abs(h3 - (1.5 + 0.921928) / 2) < 1e-6
  assert metrics.topk_entropy_bits(probabilities, 2) == pytest.approx(h2, rel=1e-12)
  assert metrics.topk_entropy_bits(probabilities, 3) == pytest.approx(h3, rel=1e-12)
  np.testing.assert_allclose(metrics.topk_entropy_curve_bits(probabilities), [h2, h3], rtol=1e-12)
  # Equally likely top-k: exactly log2 k bits (1 bit for a coin flip, 2 for four classes).
  assert metrics.topk_entropy_bits([[0.5, 0.5, 0.0]], 2) == pytest.approx(1.0, rel=1e-12)
  assert metrics.topk_entropy_bits([[0.25] * 4], 4) == pytest.approx(2.0, rel=1e-12)
