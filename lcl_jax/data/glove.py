"""GloVe word vectors from a local text file (Pennington et al., 2014).

Format of the released files (e.g. ``glove.twitter.27B.200d.txt``, the Twitter 200-d
vectors seed 000 §5.1 uses): one word per line, ``word v_1 ... v_D`` separated by
single spaces, no header; D is read from the first line. The word2vec text format
(a first line ``<count> <dim>``, what gensim writes) is read too, D from its header. A word-level vocabulary
(`lcl_jax.data.text_tokenizers.WordTokenizer`) gets its embedding matrix from it with
`embedding_matrix`:

* a vocabulary word found in the file gets its vector (the first occurrence when a
  word is listed twice);
* ``<PAD>`` (id 0) gets the zero vector;
* every other word -- ``<UNK>`` and vocabulary words absent from the file -- gets
  the mean of all vectors in the file (`UNKNOWN_VECTOR = "mean"`), which keeps unknown
  words at the centre of the embedding cloud rather than at an arbitrary point.

The file is streamed line by line (the Twitter file is 1.2 M lines); only vocabulary
words are kept in memory. Read as UTF-8 (invalid bytes replaced); a byte-order mark is
ignored.
"""
from __future__ import annotations

import logging
import os
import pathlib
from collections.abc import Mapping

import numpy as np

from lcl_jax.data import files

UNKNOWN_VECTOR = "mean"
# Below this share of the vocabulary found in the file, `run_embeddings` warns.
LOW_COVERAGE = 0.5
_SPECIAL_WORDS = 2  # <PAD> and <UNK> are never looked up
_last: tuple[tuple, tuple[np.ndarray, int]] | None = None  # run_embeddings' one-entry cache


def _is_number(text: str) -> bool:
  try:
    float(text)
  except ValueError:
    return False
  return True


def _word2vec_dim(line: str) -> int | None:
  """D of a word2vec-format header line (``<count> <dim>``, what gensim writes), else
  None."""
  parts = line.split()
  if len(parts) == 2 and all(p.isdigit() for p in parts) and int(parts[1]) > 0:
    return int(parts[1])
  return None


