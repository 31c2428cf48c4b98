"""Tokenizers of the non-transformer baselines (no Hugging Face checkpoint behind them).

Both are called like a Hugging Face tokenizer by `lcl_jax.data.batching.tokenize_texts`
(``tokenizer(texts, truncation=True, max_length=L, padding=False)`` ->
``{"input_ids": [[int, ...], ...]}``) and have ``pad_token_id`` and ``get_vocab()``, so
the one data pipeline serves the baselines too.

* `WordTokenizer` -- a word vocabulary built from the training texts (seed 001 §3.1,
  the Made With ML RNN lesson it cites): lower-casing, optional English stop-word
  removal, a regular-expression filter keeping runs of ``[a-z0-9]`` (every other
  character separates words), white-space splitting. Ids: 0 ``<PAD>``, 1 ``<UNK>``,
  then words by decreasing training-set frequency (ties: first occurrence). A text
  with no word left (empty, or only stop words) is the single token ``<UNK>``.
  Stop words: scikit-learn's ``ENGLISH_STOP_WORDS`` (318 words; the lesson used
  NLTK's list, which is not in the shared NLTK data).
* `CharTokenizer` -- Zhang et al. (2015)'s 70-character alphabet
  (`CHARCNN_ALPHABET`: 26 letters, 10 digits, the paper's 33 other characters and
  the new line; the paper lists ``-`` twice, so 69 distinct characters fill 70
  one-hot columns, the second ``-`` column never set). Text is lower-cased, ids are
  1-based alphabet positions, 0 = any other character (the all-zero vector) and
  padding. The first ``max_length`` characters are kept and quantised in the paper's
  "backward order": the last kept character comes first, so the latest reading sits
  at the start of the input. ``get_vocab()`` is the alphabet.
"""
from __future__ import annotations

import collections
import re
from collections.abc import Iterable, Sequence
from typing import Any

PAD_TOKEN = "<PAD>"
UNK_TOKEN = "<UNK>"

CHARCNN_ALPHABET: tuple[str, ...] = tuple(
    "abcdefghijklmnopqrstuvwxyz0123456789" + "-,;.!?:'\"/\\|_@#$%^&*~`+-=<>()[]{}") + ("\n",)

_NON_WORD = re.compile(r"[^a-z0-9]+")


def _stop_words() -> frozenset[str]:
  from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS  # pylint: disable=g-import-not-at-top
  return frozenset(ENGLISH_STOP_WORDS)


class WordTokenizer:
  """A frequency-ordered word vocabulary with seed 001's preprocessing.

  Attributes:
    vocabulary: token -> id (``<PAD>`` 0, ``<UNK>`` 1).
    remove_stop_words: whether English stop words are dropped.
    pad_token_id: 0.
  """

  pad_token_id = 0
  unk_token_id = 1

  def __init__(self, vocabulary: dict[str, int], *, remove_stop_words: bool):
    if vocabulary.get(PAD_TOKEN) != 0 or vocabulary.get(UNK_TOKEN) != 1:
      raise ValueError("vocabulary must map <PAD> to 0 and <UNK> to 1")
    self.vocabulary = dict(vocabulary)
    self.remove_stop_words = remove_stop_words
    self._stop = _stop_words() if remove_stop_words else frozenset()

  @classmethod
  def fit(cls, texts: Iterable[str], *, remove_stop_words: bool = True,
          min_count: int = 1, max_size: int | None = None) -> WordTokenizer:
    """Builds the vocabulary from training texts.

    Args:
      texts: the training split's texts.
      remove_stop_words: drop English stop words (seed 001: yes).
      min_count: keep words seen at least this often.
      max_size: keep at most this many words (besides ``<PAD>``/``<UNK>``).
    """
    stop = _stop_words() if remove_stop_words else frozenset()
    counts: collections.Counter[str] = collections.Counter()
    for text in texts:
      counts.update(_words(text, stop))
    words = [w for w, c in counts.most_common() if c >= min_count]  # stable on ties
    if max_size is not None:
      words = words[:max_size]
    vocabulary = {PAD_TOKEN: 0, UNK_TOKEN: 1}
    vocabulary.update({w: i + 2 for i, w in enumerate(words)})
    return cls(vocabulary, remove_stop_words=remove_stop_words)

  def __len__(self) -> int:
    return len(self.vocabulary)

  def get_vocab(self) -> dict[str, int]:
    return dict(self.vocabulary)

  def words(self, text: str) -> list[str]:
    """The preprocessed words of one text."""
    return _words(text, self._stop)

  def encode(self, text: str, max_length: int | None = None) -> list[int]:
    """Word ids of one text (``<UNK>`` for unknown words; at least one id)."""
    ids = [self.vocabulary.get(w, self.unk_token_id) for w in self.words(text)]
    ids = ids or [self.unk_token_id]
    return ids[:max_length] if max_length else ids

  def __call__(self, texts: Sequence[str], *, truncation: bool = True,
               max_length: int | None = None, padding: bool = False,
               **unused: Any) -> dict[str, list[list[int]]]:
    """Hugging Face-style batch call (no padding, optional truncation)."""
    del padding, unused
    limit = max_length if truncation else None
    return {"input_ids": [self.encode(t, limit) for t in texts]}


def _words(text: str, stop: frozenset[str]) -> list[str]:
  return [w for w in _NON_WORD.sub(" ", text.lower()).split() if w not in stop]


class CharTokenizer:
  """Zhang et al. (2015)'s character quantisation (ids 1..70, 0 = zero vector)."""

  pad_token_id = 0

  def __init__(self, alphabet: Sequence[str] = CHARCNN_ALPHABET):
    self.alphabet = tuple(alphabet)
    self._index: dict[str, int] = {}
    for position, char in enumerate(self.alphabet, start=1):
      self._index.setdefault(char, position)  # the paper's duplicate '-' keeps its first id

  def __len__(self) -> int:
    return len(self.alphabet) + 1

  def get_vocab(self) -> dict[str, int]:
    return dict(self._index)

  def encode(self, text: str, max_length: int | None = None) -> list[int]:
    """Ids of the (lower-cased) first ``max_length`` characters, in backward order."""
    kept = text.lower()[:max_length] if max_length else text.lower()
    ids = [self._index.get(char, 0) for char in reversed(kept)]
    return ids or [0]

  def __call__(self, texts: Sequence[str], *, truncation: bool = True,
               max_length: int | None = None, padding: bool = False,
               **unused: Any) -> dict[str, list[list[int]]]:
    del padding, unused
    limit = max_length if truncation else None
    return {"input_ids": [self.encode(t, limit) for t in texts]}


def build_tokenizer(encoder: str, train_texts: Sequence[str]) -> WordTokenizer | CharTokenizer:
  """The tokenizer of a baseline encoder name (`lcl_jax.models.baselines.BASELINES`).

  ``charcnn`` -> `CharTokenizer`; ``rnn`` / ``gru`` -> `WordTokenizer` with stop-word
  removal (seed 001); ``bilstm`` -> `WordTokenizer` keeping stop words (seed 000
  embeds every word with GloVe).
  """
  if encoder == "charcnn":
    return CharTokenizer()
  if encoder in ("rnn", "gru"):
    return WordTokenizer.fit(train_texts, remove_stop_words=True)
  if encoder == "bilstm":
    return WordTokenizer.fit(train_texts, remove_stop_words=False)
  raise ValueError(f"no built-in tokenizer for encoder {encoder!r}")
