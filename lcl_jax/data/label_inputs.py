"""Inputs of the label-embedding attention model (seed 004, Wang & Feng, Section 3.3).

Every row is the tokenizer's own sentence-pair encoding of (label block, text)::

  [CLS] E_1 .. E_m [SEP] T_1 .. T_n [SEP]          (BERT / ELECTRA)
  <s> E_1 .. E_m </s></s> T_1 .. T_n </s>          (RoBERTa family)

* **Label block** (the first sequence of the pair): the label names, in class-id order,
  joined by single spaces (``_`` in a name becomes a space) and tokenised with the
  checkpoint's tokenizer, so the label tokens are exactly that tokenizer's word pieces of
  the names. A name may give several pieces (BERT-uncased: ``nervousness`` ->
  ``nervous ##ness``; the other 27 GoEmotions names are single pieces): `LabelBlock`
  records, for each piece, its position in the row and the label it belongs to (from
  the fast tokenizer's character offsets; a piece of white space only, such as a lone
  byte-level ``Ġ``, belongs to the name it precedes). The block is the same in every row,
  so it is a fixed prefix of ``prefix_length`` tokens ([CLS] + P pieces + the
  separator(s)).
* **Text** (the second sequence): truncated to its first ``text_tokens`` word pieces
  (the document: "we input 50 tokens (not including emotion labels) ... only the first 50
  were used"), then the closing separator. The document pads to 50; here rows are
  right-padded to a length bucket like every other batch (the padding is masked, so the
  scores are the same), and ``max_length`` = ``prefix_length + text_tokens`` + the
  closing separator(s) is the longest row, the last bucket.
* **Token type ids**: the tokenizer's pair convention: 0 on [CLS], the label pieces and
  the first [SEP]; 1 on the text and its [SEP] (BERT/ELECTRA, whose checkpoints were
  pre-trained on sentence pairs). RoBERTa-family tokenizers return none: all zeros
  (their type vocabulary has one row; ``token_types=False`` forces zeros for any encoder
  with ``type_vocab_size == 1``). SpanEmo (Alhuzali & Ananiadou 2021, which the
  document follows) passes no token types at all (zeros); the pair convention is our
  choice, it tells the encoder which tokens are labels.
* **Position ids**: the encoder's usual rule (`lcl_jax.models.encoder.position_ids`):
  0 .. T-1 on BERT/ELECTRA, RoBERTa's padding-aware count on that family; the label
  pieces take positions 1 .. P, as in SpanEmo and the document's input.

Built without re-tokenising the label names per row: each text is tokenised alone (no
special tokens, truncated) and placed between the block's prefix and suffix; the first
rows are compared with the tokenizer's own pair encoding (a mismatch raises).

Used by the data pipeline (every split, the augmented views, the mixing candidates) and
by `lcl_jax.inference.predictor` (predict/evaluate/attention maps), so a text is encoded
identically in training and at use.
"""
from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from lcl_jax.data.batching import TokenizedTexts

__all__ = ["LabelBlock", "count_truncated_texts", "label_block", "tokenize_with_labels"]


@dataclasses.dataclass(frozen=True)
class LabelBlock:
  """The fixed label prefix of every row, for one tokenizer and one label set.

  Attributes:
    label_names: the C class names, index = class id.
    text_tokens: the text's budget in word pieces (``--label_text_tokens``).
    piece_ids: the P label-piece token ids, in row order.
    piece_positions: their positions in the row (int, 1 .. P after [CLS]).
    piece_labels: the class id of each piece (P ints in [0, C); every class has >= 1).
    prefix_ids: the whole prefix ([CLS], pieces, separator(s)).
    suffix_ids: the special tokens after the text (BERT's [SEP], RoBERTa's </s>).
    max_length: ``len(prefix_ids) + text_tokens + len(suffix_ids)``, the longest row.
    token_types: keep the tokenizer's pair token types (0 labels / 1 text); False sets
      them all to 0 (an encoder with a one-row type vocabulary, e.g. RoBERTa's).
    prefix_type_ids, text_type_id, suffix_type_ids: those token types (all 0 when
      ``token_types`` is False or the tokenizer returns none).
  """

  label_names: tuple[str, ...]
  text_tokens: int
  piece_ids: tuple[int, ...]
  piece_positions: tuple[int, ...]
  piece_labels: tuple[int, ...]
  prefix_ids: tuple[int, ...]
  suffix_ids: tuple[int, ...]
  max_length: int
  token_types: bool = True
  prefix_type_ids: tuple[int, ...] = ()
  text_type_id: int = 0
  suffix_type_ids: tuple[int, ...] = ()

  @property
  def suffix_length(self) -> int:
    return len(self.suffix_ids)

  @property
  def num_labels(self) -> int:
    return len(self.label_names)

  @property
  def prefix_length(self) -> int:
    return len(self.prefix_ids)

  def pieces_of(self, label: int) -> tuple[int, ...]:
    """Token ids of one class's name pieces."""
    return tuple(i for i, c in zip(self.piece_ids, self.piece_labels) if c == label)

  def describe(self) -> dict[str, Any]:
    """JSON-able summary (config.json's dataset record)."""
    return {"text_tokens": self.text_tokens, "label_pieces": len(self.piece_ids),
            "prefix_length": self.prefix_length, "max_length": self.max_length,
            "multi_piece_labels": [name for c, name in enumerate(self.label_names)
                                   if len(self.pieces_of(c)) > 1]}


