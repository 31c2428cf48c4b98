"""GloVe word vectors from a local text file (Pennington et al., 2014).

Format of the released files (e.g. ``glove.twitter.27B.200d.txt``, the Twitter 200-d
vectors seed 000 §5.1 uses): one word per line, ``word v_1 ... v_D`` separated by
single spaces, no header; D is read from the first line. A word-level vocabulary
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

import os
import pathlib
from collections.abc import Mapping

import numpy as np

from lcl_jax.data import files

UNKNOWN_VECTOR = "mean"


def read_vectors(path: os.PathLike[str] | str, vocabulary: Mapping[str, int]
                 ) -> tuple[dict[str, np.ndarray], np.ndarray, int]:
  """The vectors of ``vocabulary``'s words in a GloVe file, the mean vector, and D.

  Raises:
    DataFileNotFoundError: no such file.
    MalformedRowError: a line with another number of values than the first, a
      value that is not a number, or an empty file (names the file and line).
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
  with path.open(encoding="utf-8-sig", errors="replace", newline="") as f:
    for line_no, line in enumerate(f, start=1):
      line = line.rstrip("\r\n")
      if not line.strip():
        continue
      if dim == 0:
        dim = len(line.rstrip(" ").split(" ")) - 1
        if dim < 1:
          raise files.MalformedRowError(path, line_no, "expected 'word v_1 ... v_D'")
      parts = line.rstrip(" ").rsplit(" ", dim)
      if len(parts) != dim + 1 or not parts[0]:
        raise files.MalformedRowError(
            path, line_no, f"expected a word and {dim} values (as line 1), got "
            f"{len(parts) - 1} values")
      try:
        vector = np.asarray(parts[1:], dtype=np.float64)
      except ValueError:
        raise files.MalformedRowError(path, line_no, "a value is not a number") from None
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