def read_vectors(path: os.PathLike[str] | str, vocabulary: Mapping[str, int]
                 ) -> tuple[dict[str, np.ndarray], np.ndarray, int]:
  """The vectors of ``vocabulary``'s words in a GloVe file, the mean vector, and D.

  D comes from a word2vec-format header (a first line of two integers, ``<count>
  <dim>``, as gensim writes) or else from the first line's number of values. A word
  may contain spaces (glove.840B has tokens such as ``. . .``): the last D fields are
  the values. A line whose word would end in a number while more fields precede it
  (``cat 1 2 3 4 5`` with D = 4) has too many values and is refused, not read as the
  word ``"cat 1"``.

  Raises:
    DataFileNotFoundError: no such file.
    MalformedRowError: a line with another number of values than D, a value that is
      not a number or not finite (nan, inf), or an empty file (names the file and line).
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise files.DataFileNotFoundError(
        f"GloVe file {path} not found (--glove_path); expected a GloVe text file such as "
        "glove.twitter.27B.200d.txt (lines 'word v_1 ... v_D')")
  found: dict[str, np.ndarray] = {}
  total: np.ndarray | None = None
  count = 0
  dim = 0
  origin = "line 1"
  with path.open(encoding="utf-8-sig", errors="replace", newline="") as f:
    for line_no, line in enumerate(f, start=1):
      line = line.rstrip("\r\n")
      if not line.strip():
        continue
      if dim == 0:
        header = _word2vec_dim(line) if line_no == 1 else None
        if header is not None:  # word2vec format: D from the header, no vector here
          dim, origin = header, "the header '<count> <dim>' of line 1"
          continue
        dim = len(line.rstrip(" ").split(" ")) - 1
        if dim < 1:
          raise files.MalformedRowError(path, line_no, "expected 'word v_1 ... v_D'")
      fields = line.rstrip(" ").split(" ")
      if len(fields) > dim + 1 and _is_number(fields[-dim - 1]):
        raise files.MalformedRowError(
            path, line_no, f"expected a word and {dim} values (D from {origin}), got "
            f"more values (the word would be {' '.join(fields[:-dim])!r})")
      parts = [" ".join(fields[:-dim])] + fields[-dim:] if len(fields) > dim else fields
      if len(parts) != dim + 1 or not parts[0]:
        raise files.MalformedRowError(
            path, line_no, f"expected a word and {dim} values (D from {origin}), got "
            f"{len(fields) - 1} values")
      try:
        vector = np.asarray(parts[1:], dtype=np.float64)
      except ValueError:
        raise files.MalformedRowError(path, line_no, "a value is not a number") from None
      if not np.all(np.isfinite(vector)):
        raise files.MalformedRowError(path, line_no, "a value is not finite (nan or inf)")
      total = vector if total is None else total + vector
      count += 1
      word = parts[0]
      if word in vocabulary and word not in found:
        found[word] = vector.astype(np.float32)
  if count == 0:
    raise files.MalformedRowError(path, 1, "the GloVe file has no vectors")
  return found, (total / count).astype(np.float32), dim


def embedding_matrix(path: os.PathLike[str] | str, vocabulary: Mapping[str, int], *,
                     pad_token_id: int = 0) -> tuple[np.ndarray, int]:
  """float32 ``[len(vocabulary), D]`` initial embeddings and how many words were found.

  Rows are vocabulary ids (they must be ``0 .. len(vocabulary) - 1``); see the module
  docstring for the rows of ``<PAD>`` and unknown words.
  """
  ids = sorted(vocabulary.values())
  if ids != list(range(len(vocabulary))):
    raise ValueError("vocabulary ids must be 0 .. len(vocabulary) - 1")
  found, mean, dim = read_vectors(path, vocabulary)
  matrix = np.broadcast_to(mean, (len(vocabulary), dim)).copy()
  for word, index in vocabulary.items():
    if word in found:
      matrix[index] = found[word]
  matrix[pad_token_id] = 0.0
  return matrix, len(found)


def run_embeddings(path: os.PathLike[str] | str, vocabulary: Mapping[str, int], *,
                   pad_token_id: int = 0) -> np.ndarray:
  """`embedding_matrix` for a training run (--glove_path), with its coverage checked.

  The trainer calls it twice with the same file and vocabulary (its checks before
  anything is written, then building the network): the second call is served from a
  one-entry cache (the file's size and modification time are part of the key).

  Raises:
    The errors of `embedding_matrix`; ValueError naming --glove_path when no vocabulary
    word is in the file (coverage 0 %: a wrong file or language; every embedding would
    be the same mean vector). Under `LOW_COVERAGE` it logs a warning with the coverage.
  """
  global _last
  path = pathlib.Path(path)
  stat = path.stat() if path.is_file() else None
  key = (str(path.resolve()), stat and (stat.st_size, stat.st_mtime_ns),
         tuple(sorted(vocabulary.items())), pad_token_id)
  if _last is not None and _last[0] == key:
    return _last[1][0]
  matrix, found = embedding_matrix(path, vocabulary, pad_token_id=pad_token_id)
  words = max(len(vocabulary) - _SPECIAL_WORDS, 1)
  coverage = found / words
  message = (f"GloVe {path}: {found:,} of the {words:,} vocabulary words found "
             f"(coverage {100 * coverage:.1f}%)")
  if found == 0:
    raise ValueError(f"--glove_path={path}: no vocabulary word is in the file (coverage 0% "
                     f"of {words:,} words; a wrong file or language?): every embedding "
                     "would be the same mean vector")
  log = logging.getLogger("lcl_jax.train")
  if coverage < LOW_COVERAGE:
    log.warning("%s; words not found start at the mean vector", message)
  else:
    log.info("%s", message)
  _last = (key, (matrix, found))
  return matrix
