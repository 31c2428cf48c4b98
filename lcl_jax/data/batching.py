"""Static-shape batches for jit: tokenised once, length-bucketed, padded and masked.

Batches are NumPy dicts in the contract of BUILD_NOTES.md::

  input_ids, attention_mask, token_type_ids  int32 [R, T]
  labels                                     int32 [R] or multi-hot int32 [R, C]
  valid                                      bool  [R]
  example_index                              int32 [R]   (-1 on padding rows)

``T`` is the smallest bucket length (e.g. 32, 64, 128) that holds the longest row
of the *global* batch, so a run compiles once per bucket. Paired training batches
put K texts in rows ``[0, K)`` and their augmented views, in the same order, in
rows ``[K, 2K)``; row ``i`` and row ``i + K`` are always two views of one example
(in the last, partial batch the missing slots of both halves are padding). Rows
past ``2K`` pad the global batch to a multiple of the device count.

Padding rows hold the tokenisation of the empty text (``[CLS] [SEP]``), so every
row attends to at least one position and the encoder stays finite on them; they
have ``valid=False``, ``example_index=-1`` and label 0 (or an all-zero label set).

Multi-host: every process holds all token ids (lengths of every global row are
needed to pick the bucket) and yields only its contiguous slice of the global
rows, ``[p * R / P, (p + 1) * R / P)``; the trainer assembles the global array
(e.g. ``jax.make_array_from_process_local_data``). Shapes agree on all processes.

Everything per step is NumPy fancy indexing over precomputed token matrices.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import numpy as np

from lcl_jax import choices

__all__ = [
    "DEFAULT_BUCKETS",
    "DEFAULT_MAX_LENGTH",
    "PairedTrainBatcher",
    "TokenizedTexts",
    "epoch_views",
    "eval_batches",
    "num_eval_batches",
    "resolve_buckets",
    "tokenize_texts",
]

DEFAULT_MAX_LENGTH = 128
# Every 8 tokens up to 64, every 16 up to 128, every 32 up to 256, every 64 up to 512: a
# batch is padded by at most 1/8 of its longest row (1/4 past 64 tokens). Random batches
# of short texts have their longest row in a narrow range, so few of these compile: on
# EmoInt (MiniLM, 32 texts, max_length 64) 3 train shapes, 42.5 tokens a batch on
# average against 64.0 with (32, 64, 128) and 39.6 for per-batch dynamic padding
# (BUILD_NOTES "Parity with PyTorch"). TrainConfig.length_buckets holds the same tuple.
DEFAULT_BUCKETS = choices.DEFAULT_LENGTH_BUCKETS  # (written once in lcl_jax.choices)
Batch = dict[str, np.ndarray]
# Mixed into the shuffle seed so it never shares a stream with augmentation.
_SHUFFLE_STREAM = 0x2545F491


class Tokenizer(Protocol):
  """What ``tokenize_texts`` needs: a Hugging Face tokenizer's ``__call__``."""

  def __call__(self, text: list[str], **kwargs: Any) -> Any:
    ...


@dataclasses.dataclass(frozen=True)
class TokenizedTexts:
  """Token ids of N texts, right-padded into one matrix.

  Attributes:
    input_ids: int32 [N, L], ``pad_token_id`` past each length; L = longest row.
    token_type_ids: int32 [N, L] (zeros when the tokenizer has none).
    lengths: int32 [N], tokens per text incl. special tokens, >= 1.
    max_length: the truncation length used (every length <= max_length).
    pad_token_id: the tokenizer's padding id.
    empty_ids: the tokenisation of "" (e.g. ``(101, 102)``), used for padding rows.
  """

  input_ids: np.ndarray
  token_type_ids: np.ndarray
  lengths: np.ndarray
  max_length: int
  pad_token_id: int
  empty_ids: tuple[int, ...]

  def __len__(self) -> int:
    return len(self.lengths)


def _ragged_to_matrix(rows: list[list[int]], lengths: np.ndarray, width: int,
                      fill: int) -> np.ndarray:
  matrix = np.full((len(rows), width), fill, dtype=np.int32)
  flat = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int64, count=int(lengths.sum()))
  matrix[np.arange(width)[None, :] < lengths[:, None]] = flat
  return matrix


