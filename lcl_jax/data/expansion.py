"""Seed 003's data expansion: new training rows made by concatenating two training texts.

Yin's GoEmotions poster ("Expanding Dataset: Concatenation": "This book reads good. +
The joke is so funny.") adds rows whose text is two training texts joined and whose
label set is the union of theirs. :func:`concatenation_expansion` draws the pairs
(two different rows, uniformly) from the training split it is given -- never from
validation or test -- with a NumPy generator seeded from the run seed, so a seed always
gives the same rows.
"""
from __future__ import annotations

import numpy as np

from lcl_jax.data.split import Split

__all__ = ["concatenation_expansion", "max_expansion", "MAX_EXPANSION_FACTOR"]

_STREAM = 0xC0CA7  # mixed into the seed: never shares a stream with shuffling/augmentation
# The bound of `size` (issue 18 item 1): at most this many extra rows per training row,
# and never more than the n (n - 1) ordered pairs of n rows. Seed 003 doubles the set
# (factor 1, `--s003_expansion` = the training size); 10x leaves room for heavier
# expansion while the texts stay within 11x the training split's memory (GoEmotions:
# ~480 k rows), where 10**9 rows (an unbounded flag) would need ~16 GB and be OOM-killed.
MAX_EXPANSION_FACTOR = 10


def max_expansion(n: int) -> int:
  """The most extra rows `concatenation_expansion` makes from `n` training rows:
  min(MAX_EXPANSION_FACTOR * n, n * (n - 1)) (more would only repeat pairs)."""
  return min(MAX_EXPANSION_FACTOR * n, n * (n - 1))


def concatenation_expansion(train: Split, size: int, *, seed: int) -> Split:
  """`train` followed by `size` concatenated rows (multi-label splits only).

  Row k of the extra rows is ``texts[i] + " " + texts[j]`` with labels
  ``labels[i] | labels[j]`` for a pair i != j drawn from `train`.

  Args:
    train: the (multi-label) training split; its rows come first, unchanged.
    size: number of extra rows (0: `train` itself).
    seed: the run seed.

  Returns:
    A Split of len(train) + size rows named ``<split>+concat<size>``.

  Raises:
    ValueError: `size` < 0 or above `max_expansion(len(train))` (checked before any
      allocation), a single-label split, or fewer than 2 rows to pair.
  """
  if size < 0:
    raise ValueError(f"concat_expansion={size}: must be >= 0")
  if size == 0:
    return train
  if not train.multilabel:
    raise ValueError(f"concat_expansion needs a multi-label dataset (the union of two label "
                     f"sets); {train.dataset} is single-label")
  n = len(train.texts)
  if n < 2:
    raise ValueError(f"concat_expansion needs >= 2 training rows; got {n}")
  if size > max_expansion(n):
    raise ValueError(
        f"--concat_expansion={size} is more than the {max_expansion(n):,} extra rows allowed "
        f"for {n:,} training rows (at most {MAX_EXPANSION_FACTOR}x the training set and "
        "never more than its n(n-1) pairs; seed 003 doubles the set: "
        f"--concat_expansion={n})")
  rng = np.random.default_rng([seed, _STREAM])
  first = rng.integers(0, n, size=size)
  second = (first + rng.integers(1, n, size=size)) % n  # != first
  texts = tuple(train.texts) + tuple(f"{train.texts[i]} {train.texts[j]}"
                                     for i, j in zip(first.tolist(), second.tolist()))
  labels = np.concatenate([np.asarray(train.labels),
                           np.asarray(train.labels)[first] | np.asarray(train.labels)[second]])
  return Split(dataset=train.dataset, split=f"{train.split}+concat{size}", texts=texts,
               labels=labels.astype(np.int32), label_names=train.label_names, multilabel=True)
