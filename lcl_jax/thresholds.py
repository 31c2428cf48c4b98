"""Multi-label decision rules: a global threshold and per-class thresholds (host-side NumPy).

* :func:`apply_thresholds` -- ``probabilities >= thresholds`` per column (a scalar is
  a global threshold: 0.5 in seed 000, 0.3 in seed 004).
* :func:`fit_per_class_thresholds` -- for each class c, the candidate threshold that
  maximises class c's F1 on a fitting split (seed 003's "OptOnThreshold", which fits
  on the training split; lcl_jax fits on validation by default, see BUILD_NOTES).
* :func:`fit_thresholds` -- the same, reading the fitting split from a source object
  that is never asked for any other split (so a fit on validation never reads test).

Probabilities are sigmoid outputs in [0, 1]; label sets are [N, C] multi-hot.
"""
from __future__ import annotations

from typing import Any, Protocol

import numpy as np

__all__ = [
    "DEFAULT_CANDIDATES",
    "FIT_SPLITS",
    "apply_thresholds",
    "fit_per_class_thresholds",
    "fit_thresholds",
]

# 0.01, 0.02, ..., 0.99: the grid the per-class search scans.
DEFAULT_CANDIDATES: np.ndarray = np.round(np.arange(1, 100) / 100.0, 2)
FIT_SPLITS = ("validation", "train")


def _check_scores(fn: str, label_sets: Any, probabilities: Any) -> tuple[np.ndarray, np.ndarray]:
  truth = np.asarray(label_sets)
  probs = np.asarray(probabilities, np.float64)
  if probs.ndim != 2 or probs.shape[0] == 0:
    raise ValueError(f"{fn}: `probabilities` must have shape [N, C] with N >= 1; "
                     f"got shape {probs.shape}")
  if truth.shape != probs.shape:
    raise ValueError(f"{fn}: `label_sets` {truth.shape} and `probabilities` {probs.shape} "
                     "must have the same shape")
  if not np.isin(truth, (0, 1)).all():
    raise ValueError(f"{fn}: `label_sets` must contain only 0/1")
  if not np.isfinite(probs).all():
    raise ValueError(f"{fn}: `probabilities` must be finite")
  return truth.astype(bool), probs


def apply_thresholds(probabilities: Any, thresholds: Any) -> np.ndarray:
  """Multi-hot predictions ``probabilities[:, c] >= thresholds[c]``.

  Args:
    probabilities: [N, C] sigmoid probabilities.
    thresholds: a float (global threshold) or [C] per-class thresholds.

  Returns:
    int32 [N, C] multi-hot predictions.

  Raises:
    ValueError: `probabilities` not [N, C], or `thresholds` neither a scalar nor [C].
  """
  probs = np.asarray(probabilities, np.float64)
  t = np.asarray(thresholds, np.float64)
  if probs.ndim != 2:
    raise ValueError(f"apply_thresholds: `probabilities` must be [N, C]; got {probs.shape}")
  if t.ndim not in (0, 1) or (t.ndim == 1 and t.shape[0] != probs.shape[1]):
    raise ValueError(f"apply_thresholds: `thresholds` must be a scalar or [{probs.shape[1]}] "
                     f"(one per class); got shape {t.shape}")
  return (probs >= t).astype(np.int32)


def fit_per_class_thresholds(label_sets: Any, probabilities: Any, *,
                             candidates: Any = DEFAULT_CANDIDATES,
                             default: float = 0.5) -> np.ndarray:
  """Per class, the candidate threshold with the highest F1 on these rows.

  For class c and candidate t, the class's predictions are ``p[:, c] >= t`` and its
  F1 is 2 TP / (2 TP + FP + FN) (0 when TP = 0). The smallest t attaining the maximum
  wins (ties). A class whose best F1 is 0 (no positive row, or none ever ranked above
  a candidate) has nothing to fit and keeps `default`.

  Args:
    label_sets: [N, C] multi-hot true labels of the fitting split.
    probabilities: [N, C] sigmoid probabilities of the same rows.
    candidates: [T] increasing thresholds in (0, 1) to scan (default 0.01 ... 0.99).
    default: threshold of classes with no positive F1 (the global threshold).

  Returns:
    float64 [C] thresholds, each one of `candidates` or `default`.

  Raises:
    ValueError: mis-shaped inputs, non-0/1 labels, or candidates not increasing in (0, 1).
  """
  fn = "fit_per_class_thresholds"
  truth, probs = _check_scores(fn, label_sets, probabilities)
  grid = np.asarray(candidates, np.float64)
  if grid.ndim != 1 or grid.size == 0 or not (np.all(grid > 0) and np.all(grid < 1)) or (
      np.any(np.diff(grid) <= 0)):
    raise ValueError(f"{fn}: `candidates` must be a non-empty increasing [T] array in (0, 1)")
  positives = truth.sum(axis=0)  # [C]
  best_f1 = np.zeros(probs.shape[1])
  best = np.full(probs.shape[1], float(default))
  for t in grid:  # T passes over [N, C]; host side, once per run
    predicted = probs >= t
    tp = np.sum(predicted & truth, axis=0)
    denominator = predicted.sum(axis=0) + positives  # 2TP + FP + FN
    f1 = np.divide(2.0 * tp, denominator, out=np.zeros(len(tp)), where=denominator > 0)
    better = f1 > best_f1
    best_f1 = np.where(better, f1, best_f1)
    best = np.where(better, t, best)
  return best


class ScoreSource(Protocol):
  """Gives the labels and probabilities of one named split (e.g. a finished run)."""

  def split_scores(self, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(label_sets [N, C], probabilities [N, C]) of split `name`."""


def fit_thresholds(source: ScoreSource, *, fit_split: str = "validation",
                   candidates: Any = DEFAULT_CANDIDATES, default: float = 0.5) -> np.ndarray:
  """Per-class thresholds fitted on `fit_split` of `source` only (never 'test').

  Raises:
    ValueError: `fit_split` is not one of FIT_SPLITS ('validation', 'train').
  """
  if fit_split not in FIT_SPLITS:
    raise ValueError(f"fit_split={fit_split!r}: per-class thresholds are fitted on one of "
                     f"{FIT_SPLITS}, never on test")
  labels, probs = source.split_scores(fit_split)
  return fit_per_class_thresholds(labels, probs, candidates=candidates, default=default)
