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

__all__ = ["concatenation_expansion"]

_STREAM = 0xC0CA7  # mixed into the seed: never shares a stream with shuffling/augmentation


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
    ValueError: `size` < 0, a single-label split, or fewer than 2 rows to pair.
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
  rng = np.random.default_rng([seed, _STREAM])
  first = rng.integers(0, n, size=size)
  second = (first + rng.integers(1, n, size=size)) % n  # != first
  texts = tuple(train.texts) + tuple(f"{train.texts[i]} {train.texts[j]}"
                                     for i, j in zip(first.tolist(), second.tolist()))
  labels = np.concatenate([np.asarray(train.labels),
                           np.asarray(train.labels)[first] | np.asarray(train.labels)[second]])
  return Split(dataset=train.dataset, split=f"{train.split}+concat{size}", texts=texts,
               labels=labels.astype(np.int32), label_names=train.label_names, multilabel=True)
