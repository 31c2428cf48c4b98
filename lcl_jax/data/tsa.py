"""Twitter sentiment analysis (TSA; seed 001's Table 2): tweets, negative / positive.

The public files of the TSATC corpus (``carblacac/twitter-sentiment-analysis`` on the
Hugging Face hub, built from ``cblancac/SentimentAnalysisBert/data``; not shipped in
``shared/data``), placed as::

  <data_dir>/tsa/train_150k.txt
  <data_dir>/tsa/test_62k.txt

Each line: ``label<TAB>tweet`` with no header; label ``0`` = negative, ``1`` =
positive. The hub dataset splits the train file 80 / 20 into train and validation; we
do the same with a seeded stratified partition (:func:`lcl_jax.data.split.
holdout_split`, seed :data:`VALIDATION_SEED`), so the validation rows are not
the hub's (its seed is not published). Texts are kept as written (the corpus is
already cleaned by its author). Decoding, blank lines, a byte-order mark and empty
files as in :mod:`lcl_jax.data.files`.
"""

from __future__ import annotations

import pathlib

import numpy as np

from lcl_jax.data import files
from lcl_jax.data.split import Split, holdout_split

LABELS: tuple[str, ...] = ("negative", "positive")
FOLDER = "tsa"
FILE_NAMES = {"train": "train_150k.txt", "test": "test_62k.txt"}
VALIDATION_FRACTION = 0.2
VALIDATION_SEED = 0


def read_file(path: pathlib.Path) -> tuple[list[str], list[int]]:
  """Tweets and 0/1 labels of one TSA file, in file order.

  Raises:
    MalformedRowError: a line without a tab, or a label other than 0/1 (names the
      file and the 1-based line); ``EmptyFileError`` for an empty file.
  """
  texts: list[str] = []
  labels: list[int] = []
  for line_no, line in files.text_lines(files.read_text(path), path,
                                       expected="lines 'label<TAB>tweet'"):
    label, sep, tweet = line.partition("\t")
    if not sep:
      raise files.MalformedRowError(path, line_no,
                                    "expected 'label<TAB>tweet' (no tab found)")
    if label.strip() not in ("0", "1"):
      raise files.MalformedRowError(
          path, line_no, f"label {label!r} is not 0 (negative) or 1 (positive)")
    texts.append(tweet)
    labels.append(int(label))
  return texts, labels


def read_split(data_dir: pathlib.Path, split: str) -> Split:
  """One split (``split`` canonical: train/validation/test).

  Raises:
    DataFileNotFoundError: the file is missing (the message names the expected
      files ``tsa/train_150k.txt`` and ``tsa/test_62k.txt``).
  """
  name = "test" if split == "test" else "train"
  path = files.require_file(data_dir / FOLDER / FILE_NAMES[name], dataset="tsa",
                            data_dir=data_dir)
  texts, labels = read_file(path)
  label_array = np.asarray(labels, dtype=np.int32)
  if split != "test":
    texts, label_array = holdout_split(texts, label_array, split,
                                       fraction=VALIDATION_FRACTION, seed=VALIDATION_SEED)
  return Split(dataset="tsa", split=split, texts=tuple(texts), labels=label_array,
               label_names=LABELS)