def tokenize_texts(texts: Sequence[str], tokenizer: Tokenizer, *,
                   max_length: int = DEFAULT_MAX_LENGTH, chunk_size: int = 4096) -> TokenizedTexts:
  """Tokenises every text once (truncated at ``max_length``, special tokens added).

  Args:
    texts: N strings; empty strings become ``[CLS] [SEP]``.
    tokenizer: a Hugging Face (fast) tokenizer or anything with its ``__call__``.
    max_length: truncation length, including special tokens.
    chunk_size: texts per tokenizer call.

  Returns:
    The padded token matrices and lengths.
  """
  if isinstance(texts, str):
    raise TypeError("texts must be a sequence of str, not a single str")
  if max_length < 2:
    raise ValueError(f"max_length must be >= 2, got {max_length}")
  for i, text in enumerate(texts):
    if not isinstance(text, str):
      raise TypeError(f"texts[{i}] is {type(text).__name__}, not str: {text!r}")
  kwargs = dict(truncation=True, max_length=max_length, padding=False)
  ids: list[list[int]] = []
  types: list[list[int]] | None = []
  for start in range(0, len(texts), chunk_size):
    encoded = tokenizer(list(texts[start:start + chunk_size]), **kwargs)
    ids += encoded["input_ids"]
    if types is not None and "token_type_ids" in encoded:
      types += encoded["token_type_ids"]
    else:
      types = None
  lengths = np.fromiter(map(len, ids), dtype=np.int32, count=len(ids))
  if len(lengths) and (lengths.max() > max_length or lengths.min() < 1):
    raise ValueError(f"tokenizer returned lengths in [{lengths.min()}, {lengths.max()}], "
                     f"outside [1, max_length={max_length}]")
  width = int(lengths.max()) if len(lengths) else 1
  pad_id = tokenizer.pad_token_id if getattr(tokenizer, "pad_token_id", None) is not None else 0
  empty_ids = tuple(int(i) for i in tokenizer([""], **kwargs)["input_ids"][0]) or (pad_id,)
  return TokenizedTexts(
      input_ids=_ragged_to_matrix(ids, lengths, width, pad_id),
      token_type_ids=(_ragged_to_matrix(types, lengths, width, 0) if types is not None
                      else np.zeros((len(ids), width), np.int32)),
      lengths=lengths,
      max_length=max_length,
      pad_token_id=int(pad_id),
      empty_ids=empty_ids,
  )


def resolve_buckets(buckets: Sequence[int], max_length: int) -> tuple[int, ...]:
  """Sorted bucket lengths capped at ``max_length``, with ``max_length`` always last."""
  buckets = tuple(buckets)
  if not buckets or any(not isinstance(b, (int, np.integer)) or b < 1 for b in buckets):
    raise ValueError(f"buckets must be positive ints, got {buckets}")
  return tuple(sorted({min(int(b), max_length) for b in buckets} | {max_length}))


def _bucket_for(length: int, buckets: tuple[int, ...]) -> int:
  return buckets[int(np.searchsorted(buckets, length))]


def _check_labels(labels: np.ndarray, n: int) -> np.ndarray:
  labels = np.asarray(labels)
  if labels.ndim not in (1, 2) or labels.shape[0] != n:
    raise ValueError(f"labels must be [N] class ids or [N, C] multi-hot with N={n} "
                     f"examples, got shape {labels.shape}")
  if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == np.bool_):
    raise ValueError(f"labels must be integers (or bool multi-hot), got dtype {labels.dtype}")
  if labels.ndim == 1 and n and labels.min() < 0:
    raise ValueError(f"class ids must be >= 0, got min {labels.min()}")
  return labels.astype(np.int32)


def _check_process(row_multiple: int, process_index: int, process_count: int) -> int:
  if row_multiple < 1:
    raise ValueError(f"row_multiple must be >= 1, got {row_multiple}")
  if process_count < 1 or not 0 <= process_index < process_count:
    raise ValueError(f"need 0 <= process_index < process_count, got process_index="
                     f"{process_index}, process_count={process_count}")
  return math.lcm(row_multiple, process_count)


def _assemble(sources: Sequence[TokenizedTexts], source_of_row: np.ndarray,
              example_of_row: np.ndarray, labels: np.ndarray, buckets: tuple[int, ...],
              local: slice) -> Batch:
  """One batch: global rows described by (source, example) pairs; -1 = padding.

  The bucket comes from every global row; only the ``local`` rows are gathered.
  """
  valid_global = example_of_row >= 0
  longest = 1
  for s, source in enumerate(sources):
    rows = example_of_row[valid_global & (source_of_row == s)]
    if rows.size:
      longest = max(longest, int(source.lengths[rows].max()))
  width = _bucket_for(longest, buckets)

  examples, source_ids = example_of_row[local], source_of_row[local]
  valid = examples >= 0
  first = sources[0]
  n_rows = len(examples)
  input_ids = np.full((n_rows, width), first.pad_token_id, np.int32)
  token_type_ids = np.zeros((n_rows, width), np.int32)
  lengths = np.zeros(n_rows, np.int32)
  for s, source in enumerate(sources):
    rows = np.flatnonzero(valid & (source_ids == s))
    if rows.size:
      cols = min(width, source.input_ids.shape[1])
      input_ids[rows, :cols] = source.input_ids[examples[rows], :cols]
      token_type_ids[rows, :cols] = source.token_type_ids[examples[rows], :cols]
      lengths[rows] = source.lengths[examples[rows]]
  padding = np.flatnonzero(~valid)
  if padding.size:
    empty = np.asarray(first.empty_ids[:width], np.int32)
    input_ids[padding, :len(empty)] = empty
    lengths[padding] = len(empty)
  batch_labels = labels[np.where(valid, examples, 0)]
  batch_labels[~valid] = 0
  return {
      "input_ids": input_ids,
      "attention_mask": (np.arange(width)[None, :] < lengths[:, None]).astype(np.int32),
      "token_type_ids": token_type_ids,
      "labels": batch_labels,
      "valid": valid,
      "example_index": examples.astype(np.int32),
  }


