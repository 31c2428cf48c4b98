"""Host-side evaluation metrics (NumPy), as reported by Suresh & Ong (2021).

* :func:`classification_metrics` -- accuracy, weighted F1 (the paper's Appendix Eq. 8:
  per-class F1 weighted by the class's share of the true labels, i.e.
  scikit-learn's ``f1_score(average='weighted')``, which the authors' release uses) and
  macro F1.
* :func:`multilabel_metrics` -- micro/macro/weighted precision, recall and F1 and
  exact-match accuracy of multi-hot predictions (GoEmotions-28), and
  :func:`per_class_metrics` -- per-class P/R/F1, support and the std over classes
  (seed 000's Table 5), with scikit-learn's ``zero_division=0`` semantics.
* :func:`confusion_matrix` -- ``[C, C]`` counts, rows = true class, columns = predicted.
* :func:`topk_entropy_bits` and :func:`topk_entropy_curve_bits` (k = 2..C as a
  ``[C - 1]`` array) -- the paper's Eq. 7 (Fig. 2): the entropy **in bits** (log base
  2, as Eq. 7) of the renormalised top-k predicted probabilities, averaged over
  examples, a measure of how confusable the top-k candidate classes are.

Accuracy, F1 and the confusion matrix are scikit-learn's (``sklearn.metrics``); this
module adds the argument checks and what scikit-learn lacks (Eq. 7's top-k entropy).

All functions take array-likes (NumPy, JAX or lists), validate shapes and values and
raise ``ValueError`` naming the argument and the shape otherwise, and return Python
floats / NumPy arrays.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "classification_metrics",
    "confusion_matrix",
    "multilabel_metrics",
    "per_class_metrics",
    "topk_entropy_bits",
    "topk_entropy_curve_bits",
]


def _skm():
  """`sklearn.metrics`, imported at the first metric computed, not with this module:
  importing it (and scipy with it) costs ~1.5 CPU-s, and `experiments.predict` imports
  this module (through `train.evaluation`) without computing any metric (issue 19 item
  6: one predict call under 5 s)."""
  import sklearn.metrics  # pylint: disable=g-import-not-at-top
  return sklearn.metrics


# --------------------------------------------------------------------------------------
# Validation.
# --------------------------------------------------------------------------------------


def _class_indices(fn: str, name: str, values: Any, num_classes: int) -> np.ndarray:
  array = np.asarray(values)
  if array.ndim != 1:
    raise ValueError(f"{fn}: `{name}` must have shape [N]; got shape {array.shape}")
  if array.size and not np.issubdtype(array.dtype, np.integer):
    if not (np.issubdtype(array.dtype, np.floating) and np.all(array == np.round(array))):
      raise ValueError(
          f"{fn}: `{name}` must hold integer class indices; got dtype {array.dtype}"
      )
  array = array.astype(np.int64)
  if array.size and (array.min() < 0 or array.max() >= num_classes):
    raise ValueError(
        f"{fn}: `{name}` must lie in [0, {num_classes}); got values in "
        f"[{array.min()}, {array.max()}]"
    )
  return array


def _check_num_classes(fn: str, num_classes: Any) -> int:
  is_integer = isinstance(num_classes, (int, np.integer)) and not isinstance(num_classes, bool)
  if not is_integer or num_classes < 1:
    raise ValueError(f"{fn}: `num_classes` must be a positive integer; got {num_classes!r}")
  return int(num_classes)


def _multi_hot(fn: str, name: str, values: Any) -> np.ndarray:
  array = np.asarray(values)
  if array.ndim != 2:
    raise ValueError(f"{fn}: `{name}` must be multi-hot with shape [N, C]; got shape {array.shape}")
  if array.size and not np.isin(array, (0, 1)).all():
    raise ValueError(f"{fn}: `{name}` must contain only 0/1 (or bools); got other values")
  return array.astype(bool)


# --------------------------------------------------------------------------------------
# Single-label classification (scikit-learn).
# --------------------------------------------------------------------------------------


def _checked_pair(fn: str, labels: Any, predictions: Any, num_classes: Any):
  num_classes = _check_num_classes(fn, num_classes)
  labels = _class_indices(fn, "labels", labels, num_classes)
  predictions = _class_indices(fn, "predictions", predictions, num_classes)
  if labels.shape != predictions.shape:
    raise ValueError(
        f"{fn}: `labels` {labels.shape} and `predictions` {predictions.shape} must have "
        "the same shape"
    )
  return labels, predictions, num_classes


def confusion_matrix(labels: Any, predictions: Any, *, num_classes: int) -> np.ndarray:
  """Counts of (true class, predicted class) pairs (``sklearn.metrics.confusion_matrix``).

  Args:
    labels: [N] integer true classes in [0, num_classes).
    predictions: [N] integer predicted classes in [0, num_classes).
    num_classes: C.

  Returns:
    int64 [C, C]; entry [t, p] counts examples of class t predicted as p
    (scikit-learn's convention), every class a row/column even when absent.

  Raises:
    ValueError: a shape, range or dtype the arguments must not have.

  Example:
    >>> confusion_matrix([0, 1, 1, 2], [0, 2, 1, 2], num_classes=3)
    array([[1, 0, 0],
           [0, 1, 1],
           [0, 0, 1]])
  """
  labels, predictions, num_classes = _checked_pair(
      "confusion_matrix", labels, predictions, num_classes)
  if labels.size == 0:
    return np.zeros((num_classes, num_classes), np.int64)
  return _skm().confusion_matrix(labels, predictions,
                                labels=np.arange(num_classes)).astype(np.int64)


def classification_metrics(labels: Any, predictions: Any, *, num_classes: int) -> dict[str, float]:
  """Accuracy, weighted F1 and macro F1 of single-label predictions (scikit-learn).

  Per class c: F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c), i.e. the harmonic mean of
  precision and recall (0 when the class has TP = 0, ``zero_division=0``).

  * ``weighted_f1`` = sum_c (n_c / N) F1_c with n_c the number of true examples of
    class c -- the paper's Appendix Eq. 8 and scikit-learn's ``average='weighted'``.
    Classes that never occur in ``labels`` get weight 0.
  * ``macro_f1`` = the unweighted mean of F1_c over the classes that occur in
    ``labels`` or ``predictions`` (scikit-learn's ``f1_score(average='macro')``
    without ``labels=``, as in the authors' release). A class absent from both is
    not counted; a class only in ``labels`` (never predicted) or only in
    ``predictions`` counts with F1 = 0.

  Args:
    labels: [N] integer true classes in [0, num_classes), N >= 1.
    predictions: [N] integer predicted classes in [0, num_classes).
    num_classes: C.

  Returns:
    ``{'accuracy', 'weighted_f1', 'macro_f1'}``, floats in [0, 1].

  Raises:
    ValueError: malformed or empty arguments.

  Example:
    >>> m = classification_metrics([0, 0, 1, 2], [0, 1, 1, 1], num_classes=4)
    >>> print({k: round(v, 4) for k, v in m.items()})
    {'accuracy': 0.5, 'weighted_f1': 0.4583, 'macro_f1': 0.3889}
  """
  fn = "classification_metrics"
  labels, predictions, _ = _checked_pair(fn, labels, predictions, num_classes)
  if labels.size == 0:
    raise ValueError(f"{fn}: `labels` and `predictions` must not be empty")
  skm = _skm()
  return {
      "accuracy": float(skm.accuracy_score(labels, predictions)),
      "weighted_f1": float(skm.f1_score(labels, predictions, average="weighted",
                                        zero_division=0)),
      "macro_f1": float(skm.f1_score(labels, predictions, average="macro", zero_division=0)),
  }


# --------------------------------------------------------------------------------------
# Multi-label classification (scikit-learn).
# --------------------------------------------------------------------------------------


def _checked_multi_hot_pair(fn: str, label_sets: Any, predicted_sets: Any):
  truth = _multi_hot(fn, "label_sets", label_sets)
  predicted = _multi_hot(fn, "predicted_sets", predicted_sets)
  if truth.shape != predicted.shape:
    raise ValueError(
        f"{fn}: `label_sets` {truth.shape} and `predicted_sets` {predicted.shape} must have "
        "the same shape"
    )
  if truth.size == 0:
    raise ValueError(f"{fn}: `label_sets` must not be empty; got shape {truth.shape}")
  return truth, predicted


def multilabel_metrics(label_sets: Any, predicted_sets: Any) -> dict[str, float]:
  """Micro / macro / weighted precision, recall and F1 and exact-match accuracy.

  scikit-learn's ``precision_recall_fscore_support`` on the [N, C] indicator
  matrices with ``zero_division=0``: micro averages pool TP/FP/FN over classes;
  macro averages take the unweighted mean over ALL C columns (a class never
  predicted has P_c = 0, one never present R_c = 0, one absent from both F1_c = 0
  and still counts); weighted averages weight each class by its support (true
  count). ``exact_match`` is scikit-learn's multi-label ``accuracy_score``: the
  share of rows whose predicted label set equals the true set exactly (seed 003's
  "Acc").

  Args:
    label_sets: [N, C] multi-hot true labels (0/1 integers or bools), N, C >= 1.
    predicted_sets: [N, C] multi-hot predictions (e.g. sigmoid(logits) >= 0.5).

  Returns:
    ``{'micro_precision', 'micro_recall', 'micro_f1', 'macro_precision',
    'macro_recall', 'macro_f1', 'weighted_precision', 'weighted_recall',
    'weighted_f1', 'exact_match'}``, floats in [0, 1].

  Raises:
    ValueError: not [N, C] 0/1 arrays of the same shape, or empty.

  Example:
    >>> m = multilabel_metrics([[1, 0, 0], [1, 1, 0]], [[1, 0, 0], [0, 1, 1]])
    >>> print({k: round(v, 4) for k, v in m.items()})  # doctest: +NORMALIZE_WHITESPACE
    {'micro_precision': 0.6667, 'micro_recall': 0.6667, 'micro_f1': 0.6667,
     'macro_precision': 0.6667, 'macro_recall': 0.5, 'macro_f1': 0.5556,
     'weighted_precision': 1.0, 'weighted_recall': 0.6667, 'weighted_f1': 0.7778,
     'exact_match': 0.5}
  """
  truth, predicted = _checked_multi_hot_pair("multilabel_metrics", label_sets, predicted_sets)
  result: dict[str, float] = {}
  for average in ("micro", "macro", "weighted"):
    if average == "weighted" and not truth.any():
      p = r = f = 0.0  # no support anywhere: scikit-learn would divide by 0
    else:
      p, r, f, _ = _skm().precision_recall_fscore_support(
          truth, predicted, average=average, zero_division=0)
    result.update({f"{average}_precision": float(p), f"{average}_recall": float(r),
                   f"{average}_f1": float(f)})
  result["exact_match"] = float(_skm().accuracy_score(truth, predicted))
  return result


def per_class_metrics(label_sets: Any, predicted_sets: Any) -> dict[str, np.ndarray | dict]:
  """Per-class precision, recall, F1 and support, and their spread over classes.

  scikit-learn's ``precision_recall_fscore_support(average=None, zero_division=0)``;
  the ``std`` entries are the population standard deviation (``ddof=0``) of the
  per-class values over the C classes -- seed 000's Table 5 "std" row (its printed
  0.18 / 0.19 / 0.17 are reproduced from its own per-class columns with ddof=0,
  not ddof=1, which gives 0.20 for recall).

  Args:
    label_sets: [N, C] multi-hot true labels.
    predicted_sets: [N, C] multi-hot predictions.

  Returns:
    ``{'precision', 'recall', 'f1'}``: float64 [C]; ``'support'``: int64 [C]
    (true count per class); ``'std'``: ``{'precision', 'recall', 'f1'}`` floats.

  Raises:
    ValueError: as :func:`multilabel_metrics`.
  """
  truth, predicted = _checked_multi_hot_pair("per_class_metrics", label_sets, predicted_sets)
  p, r, f, support = _skm().precision_recall_fscore_support(
      truth, predicted, average=None, zero_division=0)
  out = {"precision": p.astype(np.float64), "recall": r.astype(np.float64),
         "f1": f.astype(np.float64), "support": support.astype(np.int64)}
  out["std"] = {k: float(np.std(out[k])) for k in ("precision", "recall", "f1")}
  return out


# --------------------------------------------------------------------------------------
# Top-k prediction entropy (Eq. 7, Fig. 2).
# --------------------------------------------------------------------------------------


def _prefix_entropies(fn: str, probabilities: Any) -> np.ndarray:
  """[N, C]: entry [n, k-1] is the entropy (bits) of example n's renormalised top-k."""
  p = np.asarray(probabilities, dtype=np.float64)
  if p.ndim != 2 or p.shape[0] == 0 or p.shape[1] == 0:
    raise ValueError(
        f"{fn}: `probabilities` must have shape [N, C] with N, C >= 1; got shape {p.shape}"
    )
  if not np.isfinite(p).all() or (p < 0).any():
    raise ValueError(f"{fn}: `probabilities` must be finite and non-negative")
  if (p.max(axis=1) <= 0).any():
    raise ValueError(f"{fn}: every row of `probabilities` needs positive mass")
  top = -np.sort(-p, axis=1)  # descending
  mass = np.cumsum(top, axis=1)  # S_k
  p_log_p = np.where(top > 0, top * np.log(np.where(top > 0, top, 1.0)), 0.0)
  # NOTE: H_k = -sum_{j<=k} (p_j/S_k) log(p_j/S_k) = log S_k - (sum_{j<=k} p_j log p_j)/S_k.
  entropies = (np.log(mass) - np.cumsum(p_log_p, axis=1) / mass) / np.log(2.0)  # nats -> bits
  entropies[:, 0] = 0.0  # exactly, instead of a +-1e-17 round-off
  return np.maximum(entropies, 0.0)