def _label_string(label_names: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
  """The names joined by spaces and each name's character span in that string."""
  spans, parts, start = [], [], 0
  for name in label_names:
    word = " ".join(str(name).replace("_", " ").split())
    if not word:
      raise ValueError(f"label name {name!r} is empty after normalisation")
    parts.append(word)
    spans.append((start, start + len(word)))
    start += len(word) + 1
  return " ".join(parts), spans


def _pair_encode(tokenizer: Any, first: str, texts: Sequence[str], max_length: int,
                 **kwargs: Any) -> Any:
  return tokenizer([first] * len(texts), list(texts), truncation="only_second",
                   max_length=max_length, padding=False, **kwargs)


def label_block(tokenizer: Any, label_names: Sequence[str], text_tokens: int, *,
                token_types: bool = True) -> LabelBlock:
  """The label prefix of ``tokenizer`` for ``label_names`` (see the module docstring).

  Args:
    tokenizer: a Hugging Face *fast* tokenizer (character offsets are needed to map
      pieces to names).
    label_names: the C class names in class-id order.
    text_tokens: the text budget in word pieces (>= 1).
    token_types: False for an encoder whose type vocabulary has a single row
      (``type_vocab_size == 1``): every token type id is then 0.

  Raises:
    ValueError: a bad budget, an empty name, a tokenizer without offsets, or a name
      that yields no piece.
  """
  if isinstance(text_tokens, bool) or not isinstance(text_tokens, int) or text_tokens < 1:
    raise ValueError(f"--label_text_tokens={text_tokens!r}: must be an integer >= 1")
  if not label_names:
    raise ValueError("label_block: no label names")
  if not getattr(tokenizer, "is_fast", False):
    raise ValueError(f"label embeddings need a fast Hugging Face tokenizer (character "
                     f"offsets), got {type(tokenizer).__name__}")
  string, spans = _label_string(label_names)
  # A one-word text shows where the text starts (after the prefix) and what follows it.
  probe = _pair_encode(tokenizer, string, ["a"], max_length=10**6,
                       return_offsets_mapping=True)
  ids = [int(i) for i in probe["input_ids"][0]]
  sequence_ids = probe.sequence_ids(0)
  offsets = probe["offset_mapping"][0]
  positions, labels = [], []
  for position, (sequence, (begin, end)) in enumerate(zip(sequence_ids, offsets)):
    if sequence != 0:
      continue
    # The label whose characters the piece covers; a piece of only white space (a
    # byte-level BPE's lone "Ġ") belongs to the name it precedes.
    owner = [c for c, (lo, hi) in enumerate(spans) if min(end, hi) > max(begin, lo)]
    if not string[begin:end].strip():
      owner = ([c for c, (lo, hi) in enumerate(spans) if lo <= begin < hi]
               or [c for c, (lo, _) in enumerate(spans) if lo >= begin])[:1]
    if len(owner) != 1:
      raise ValueError(f"label piece {tokenizer.convert_ids_to_tokens(ids[position])!r} at "
                       f"characters {begin}-{end} of {string!r} belongs to no single label")
    positions.append(position)
    labels.append(owner[0])
  missing = sorted(set(range(len(spans))) - set(labels))
  if missing:
    raise ValueError(f"label names {[label_names[c] for c in missing]} give no token")
  text_positions = [p for p, sequence in enumerate(sequence_ids) if sequence == 1]
  first, last = text_positions[0], text_positions[-1]
  types = [int(t) for t in probe["token_type_ids"][0]] if (
      token_types and "token_type_ids" in probe) else [0] * len(ids)
  return LabelBlock(label_names=tuple(str(n) for n in label_names), text_tokens=text_tokens,
                    piece_ids=tuple(ids[p] for p in positions),
                    piece_positions=tuple(positions), piece_labels=tuple(labels),
                    prefix_ids=tuple(ids[:first]), suffix_ids=tuple(ids[last + 1:]),
                    max_length=first + text_tokens + len(ids) - last - 1,
                    token_types=bool(token_types), prefix_type_ids=tuple(types[:first]),
                    text_type_id=types[first], suffix_type_ids=tuple(types[last + 1:]))


def tokenize_with_labels(texts: Sequence[str], tokenizer: Any, block: LabelBlock, *,
                         chunk_size: int = 4096, check_rows: int = 8) -> TokenizedTexts:
  """Every text as ``label prefix + first text_tokens pieces + closing separator``.

  The texts are tokenised alone (no special tokens, truncated to ``block.text_tokens``)
  and placed between the block's prefix and suffix, which is the tokenizer's pair
  encoding without re-tokenising the label names for every row; the first
  ``check_rows`` rows are compared with the pair encoding itself.

  Returns `TokenizedTexts` (the batching module's type, so `PairedTrainBatcher` and
  `eval_batches` take them unchanged) with ``max_length = block.max_length``; its
  ``empty_ids`` (the padding rows) are the prefix and suffix around an empty text.

  Raises:
    TypeError: ``texts`` is a str or holds a non-str.
    ValueError: the rows differ from the tokenizer's pair encoding (another tokenizer
      or label set than the block's).
  """
  if isinstance(texts, str):
    raise TypeError("texts must be a sequence of str, not a single str")
  for i, text in enumerate(texts):
    if not isinstance(text, str):
      raise TypeError(f"texts[{i}] is {type(text).__name__}, not str: {text!r}")
  pieces: list[list[int]] = []
  for start in range(0, len(texts), chunk_size):
    pieces += tokenizer(list(texts[start:start + chunk_size]), add_special_tokens=False,
                        truncation=True, max_length=block.text_tokens,
                        padding=False)["input_ids"]
  n, prefix, suffix = len(pieces), len(block.prefix_ids), len(block.suffix_ids)
  text_lengths = np.fromiter(map(len, pieces), dtype=np.int32, count=n)
  lengths = (prefix + text_lengths + suffix).astype(np.int32)
  width = int(lengths.max()) if n else prefix + suffix
  pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
  ids = np.full((n, width), pad_id, np.int32)
  types = np.zeros((n, width), np.int32)
  ids[:, :prefix] = block.prefix_ids
  types[:, :prefix] = block.prefix_type_ids or 0
  columns = np.arange(width)[None, :]
  text_cells = (columns >= prefix) & (columns < prefix + text_lengths[:, None])
  if n:
    ids[text_cells] = np.fromiter(itertools.chain.from_iterable(pieces), np.int64,
                                  count=int(text_lengths.sum()))
  types[text_cells] = block.text_type_id
  rows = np.arange(n)[:, None]
  suffix_columns = prefix + text_lengths[:, None] + np.arange(suffix)[None, :]
  ids[rows, suffix_columns] = block.suffix_ids
  types[rows, suffix_columns] = block.suffix_type_ids or 0
  _check_against_pair_encoding(texts[:check_rows], tokenizer, block, ids, types, lengths)
  return TokenizedTexts(input_ids=ids, token_type_ids=types, lengths=lengths,
                        max_length=block.max_length, pad_token_id=int(pad_id),
                        empty_ids=block.prefix_ids + block.suffix_ids)


def _check_against_pair_encoding(texts, tokenizer, block, ids, types, lengths) -> None:
  """The first rows must equal the tokenizer's own pair encoding (ids and token types)."""
  if not len(texts):
    return
  string, _ = _label_string(block.label_names)
  reference = _pair_encode(tokenizer, string, texts, block.max_length)
  for r, row in enumerate(reference["input_ids"]):
    n = int(lengths[r])
    same = ids[r, :n].tolist() == list(row)
    if same and block.token_types and "token_type_ids" in reference:
      same = types[r, :n].tolist() == list(reference["token_type_ids"][r])
    if not same:
      raise ValueError(f"row {r} differs from the tokenizer's pair encoding of (label "
                       "names, text): the label block was made with another tokenizer or "
                       "label set, or this tokenizer encodes pairs differently")


def count_truncated_texts(texts: Sequence[str], tokenized: TokenizedTexts, tokenizer: Any,
                          block: LabelBlock) -> int:
  """How many of ``texts`` have more than ``block.text_tokens`` word pieces (lose tokens).

  Only rows at the longest length are tokenised again (without special tokens).
  """
  at_limit = np.flatnonzero(np.asarray(tokenized.lengths) >= block.max_length)
  if not len(at_limit):
    return 0
  full = tokenizer([texts[i] for i in at_limit], add_special_tokens=False, truncation=False,
                   padding=False, verbose=False)["input_ids"]
  return int(sum(len(row) > block.text_tokens for row in full))