class PairedTrainBatcher:
  """Shuffled training batches of K texts + their K augmented views (static shapes).

  Args:
    texts: the tokenised training texts (N).
    views: their tokenised augmented views (N, same order), or ``epoch ->
      TokenizedTexts`` for a fresh view per epoch (see ``epoch_views``), or None
      for batches of the K texts only (no views; ``TrainConfig.baseline_views =
      'texts'``): rows ``[0, K)`` are the texts, the rest padding.
    labels: int [N] class ids or [N, C] multi-hot.
    texts_per_batch: K (10 in the paper); the global batch has 2K real rows (K
      without views).
    seed: shuffling seed; the order of epoch e depends only on (seed, e).
    buckets: sequence-length buckets, capped at the tokenisation max_length.
    row_multiple: the global row count is padded to a multiple of this (the
      global device count) and of ``process_count``.
    process_index, process_count: this process's slice of the global rows.
    shuffle: False keeps dataset order (for debugging).
  """

  def __init__(self, texts: TokenizedTexts,
               views: TokenizedTexts | Callable[[int], TokenizedTexts] | None,
               labels: np.ndarray, *, texts_per_batch: int = 10, seed: int = 0,
               buckets: Sequence[int] = DEFAULT_BUCKETS, row_multiple: int = 1,
               process_index: int = 0, process_count: int = 1, shuffle: bool = True):
    n = len(texts)
    if n == 0:
      raise ValueError("no training texts")
    if texts_per_batch < 1:
      raise ValueError(f"texts_per_batch must be >= 1, got {texts_per_batch}")
    if seed < 0:
      raise ValueError(f"seed must be >= 0, got {seed}")
    multiple = _check_process(row_multiple, process_index, process_count)
    self.texts = texts
    self.labels = _check_labels(labels, n)
    self.texts_per_batch = texts_per_batch
    self.seed = seed
    self.shuffle = shuffle
    self.buckets = resolve_buckets(buckets, texts.max_length)
    self.paired = views is not None
    real_rows = (2 if self.paired else 1) * texts_per_batch
    self.global_rows = -(-real_rows // multiple) * multiple
    self.local_rows = self.global_rows // process_count
    self.process_index, self.process_count = process_index, process_count
    self._local = slice(process_index * self.local_rows, (process_index + 1) * self.local_rows)
    self._views = views
    self._views_cache: tuple[int, TokenizedTexts] | None = None
    self._order_cache: tuple[int, np.ndarray] | None = None
    if isinstance(views, TokenizedTexts):
      self._check_views(views)
    k = texts_per_batch
    # Global row layout, identical for every step: which source (0 texts, 1
    # views) and which slot of the step's K examples each row holds.
    self._row_source = np.full(self.global_rows, -1, np.int32)
    self._row_source[:k] = 0
    self._row_slot = np.full(self.global_rows, -1, np.int64)
    self._row_slot[:k] = np.arange(k)
    if self.paired:
      self._row_source[k:2 * k] = 1
      self._row_slot[k:2 * k] = np.arange(k)

  def _check_views(self, views: TokenizedTexts) -> TokenizedTexts:
    if not isinstance(views, TokenizedTexts) or len(views) != len(self.texts):
      raise ValueError(f"views must be TokenizedTexts of the {len(self.texts)} texts, got "
                       f"{type(views).__name__} of length {len(views)}")
    if views.max_length != self.texts.max_length:
      raise ValueError(f"views were tokenised with max_length={views.max_length}, "
                       f"texts with {self.texts.max_length}")
    return views

  @property
  def steps_per_epoch(self) -> int:
    return -(-len(self.texts) // self.texts_per_batch)

  def __len__(self) -> int:
    return self.steps_per_epoch

  def epoch_order(self, epoch: int) -> np.ndarray:
    """The example order of ``epoch`` (a permutation of range(N))."""
    if epoch < 0:
      raise ValueError(f"epoch must be >= 0, got {epoch}")
    if self._order_cache is None or self._order_cache[0] != epoch:
      n = len(self.texts)
      if self.shuffle:
        rng = np.random.Generator(np.random.PCG64(
            np.random.SeedSequence([_SHUFFLE_STREAM, self.seed, epoch])))
        order = rng.permutation(n)
      else:
        order = np.arange(n)
      self._order_cache = (epoch, order)
    return self._order_cache[1]

  def views_for_epoch(self, epoch: int) -> TokenizedTexts:
    if isinstance(self._views, TokenizedTexts):
      return self._views
    if self._views_cache is None or self._views_cache[0] != epoch:
      self._views_cache = (epoch, self._check_views(self._views(epoch)))
    return self._views_cache[1]

  def batch(self, epoch: int, step: int) -> Batch:
    """This process's slice of global batch ``step`` of ``epoch``."""
    if not 0 <= step < self.steps_per_epoch:
      raise ValueError(f"step must be in [0, {self.steps_per_epoch}), got {step}")
    k = self.texts_per_batch
    step_examples = self.epoch_order(epoch)[step * k:(step + 1) * k]
    slots = np.full(k, -1, np.int64)
    slots[:len(step_examples)] = step_examples
    example_of_row = np.where(self._row_slot >= 0, slots[self._row_slot], -1)
    sources = (self.texts, self.views_for_epoch(epoch)) if self.paired else (self.texts,)
    return _assemble(sources, self._row_source,
                     example_of_row, self.labels, self.buckets, self._local)

  def batches(self, epoch: int, start_step: int = 0) -> Iterator[Batch]:
    """Batches ``start_step .. steps_per_epoch - 1`` of ``epoch`` (resumable)."""
    if not 0 <= start_step <= self.steps_per_epoch:
      raise ValueError(f"start_step must be in [0, {self.steps_per_epoch}], got {start_step}")
    for step in range(start_step, self.steps_per_epoch):
      yield self.batch(epoch, step)


def epoch_views(texts: Sequence[str], tokenizer: Tokenizer, *, seed: int,
                max_length: int = DEFAULT_MAX_LENGTH, augmenter: Any = None,
                tokenize: Callable[[list[str]], TokenizedTexts] | None = None,
                ) -> Callable[[int], TokenizedTexts]:
  """``epoch -> tokenised fresh augmented views`` for ``PairedTrainBatcher``.

  Text i of epoch e is ``augmenter.augment`` under ``augment.text_rng(seed, i, e)``
  (the default augmenter is the release's nlpaug setting). ``tokenize`` replaces
  ``tokenize_texts(views, tokenizer, max_length=max_length)`` (e.g. the label-prefixed
  rows of `lcl_jax.data.label_inputs`).
  """
  from lcl_jax.data import augment  # pylint: disable=g-import-not-at-top

  texts = list(texts)

  def views(epoch: int) -> TokenizedTexts:
    aug = augmenter if augmenter is not None else augment.default_augmenter()
    augmented = aug.augment_texts(texts, seed=seed, epoch=epoch)
    if tokenize is not None:
      return tokenize(augmented)
    return tokenize_texts(augmented, tokenizer, max_length=max_length)
  return views


def num_eval_batches(num_examples: int, batch_size: int) -> int:
  return -(-num_examples // batch_size)


def eval_batches(token_ids: TokenizedTexts, labels: np.ndarray, *, batch_size: int,
                 buckets: Sequence[int] = DEFAULT_BUCKETS, row_multiple: int = 1,
                 process_index: int = 0, process_count: int = 1,
                 sort_by_length: bool = True) -> Iterator[Batch]:
  """Evaluation batches covering every example exactly once, padded and masked.

  Args:
    token_ids: the tokenised examples (N).
    labels: int [N] or multi-hot [N, C].
    batch_size: real examples per global batch; rows are padded to a multiple of
      ``lcm(row_multiple, process_count)``.
    buckets: sequence-length buckets.
    row_multiple, process_index, process_count: as for ``PairedTrainBatcher``.
    sort_by_length: group similar lengths (fewer long buckets); ``example_index``
      says where each row's prediction belongs.

  Yields:
    ``num_eval_batches(N, batch_size)`` batch dicts (this process's rows).
  """
  n = len(token_ids)
  labels = _check_labels(labels, n)
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  multiple = _check_process(row_multiple, process_index, process_count)
  buckets = resolve_buckets(buckets, token_ids.max_length)
  global_rows = -(-batch_size // multiple) * multiple
  local_rows = global_rows // process_count
  local = slice(process_index * local_rows, (process_index + 1) * local_rows)
  order = np.argsort(token_ids.lengths, kind="stable") if sort_by_length else np.arange(n)
  source_of_row = np.zeros(global_rows, np.int32)
  for start in range(0, n, batch_size):
    example_of_row = np.full(global_rows, -1, np.int64)
    chunk = order[start:start + batch_size]
    example_of_row[:len(chunk)] = chunk
    yield _assemble((token_ids,), source_of_row, example_of_row, labels, buckets, local)
