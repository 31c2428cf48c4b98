"""Information-theoretic similarity of two labelings of the same examples (seed 004,
Wang & Feng, "Delving into Fine-Grained Emotion Classification", Section 3.2.3, Eq. 2-7,
Table 3).

All quantities are in **bits** (log base 2, as the document's equations), float64:

* Eq. 2 `entropy_bits`: H(X) = -sum_x p(x) log2 p(x);
* Eq. 3 `joint_entropy_bits`: H(X, Y) = -sum_{x,y} p(x, y) log2 p(x, y);
* Eq. 4 `mutual_information_bits`: I(X; Y) = sum_{x,y} p(x, y) log2 p(x, y) / (p(x) p(y));
* Eq. 5-7 `nmi`: NMI_joint = I / H(X, Y) (the document's measure, Table 3) and
  NMI_max = I / max(H(X), H(Y)) (Nguyen et al., 2010).

The probabilities come from a contingency table (the document's Table 1): c_xy, the
number of data points with label x in task T and label y in task T', p(x, y) = c_xy / c,
p(x) = c_x. / c, p(y) = c_.y / c (Eq. 7). A labeling is either single-label (int class
ids [N]) or multi-label (0/1 multi-hot [N, K]). For multi-label data the document counts
"the number of data points with label l_x in task T and with label l'_y in task T'", and
its Section 5.1 remarks that an example with labels {1, 2} then weighs as much as two
examples with one label each ("we assign the same weight to the three labels"): so every
(example, label x, label y) triple with x among the example's T labels and y among its T'
labels is one count, c = A^T B for the indicator matrices A [N, N_T], B [N, M_T']. Single
label data are the special case of one-hot rows (one count per example). The marginal
entropies of Eq. 6 and 7 are those of the table's margins c_x., c_.y (for a multi-label
X, c_x. weighs each example's label x by its number of Y labels; `entropy_bits` of a
labeling alone counts each (example, label) pair once, the same when every example has
exactly one Y label).

Conventions (as scikit-learn's `mutual_info_score` / `normalized_mutual_info_score`):
empty cells contribute 0; the mutual information is clipped at 0 (rounding can make an
exact 0 come out as -1e-17); a normalised score whose denominator is 0 (both labelings
constant: I = 0 too) is 1.0.

`task_similarity_rows(data_dir)` gives Table 3: the 28-label GoEmotions task against its
sentiment and Ekman coarse labelings (`lcl_jax.data.goemotions.coarse_labels`) on train,
validation and test, with the document's numbers beside ours.
"""
from __future__ import annotations

import math
import os
from typing import Any, Sequence

import numpy as np

NORMALIZATIONS = ("joint", "max")
SPLITS = ("train", "validation", "test")
AUXILIARY_TASKS = ("sentiment", "ekman")  # Table 3's rows, in its order


def _indicators(labels: Any, name: str) -> np.ndarray:
  """int64 [N, K] 0/1 indicators of a labeling: one-hot rows for class ids [N], the
  matrix itself for multi-hot [N, K]."""
  x = np.asarray(labels)
  if x.ndim == 1:
    if x.size and (not np.issubdtype(x.dtype, np.integer) or x.min() < 0):
      raise ValueError(f"{name}: single-label class ids must be integers >= 0, got dtype "
                       f"{x.dtype}" + (f", min {x.min()}" if x.size else ""))
    out = np.zeros((len(x), int(x.max()) + 1 if x.size else 0), np.int64)
    out[np.arange(len(x)), x.astype(np.int64)] = 1
    return out
  if x.ndim == 2:
    if not (np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_) or (
        x.size and not np.isin(x, (0, 1)).all()):
      raise ValueError(f"{name}: a multi-label labeling must be 0/1 multi-hot [N, K]")
    return x.astype(np.int64)
  raise ValueError(f"{name}: expected class ids [N] or multi-hot [N, K], got shape {x.shape}")


