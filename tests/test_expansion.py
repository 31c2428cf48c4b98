"""Seed 003's concatenation expansion of the GoEmotions-28 training split."""
import numpy as np
import pytest

from lcl_jax import data as data_lib
from lcl_jax.data.expansion import concatenation_expansion


@pytest.fixture(scope="module")
def goemotions28(data_dir):
  train = data_lib.load_split("goemotions_multilabel", "train", data_dir=data_dir)
  test = data_lib.load_split("goemotions_multilabel", "test", data_dir=data_dir)
  return train.subset(np.arange(300)), test


def test_rows_are_two_training_texts_with_the_union_of_labels(goemotions28):
  train, test = goemotions28
  expanded = concatenation_expansion(train, 500, seed=4)
  assert len(expanded.texts) == 800 and expanded.multilabel
  assert expanded.texts[:300] == train.texts
  np.testing.assert_array_equal(expanded.labels[:300], train.labels)
  index = {}
  for i, text in enumerate(train.texts):
    index.setdefault(text, []).append(i)
  test_texts = set(test.texts) - set(train.texts)
  for text, labels in zip(expanded.texts[300:], expanded.labels[300:]):
    # Find the split point that makes both halves training texts.
    pairs = [(index[text[:k]], index[text[k + 1:]]) for k in range(len(text))
             if text[k] == " " and text[:k] in index and text[k + 1:] in index]
    assert pairs, text
    firsts, seconds = pairs[0]
    union = train.labels[firsts[0]] | train.labels[seconds[0]]
    np.testing.assert_array_equal(labels, union)
  assert not test_texts & set(expanded.texts)


def test_deterministic_per_seed(goemotions28):
  train, _ = goemotions28
  a = concatenation_expansion(train, 50, seed=1)
  b = concatenation_expansion(train, 50, seed=1)
  c = concatenation_expansion(train, 50, seed=2)
  assert a.texts == b.texts and np.array_equal(a.labels, b.labels)
  assert a.texts[300:] != c.texts[300:]
  assert concatenation_expansion(train, 0, seed=1) is train


def test_bad_requests(goemotions28, data_dir):
  train, _ = goemotions28
  with pytest.raises(ValueError, match="concat_expansion=-1"):
    concatenation_expansion(train, -1, seed=0)
  single = data_lib.load_split("goemotions", "validation", data_dir=data_dir)
  with pytest.raises(ValueError, match="multi-label"):
    concatenation_expansion(single, 5, seed=0)