def topk_entropy_bits(probabilities: Any, k: int) -> float:
  """Mean entropy in bits of the renormalised top-k predicted probabilities (Eq. 7).

  For each example take its k largest probabilities, divide them by their sum and
  compute the entropy -sum_j q_j log2 q_j (base 2 as the paper's Eq. 7, so bits;
  0 log 0 = 0); average over the N examples. Ranges from 0 (the top class takes all
  the top-k mass) to log2 k bits (the top k classes are equally likely: 1 bit for
  k = 2). Rows need not sum to 1 (the renormalisation makes the scale irrelevant),
  but must be non-negative. Multiply by ln 2 for nats.

  Args:
    probabilities: [N, C] predicted class probabilities (e.g. softmax outputs).
    k: number of top classes, 1 <= k <= C.

  Returns:
    The mean entropy in bits.

  Raises:
    ValueError: `probabilities` not [N, C] finite non-negative with positive mass per
      row, or `k` not an integer in [1, C].

  Example:
    >>> print(f"{topk_entropy_bits([[0.5, 0.3, 0.2], [0.9, 0.05, 0.05]], 2):.4f}")
    0.6260
    >>> topk_entropy_bits([[0.25, 0.25, 0.25, 0.25]], 4)  # 4 equally likely: 2 bits
    2.0
  """
  fn = "topk_entropy_bits"
  entropies = _prefix_entropies(fn, probabilities)
  num_classes = entropies.shape[1]
  if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= num_classes:
    raise ValueError(f"{fn}: `k` must be an integer in [1, {num_classes}] (C); got {k!r}")
  return float(entropies[:, k - 1].mean())


def topk_entropy_curve_bits(probabilities: Any) -> np.ndarray:
  """:func:`topk_entropy_bits` for every k = 2..C (the x-axis of the paper's Fig. 2).

  Computed in one pass (one sort, prefix sums) rather than C - 1 calls.

  Args:
    probabilities: [N, C] predicted class probabilities, C >= 2.

  Returns:
    float64 [C - 1]; entry j is the mean top-k entropy in bits for k = j + 2.

  Example:
    >>> curve = topk_entropy_curve_bits([[0.5, 0.3, 0.2], [0.9, 0.05, 0.05]])
    >>> print(dict(zip(range(2, 4), curve.round(4).tolist())))
    {2: 0.626, 3: 1.0272}
  """
  fn = "topk_entropy_curve_bits"
  entropies = _prefix_entropies(fn, probabilities)
  if entropies.shape[1] < 2:
    raise ValueError(f"{fn}: `probabilities` needs C >= 2 classes; got shape {entropies.shape}")
  return entropies[:, 1:].mean(axis=0)
