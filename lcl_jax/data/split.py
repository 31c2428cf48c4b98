"""The :class:`Split` type: one split of a text-classification dataset, in memory.

Every reader in :mod:`lcl_jax.data` returns a :class:`Split`; batching, augmentation
and the trainer consume it. Shapes (``N`` examples, ``C`` classes):

* ``texts``: ``tuple[str, ...]`` of length ``N`` (empty strings are valid examples);
* ``labels``: int32 ``[N]`` class ids in ``[0, C)`` (single-label) or int32 multi-hot
  ``[N, C]`` with entries in ``{0, 1}`` (multi-label);
* ``label_names``: ``tuple[str, ...]`` of length ``C``; ``label_names[k]`` names id
  ``k`` (column ``k`` of a multi-hot matrix).

A ``Split`` is immutable: ``texts`` is a tuple and ``labels`` is a read-only array, so
one object can be shared (e.g. cached) without defensive copies.

Also here: the canonical split names (:data:`SPLIT_NAMES`, with the aliases ``dev``,
``valid``, ``val``) and :func:`stratified_partition`, the seeded stratified splitter
used for datasets released without a split (ISEAR) or without a validation split
(AG News).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

SPLIT_NAMES: tuple[str, ...] = ("train", "validation", "test")
SPLIT_ALIASES: Mapping[str, str] = {"dev": "validation", "valid": "validation",
                                    "val": "validation"}


def canonical_split_name(split: str) -> str:
  """Maps ``split`` (``train``/``validation``/``test`` or an alias) to its canonical name.

  Raises:
    ValueError: ``split`` is not a known split name or alias.
  """
  if not isinstance(split, str):
    raise ValueError(f"split must be a string, got {split!r}")
  key = split.strip().lower()
  if key in SPLIT_NAMES:
    return key
  if key in SPLIT_ALIASES:
    return SPLIT_ALIASES[key]
  raise ValueError(
      f"unknown split {split!r}; expected one of {list(SPLIT_NAMES)} "
      f"(aliases: {', '.join(f'{a}->{c}' for a, c in SPLIT_ALIASES.items())})")


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Split:
  """One split of a labelled text dataset (see the module docstring for shapes).

  Attributes:
    dataset: registry name of the dataset, e.g. ``"goemotions"`` or ``"synthetic"``.
    split: ``"train"``, ``"validation"`` or ``"test"`` (or a derived name such as
      ``"train[:32]"`` for a :meth:`head`).
    texts: the ``N`` input texts.
    labels: int32 ``[N]`` class ids, or int32 multi-hot ``[N, C]`` if ``multilabel``.
    label_names: the ``C`` class names, index = class id.
    multilabel: whether ``labels`` is a multi-hot matrix.
  """

  dataset: str
  split: str
  texts: tuple[str, ...]
  labels: np.ndarray
  label_names: tuple[str, ...]
  multilabel: bool = False

  def __post_init__(self) -> None:
    texts = tuple(self.texts)
    for i, text in enumerate(texts):
      if not isinstance(text, str):
        raise ValueError(f"Split({self.dataset!r}, {self.split!r}): texts[{i}] is "
                         f"{type(text).__name__}, expected str")
    names = tuple(self.label_names)
    if not names or not all(isinstance(n, str) and n for n in names):
      raise ValueError(f"Split({self.dataset!r}, {self.split!r}): label_names must be "
                       f"a non-empty sequence of non-empty strings, got {names!r}")
    if len(set(names)) != len(names):
      raise ValueError(f"Split({self.dataset!r}, {self.split!r}): duplicate label "
                       f"names in {names!r}")
    raw = np.asarray(self.labels)
    if raw.size and not np.issubdtype(raw.dtype, np.integer) and raw.dtype != np.bool_:
      raise ValueError(f"Split({self.dataset!r}, {self.split!r}): labels must be "
                       f"integers, got dtype {raw.dtype}")
    num_classes = len(names)
    if self.multilabel:
      raw = raw.reshape(0, num_classes) if raw.size == 0 else raw
      if raw.shape != (len(texts), num_classes):
        raise ValueError(
            f"Split({self.dataset!r}, {self.split!r}): multi-label labels must have "
            f"shape [N, C] = {(len(texts), num_classes)}, got {raw.shape}")
      if raw.size and not np.isin(raw, (0, 1)).all():
        raise ValueError(f"Split({self.dataset!r}, {self.split!r}): multi-hot labels "
                         "must be 0 or 1")
    else:
      raw = raw.reshape(0) if raw.size == 0 else raw
      if raw.shape != (len(texts),):
        raise ValueError(
            f"Split({self.dataset!r}, {self.split!r}): single-label labels must have "
            f"shape [N] = {(len(texts),)}, got {raw.shape}")
      if raw.size and (raw.min() < 0 or raw.max() >= num_classes):
        raise ValueError(
            f"Split({self.dataset!r}, {self.split!r}): label ids must lie in "
            f"[0, {num_classes}), got min {raw.min()} max {raw.max()}")
    labels = np.array(raw, dtype=np.int32, copy=True)
    labels.setflags(write=False)
    object.__setattr__(self, "texts", texts)
    object.__setattr__(self, "label_names", names)
    object.__setattr__(self, "labels", labels)
    object.__setattr__(self, "multilabel", bool(self.multilabel))

  @property
  def num_classes(self) -> int:
    """``C``, the number of classes (columns of a multi-hot matrix)."""
    return len(self.label_names)

  def __len__(self) -> int:
    return len(self.texts)

  def __repr__(self) -> str:
    return (f"Split(dataset={self.dataset!r}, split={self.split!r}, n={len(self)}, "
            f"num_classes={self.num_classes}, multilabel={self.multilabel})")

  def __eq__(self, other: object) -> bool:
    if not isinstance(other, Split):
      return NotImplemented
    return (self.dataset == other.dataset and self.split == other.split
            and self.multilabel == other.multilabel
            and self.label_names == other.label_names and self.texts == other.texts
            and np.array_equal(self.labels, other.labels))

  __hash__ = None  # type: ignore[assignment]

  def class_counts(self) -> np.ndarray:
    """int64 ``[C]``: examples per class (for multi-label: examples carrying it)."""
    if self.multilabel:
      return self.labels.sum(axis=0, dtype=np.int64)
    return np.bincount(self.labels, minlength=self.num_classes).astype(np.int64)

  def subset(self, indices: Sequence[int] | np.ndarray, *,
             split: str | None = None) -> Split:
    """The examples at ``indices`` (int positions in the given order, or a bool mask).

    Args:
      indices: int positions ``[M]`` (may repeat or reorder) or a bool mask ``[N]``.
      split: name of the result's split; defaults to this split's name.
    """
    idx = np.asarray(indices)
    if idx.dtype == np.bool_:
      if idx.shape != (len(self),):
        raise ValueError(f"boolean mask must have shape {(len(self),)}, got {idx.shape}")
      idx = np.flatnonzero(idx)
    elif idx.size == 0:
      idx = idx.reshape(0).astype(np.int64)
    elif not np.issubdtype(idx.dtype, np.integer) or idx.ndim != 1:
      raise ValueError(f"indices must be a 1-D int array or bool mask, got "
                       f"dtype {idx.dtype} shape {idx.shape}")
    if idx.size and (idx.min() < -len(self) or idx.max() >= len(self)):
      raise IndexError(f"indices out of range for a split of {len(self)} examples")
    return Split(dataset=self.dataset, split=self.split if split is None else split,
                 texts=tuple(self.texts[i] for i in idx.tolist()),
                 labels=self.labels[idx], label_names=self.label_names,
                 multilabel=self.multilabel)

  def head(self, n: int) -> Split:
    """The first ``min(n, N)`` examples (for smoke runs); split name ``"<split>[:n]"``."""
    if n < 0:
      raise ValueError(f"head(n) needs n >= 0, got {n}")
    return self.subset(np.arange(min(n, len(self))), split=f"{self.split}[:{n}]")

  def select_classes(self, classes: Iterable[str], *, dataset: str | None = None) -> Split:
    """Keeps the examples of ``classes`` and re-indexes them ``0..len(classes)-1``.

    The new class ids follow the order of ``classes`` (as the authors' subset code
    does with ``label_list.index(label)``); examples keep their relative order.

    Args:
      classes: class names, each in :attr:`label_names`, without repeats.
      dataset: name of the result's dataset; defaults to this split's name.

    Raises:
      ValueError: a multi-label split, an unknown class (the message lists the known
        ones), a repeated class or an empty list.
    """
    if self.multilabel:
      raise ValueError(f"{self.dataset}: class subsets are only defined for "
                       "single-label datasets")
    if isinstance(classes, str):
      raise ValueError(f"classes must be a list of class names, got the string "
                       f"{classes!r}")
    wanted = list(classes)
    if not wanted:
      raise ValueError(f"{self.dataset}: classes must name at least one class")
    unknown = [c for c in wanted if c not in self.label_names]
    if unknown:
      raise ValueError(f"{self.dataset}: unknown class(es) {unknown}; known classes: "
                       f"{', '.join(self.label_names)}")
    if len(set(wanted)) != len(wanted):
      raise ValueError(f"{self.dataset}: classes repeat a name: {wanted}")
    remap = np.full(self.num_classes, -1, dtype=np.int64)
    for new_id, name in enumerate(wanted):
      remap[self.label_names.index(name)] = new_id
    new_labels = remap[self.labels]
    keep = np.flatnonzero(new_labels >= 0)
    return Split(dataset=self.dataset if dataset is None else dataset, split=self.split,
                 texts=tuple(self.texts[i] for i in keep.tolist()),
                 labels=new_labels[keep], label_names=tuple(wanted), multilabel=False)


def _largest_remainder(quotas: np.ndarray, total: int, cap: np.ndarray) -> np.ndarray:
  """Integer allocation of ``total`` with each entry ``floor(q)`` or ``ceil(q)``."""
  alloc = np.floor(quotas).astype(np.int64)
  short = total - int(alloc.sum())
  order = np.lexsort((np.arange(len(quotas)), -(quotas - alloc)))
  for k in order:
    if short == 0:
      break
    if alloc[k] < cap[k] and quotas[k] > alloc[k]:
      alloc[k] += 1
      short -= 1
  return alloc


def _controlled_rounding(quotas: np.ndarray, row_totals: np.ndarray,
                         col_totals: np.ndarray) -> np.ndarray:
  """Rounds a ``[C, S]`` table of quotas to integers keeping row and column totals.

  Every cell becomes ``floor(q)`` or ``ceil(q)``. The row and column totals of
  ``quotas`` must equal ``row_totals`` / ``col_totals`` (integers), in which case such
  a rounding exists (Cox, 1987, "A constructive procedure for unbiased controlled
  rounding"). We search it class by class, preferring cells with larger remainders.
  """
  base = np.floor(quotas + 1e-9).astype(np.int64)
  frac = quotas - base
  need_rows = row_totals - base.sum(axis=1)
  need_cols = col_totals - base.sum(axis=0)
  num_rows, num_cols = quotas.shape
  can_round_up = frac > 1e-9
  result = np.zeros_like(base)

  def options(row: int) -> list[tuple[int, ...]]:
    cols = [c for c in range(num_cols) if can_round_up[row, c]]
    combos = list(itertools.combinations(cols, int(need_rows[row])))
    combos.sort(key=lambda cs: (-sum(frac[row, c] for c in cs), cs))
    return combos

  def search(row: int, cols_left: np.ndarray) -> bool:
    if row == num_rows:
      return not cols_left.any()
    # Prune: the remaining rows must be able to fill every column's need.
    rest_capacity = can_round_up[row:].sum(axis=0)
    if (cols_left > rest_capacity).any() or need_rows[row:].sum() != cols_left.sum():
      return False
    for combo in options(row):
      if any(cols_left[c] == 0 for c in combo):
        continue
      result[row] = 0
      result[row, list(combo)] = 1
      cols_left[list(combo)] -= 1
      if search(row + 1, cols_left):
        return True
      cols_left[list(combo)] += 1
    result[row] = 0
    return False

  if (need_rows < 0).any() or (need_cols < 0).any() or not search(0, need_cols.copy()):
    raise RuntimeError("no controlled rounding found (totals inconsistent with quotas)")
  return base + result


def stratified_partition(labels: np.ndarray, sizes: Sequence[int], *,
                         seed: int) -> list[np.ndarray]:
  """Seeded stratified partition of ``N`` examples into parts of the given sizes.

  Per class ``c`` (``n_c`` examples) and part ``s`` (``N_s`` examples) the count is
  ``floor`` or ``ceil`` of ``n_c * N_s / N`` (so each class's share of each part is
  within one example of exact stratification) and the part sizes are exactly
  ``sizes``. Which examples of a class go to which part is drawn with
  ``numpy.random.default_rng(seed)``: classes in id order, one permutation each; the
  first ``count[c, 0]`` permuted examples go to part 0, the next to part 1, etc.
  Independent of scikit-learn's RNG.

  Args:
    labels: int ``[N]`` class ids.
    sizes: the part sizes, summing to ``N``.
    seed: the seed of the NumPy generator.

  Returns:
    One sorted int64 index array per part (ascending, i.e. in file order).
  """
  labels = np.asarray(labels)
  if labels.ndim != 1:
    raise ValueError(f"labels must be [N], got shape {labels.shape}")
  sizes_arr = np.asarray(sizes, dtype=np.int64)
  if (sizes_arr < 0).any() or sizes_arr.sum() != labels.shape[0]:
    raise ValueError(f"sizes {list(sizes)} must be >= 0 and sum to N={labels.shape[0]}")
  classes, inverse = np.unique(labels, return_inverse=True)
  class_sizes = np.bincount(inverse, minlength=len(classes)).astype(np.int64)
  quotas = class_sizes[:, None] * sizes_arr[None, :] / labels.shape[0]
  counts = _controlled_rounding(quotas, class_sizes, sizes_arr)
  rng = np.random.default_rng(seed)
  parts: list[list[np.ndarray]] = [[] for _ in sizes_arr]
  for k in range(len(classes)):
    members = rng.permutation(np.flatnonzero(inverse == k))
    bounds = np.concatenate([[0], np.cumsum(counts[k])])
    for s in range(len(sizes_arr)):
      parts[s].append(members[bounds[s]:bounds[s + 1]])
  return [np.sort(np.concatenate(p)) if p else np.zeros(0, np.int64) for p in parts]


def sklearn_split_sizes(n: int, fractions: Sequence[float]) -> list[int]:
  """Part sizes of chained ``train_test_split`` calls, as scikit-learn rounds them.

  ``fractions = (0.6, 0.2, 0.2)`` reproduces the paper's ISEAR recipe
  ``train_test_split(test_size=0.4)`` then ``train_test_split(test_size=0.5)`` on the
  held-out part: test sizes are rounded up (``ceil``), the rest is train.
  """
  fracs = [float(f) for f in fractions]
  if len(fracs) < 2 or min(fracs) < 0 or abs(sum(fracs) - 1.0) > 1e-9:
    raise ValueError(f"fractions must be >= 0, at least two, summing to 1: {fractions}")
  sizes = []
  remaining, remaining_frac = n, 1.0
  for f in fracs[:-1]:
    held_out_frac = 1.0 - f / remaining_frac if remaining_frac > 0 else 0.0
    held_out = int(np.ceil(held_out_frac * remaining - 1e-9))
    sizes.append(remaining - held_out)
    remaining, remaining_frac = held_out, remaining_frac - f
  sizes.append(remaining)
  return sizes


def holdout_split(texts: Sequence[str], labels: np.ndarray, split: str, *,
                  fraction: float, seed: int) -> tuple[list[str], np.ndarray]:
  """The ``train`` or ``validation`` part of a train file with no validation split.

  ``validation`` = a seeded stratified ``fraction`` of the rows
  (:func:`stratified_partition`, ``round(fraction * N)`` rows), ``train`` = the rest;
  both in file order. Used by AG News (5%) and TSA (20%).

  Args:
    texts, labels: the whole train file (``labels`` int ``[N]``).
    split: ``"train"`` or ``"validation"``.
    fraction: share of the rows held out, in (0, 1).
    seed: seed of the partition.
  """
  if split not in ("train", "validation"):
    raise ValueError(f"holdout_split: split must be train or validation, got {split!r}")
  labels = np.asarray(labels)
  n_val = int(round(fraction * len(labels)))
  train_idx, val_idx = stratified_partition(labels, [len(labels) - n_val, n_val], seed=seed)
  idx = train_idx if split == "train" else val_idx
  return [texts[i] for i in idx.tolist()], labels[idx]