def contingency_table(a: Any, b: Any) -> np.ndarray:
  """The document's Table 1 for two labelings of the same N examples.

  Args:
    a: task T's labels, int class ids [N] or 0/1 multi-hot [N, N_T].
    b: task T''s labels, the same forms (M_T' classes).

  Returns:
    int64 [N_T, M_T']: entry (x, y) counts the examples with label x in T and label y in
    T' (= A^T B of the indicator matrices; for single-label data, examples per cell).

  Raises:
    ValueError: different numbers of examples, or a malformed labeling.
  """
  ia, ib = _indicators(a, "a"), _indicators(b, "b")
  if len(ia) != len(ib):
    raise ValueError(f"the labelings cover {len(ia)} and {len(ib)} examples; they must "
                     "label the same examples")
  return ia.T @ ib


def _entropy_of_counts(counts: np.ndarray) -> float:
  counts = np.asarray(counts, np.float64).ravel()
  total = counts.sum()
  if total <= 0:
    raise ValueError("no counts: the labelings have no labels")
  p = counts[counts > 0] / total
  return float(-(p * np.log2(p)).sum())


def table_measures(table: Any) -> dict[str, float]:
  """Eq. 2-7 from a contingency table (counts >= 0, not all 0).

  Returns:
    ``{'pairs': c, 'entropy_a_bits': H(C) (row margins), 'entropy_b_bits': H(C')
    (column margins), 'joint_entropy_bits': H(C, C'), 'mutual_information_bits':
    I(C; C'), 'nmi_joint', 'nmi_max'}`` (bits; NMIs in [0, 1]).

  Raises:
    ValueError: not a 2-D table of finite counts >= 0 with a positive total.
  """
  c = np.asarray(table, np.float64)
  if c.ndim != 2 or not np.isfinite(c).all() or (c < 0).any():
    raise ValueError(f"a contingency table is a 2-D array of counts >= 0, got shape {c.shape}")
  total = c.sum()
  if total <= 0:
    raise ValueError("the contingency table is empty (total count 0)")
  rows, cols = c.sum(axis=1), c.sum(axis=0)
  i, j = np.nonzero(c)
  cell = c[i, j]
  # Eq. 7's numerator: sum_ij c_ij / c * log2(c_ij c / (c_i. c_.j)).
  mutual = float(np.sum(cell / total * (np.log2(cell) + math.log2(total)
                                        - np.log2(rows[i]) - np.log2(cols[j]))))
  mutual = max(mutual, 0.0)
  h_a, h_b, h_joint = (_entropy_of_counts(rows), _entropy_of_counts(cols),
                       _entropy_of_counts(cell))
  return {"pairs": float(total), "entropy_a_bits": h_a, "entropy_b_bits": h_b,
          "joint_entropy_bits": h_joint, "mutual_information_bits": mutual,
          "nmi_joint": mutual / h_joint if h_joint > 0 else 1.0,
          "nmi_max": mutual / max(h_a, h_b) if max(h_a, h_b) > 0 else 1.0}


def entropy_bits(labels: Any) -> float:
  """Eq. 2: H(X) in bits of one labeling (class ids [N], or multi-hot [N, K] with each
  (example, label) pair counted once).

  Raises:
    ValueError: a malformed labeling or one without any label.
  """
  return _entropy_of_counts(_indicators(labels, "labels").sum(axis=0))


def joint_entropy_bits(a: Any, b: Any) -> float:
  """Eq. 3: H(X, Y) in bits over `contingency_table(a, b)`."""
  return table_measures(contingency_table(a, b))["joint_entropy_bits"]


def mutual_information_bits(a: Any, b: Any) -> float:
  """Eq. 4: I(X; Y) in bits over `contingency_table(a, b)` (for class ids, scikit-learn's
  ``mutual_info_score(a, b) / ln 2``)."""
  return table_measures(contingency_table(a, b))["mutual_information_bits"]


