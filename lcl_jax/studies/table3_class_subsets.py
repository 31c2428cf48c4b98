"""Table 3's data-driven selection of hard (mutually confusable) class subsets.

The paper (Sec. 5.3): train a CE model on all 32 Empathetic Dialogues classes, take its
32 x 32 confusion matrix on the validation set, score every 4-class combination
(C(32, 4) = 35,960) by the sum of its off-diagonal entries -- how often the model
mistakes one of the four for another of the four, in either direction -- pick the
highest-scoring combination, remove its classes, and repeat. The result is the
"4-hard-a".."4-hard-d" subsets.

Scoring is vectorised: all combinations are an int array `[N, k]` and their scores
one gather `confusion[c[:, :, None], c[:, None, :]]` (`[N, k, k]`) minus the diagonal.
Ties go to the first combination in lexicographic order of class ids (`np.argmax`).
"""
from __future__ import annotations

import dataclasses
import itertools
import math
import os
import pathlib
from typing import Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class HardSubset:
  """One selected subset: class ids (ascending), their names, and its score."""
  classes: tuple[int, ...]
  names: tuple[str, ...]
  score: float

  def as_dict(self) -> dict:
    return {"classes": list(self.classes), "names": list(self.names), "score": self.score}


def all_combinations(num_classes: int, size: int) -> np.ndarray:
  """Every `size`-class combination of `range(num_classes)`, lexicographic: int32 `[N, size]`."""
  if not 1 <= size <= num_classes:
    raise ValueError(f"subset size {size} must be in [1, num_classes={num_classes}]")
  flat = np.fromiter(itertools.chain.from_iterable(itertools.combinations(range(num_classes),
                                                                          size)),
                     dtype=np.int32, count=math.comb(num_classes, size) * size)
  return flat.reshape(-1, size)


def _check_confusion(confusion: np.ndarray) -> np.ndarray:
  m = np.asarray(confusion, dtype=np.float64)
  if m.ndim != 2 or m.shape[0] != m.shape[1]:
    raise ValueError(f"confusion matrix must be square [C, C]; got shape {m.shape}")
  if not np.all(np.isfinite(m)):
    raise ValueError("confusion matrix has non-finite entries")
  return m


def off_diagonal_scores(confusion: np.ndarray, combinations: np.ndarray) -> np.ndarray:
  """Sum of the off-diagonal entries of `confusion` restricted to each combination.

  Args:
    confusion: `[C, C]` (rows: true class, columns: predicted; the score is symmetric).
    combinations: int `[N, k]` class ids.

  Returns:
    float64 `[N]`: sum over i != j in the combination of `confusion[i, j]`.
  """
  m = _check_confusion(confusion)
  c = np.asarray(combinations)
  block = m[c[:, :, None], c[:, None, :]]  # [N, k, k]
  return block.sum(axis=(1, 2)) - np.trace(block, axis1=1, axis2=2)


def select_hard_subsets(confusion: np.ndarray, *, num_subsets: int = 4, size: int = 4,
                        label_names: Sequence[str] | None = None) -> list[HardSubset]:
  """The paper's greedy selection: best combination, exclude its classes, repeat.

  Args:
    confusion: `[C, C]` validation confusion matrix (counts, as in the paper).
    num_subsets: how many disjoint subsets to select (the paper: 4).
    size: classes per subset (the paper: 4).
    label_names: class names (default: the ids as strings).

  Returns:
    `num_subsets` disjoint subsets, in selection order.
  """
  m = _check_confusion(confusion)
  num_classes = m.shape[0]
  if num_subsets * size > num_classes:
    raise ValueError(f"{num_subsets} disjoint subsets of {size} need >= {num_subsets * size} "
                     f"classes; the confusion matrix has {num_classes}")
  names = tuple(label_names) if label_names is not None else tuple(map(str, range(num_classes)))
  if len(names) != num_classes:
    raise ValueError(f"{len(names)} label names for a {num_classes}-class confusion matrix")
  combos = all_combinations(num_classes, size)
  scores = off_diagonal_scores(m, combos)
  available = np.ones(len(combos), dtype=bool)
  chosen: list[HardSubset] = []
  for _ in range(num_subsets):
    best = int(np.argmax(np.where(available, scores, -np.inf)))
    classes = tuple(int(i) for i in combos[best])
    chosen.append(HardSubset(classes, tuple(names[i] for i in classes), float(scores[best])))
    available &= ~np.isin(combos, classes).any(axis=1)
  return chosen


def subset_score(confusion: np.ndarray, class_names: Sequence[str],
                 label_names: Sequence[str]) -> float:
  """The selection score of a named subset (e.g. one of the paper's) under `confusion`."""
  index = {name: i for i, name in enumerate(label_names)}
  missing = [n for n in class_names if n not in index]
  if missing:
    raise ValueError(f"classes {missing} are not among the labels {list(label_names)}")
  ids = np.asarray([[index[n] for n in class_names]])
  return float(off_diagonal_scores(confusion, ids)[0])


def validation_confusion(run_dir: str | os.PathLike, num_classes: int) -> np.ndarray:
  """`[C, C]` confusion matrix (rows true, columns predicted) of a finished run's
  best-epoch validation predictions (`predictions/best_validation.npz`)."""
  from lcl_jax import metrics  # pylint: disable=g-import-not-at-top

  path = pathlib.Path(run_dir) / "predictions" / "best_validation.npz"
  if not path.is_file():
    raise FileNotFoundError(f"{path} not found: the selection run has not finished an "
                            "epoch yet, or its files were moved or deleted")
  with np.load(path) as data:
    labels, predictions = np.asarray(data["labels"]), np.asarray(data["predictions"])
  if labels.ndim != 1:
    raise ValueError(f"{path}: single-label predictions expected; labels have shape "
                     f"{labels.shape}")
  return np.asarray(metrics.confusion_matrix(labels, predictions, num_classes=num_classes))
