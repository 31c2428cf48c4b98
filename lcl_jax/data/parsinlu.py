"""ParsiNLU sentiment (Khashabi et al., 2020; seed 001's "PNS"): Persian food and movie
reviews, sentence-level sentiment, as seed 001 uses it (with mBERT).

The public files of ``persiannlp/parsinlu`` (``data/sentiment-analysis/``; not shipped
in ``shared/data``), placed as::

  <data_dir>/parsinlu_sentiment/{food,movie}_{train,dev,test}.jsonl

One example per line: a JSON object, or -- as the repository writes them -- a Python
dict literal (single quotes; read with `ast.literal_eval`, which evaluates literals
only). Columns used: ``review`` (the text), ``aspect`` and ``label``; the others
(``review_id``, ``question``, ``category``, ``example_id``, ``guid``) are ignored.
Each review appears once per aspect question; the sentence-level task is the row of
the overall aspect ``کلی`` ("overall"), one per review. Labels are the strings
``-3`` .. ``3`` (seed 001: "labels from -3 to +3"), class id = label + 3.

Splits as seed 001: "training was done on the whole dataset but tested only on the
movies portion of the test set" -- train = food_train + movie_train, validation =
food_dev + movie_dev, test = movie_test (files concatenated in that order). Decoding,
blank lines, a byte-order mark and empty files as in :mod:`lcl_jax.data.files`.
"""

from __future__ import annotations

import ast
import json
import pathlib

import numpy as np

from lcl_jax.data import files
from lcl_jax.data.split import Split

LABELS: tuple[str, ...] = ("-3", "-2", "-1", "0", "1", "2", "3")
FOLDER = "parsinlu_sentiment"
OVERALL_ASPECT = "کلی"
SPLIT_FILES = {
    "train": ("food_train.jsonl", "movie_train.jsonl"),
    "validation": ("food_dev.jsonl", "movie_dev.jsonl"),
    "test": ("movie_test.jsonl",),
}
_COLUMNS = ("review", "aspect", "label")


def _parse_line(line: str, path: pathlib.Path, line_no: int) -> dict:
  try:
    row = json.loads(line)
  except json.JSONDecodeError:
    try:
      row = ast.literal_eval(line)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
      raise files.MalformedRowError(
          path, line_no, "neither a JSON object nor a Python dict literal") from None
  if not isinstance(row, dict):
    raise files.MalformedRowError(path, line_no,
                                  f"expected an object, got {type(row).__name__}")
  missing = [key for key in _COLUMNS if key not in row]
  if missing:
    raise files.MalformedRowError(path, line_no, f"missing column(s) {missing}")
  return row


def read_file(path: pathlib.Path, *, aspect: str | None = OVERALL_ASPECT
              ) -> tuple[list[str], list[int]]:
  """Reviews and class ids (label + 3) of one file's rows of ``aspect`` (None: all rows).

  Raises:
    MalformedRowError: an unparsable line, a missing column, or a label outside
      -3..3 (names the file and the 1-based line); ``EmptyFileError`` for an empty file.
  """
  texts: list[str] = []
  labels: list[int] = []
  for line_no, line in files.text_lines(files.read_text(path), path,
                                       expected="one JSON / dict-literal row per line"):
    row = _parse_line(line.strip(), path, line_no)
    if aspect is not None and str(row["aspect"]).strip() != aspect:
      continue
    label = str(row["label"]).strip()
    if label not in LABELS:
      raise files.MalformedRowError(path, line_no,
                                    f"label {row['label']!r} is not one of {list(LABELS)}")
    texts.append(str(row["review"]))
    labels.append(LABELS.index(label))
  return texts, labels


def read_split(data_dir: pathlib.Path, split: str) -> Split:
  """One split (``split`` canonical: train/validation/test), overall-aspect rows.

  Raises:
    DataFileNotFoundError: a file is missing (the message names it and the expected
      layout ``parsinlu_sentiment/{food,movie}_{train,dev,test}.jsonl``).
  """
  texts: list[str] = []
  labels: list[int] = []
  for name in SPLIT_FILES[split]:
    path = files.require_file(data_dir / FOLDER / name, dataset="parsinlu_sentiment",
                              data_dir=data_dir)
    file_texts, file_labels = read_file(path)
    texts.extend(file_texts)
    labels.extend(file_labels)
  return Split(dataset="parsinlu_sentiment", split=split, texts=tuple(texts),
               labels=np.asarray(labels, dtype=np.int32), label_names=LABELS)