def nmi(a: Any, b: Any, *, normalization: str = "joint") -> float:
  """Normalised mutual information of two labelings: Eq. 5/7 (``"joint"``: I / H(X, Y),
  the document's measure) or Eq. 6 (``"max"``: I / max(H(X), H(Y)), the margins of the
  contingency table). In [0, 1]; 1.0 when both labelings are constant.

  Raises:
    ValueError: an unknown `normalization` or malformed labelings.
  """
  if normalization not in NORMALIZATIONS:
    raise ValueError(f"normalization={normalization!r}; expected one of {NORMALIZATIONS}")
  return table_measures(contingency_table(a, b))[f"nmi_{normalization}"]


def task_similarity_rows(data_dir: os.PathLike[str] | str | None = None, *,
                         splits: Sequence[str] = SPLITS,
                         auxiliary_tasks: Sequence[str] = AUXILIARY_TASKS) -> list[dict[str, Any]]:
  """The document's Table 3 measured on the release: the 28-label GoEmotions task
  (``goemotions_multilabel``) against each coarse labeling of the same examples.

  Args:
    data_dir: the folder holding ``goemotions/`` (None: ``$LCL_DATA_DIR``).
    splits: canonical split names (train / validation / test).
    auxiliary_tasks: ``"sentiment"`` and / or ``"ekman"``.

  Returns:
    One dict a (task, split), tasks in the given order: ``auxiliary``, ``split``,
    ``examples`` (N), ``pairs`` (c, the table's total), every `table_measures` value
    (``entropy_a_bits`` = the 28-label task, ``entropy_b_bits`` = the coarse one),
    ``classes_main`` / ``classes_aux`` and ``document_nmi_joint`` (Table 3's number,
    `lcl_jax.studies.study_numbers.SEED004_TABLE3_NMI`).

  Raises:
    ValueError: an unknown split or task.
    lcl_jax.data.files.DataFileNotFoundError / MalformedRowError: missing or bad files.
  """
  from lcl_jax import data as data_lib
  from lcl_jax.data import goemotions
  from lcl_jax.studies.study_numbers import SEED004_TABLE3_NMI

  for task in auxiliary_tasks:
    if task not in goemotions.COARSE_GROUPINGS:
      raise ValueError(f"auxiliary task {task!r}; expected one of {goemotions.COARSE_GROUPINGS}")
  for split in splits:
    if split not in SPLITS:
      raise ValueError(f"split {split!r}; expected one of {SPLITS}")
  labels = {split: np.asarray(data_lib.load_split("goemotions_multilabel", split,
                                                  data_dir=data_dir).labels)
            for split in splits}
  rows = []
  for task in auxiliary_tasks:
    names = goemotions.coarse_label_names(task, data_dir)
    for split in splits:
      coarse = goemotions.coarse_labels(labels[split], task, data_dir)
      measures = table_measures(contingency_table(labels[split], coarse))
      rows.append({"auxiliary": task, "split": split, "examples": len(labels[split]),
                   **measures, "classes_main": len(goemotions.EMOTIONS),
                   "classes_aux": len(names),
                   "document_nmi_joint": SEED004_TABLE3_NMI[task][split]})
  return rows


def table3_markdown(rows: Sequence[dict[str, Any]]) -> str:
  """Table 3 as Markdown: one line per auxiliary task, per split our NMI_joint (and
  NMI_max) beside the document's NMI_joint."""
  tasks = list(dict.fromkeys(r["auxiliary"] for r in rows))
  splits = list(dict.fromkeys(r["split"] for r in rows))
  label = {"sentiment": "Aux (senti)", "ekman": "Aux (ekman)"}
  header = ["task"] + [f"{s}: ours NMI_joint / NMI_max / document" for s in splits]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for task in tasks:
    cells = [label.get(task, task)]
    for split in splits:
      r = next(r for r in rows if r["auxiliary"] == task and r["split"] == split)
      cells.append(f"{r['nmi_joint']:.4f} / {r['nmi_max']:.4f} / {r['document_nmi_joint']:.3g}")
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"
