"""ISEAR (Scherer & Wallbott, 1994): 7 emotions, situation descriptions.

File: ``<data_dir>/isear/isear_data.csv``, a full CSV export of the ISEAR databank
(header row, 42 columns, quoted fields; ``Field1`` = emotion name, ``SIT`` =
situation text). 7,666 rows.

Cleaning (:func:`clean_situation`): the Access export breaks long situations into
lines ending in ``á`` (9,530 times), plus a few plain line breaks. We replace every
``á`` + line break (with the spaces around it) and every remaining line break by one
space, collapse runs of white space to one space and strip both ends. (The authors'
code removes only the exact sequence ``"á\\r\\n"``, which never occurs in this
copy, whose breaks are ``"á\\n"``.) Texts such as ``"None."`` are kept.

Split: ISEAR has no official split. The paper splits 60/20/20 with scikit-learn's
``train_test_split(test_size=0.4, random_state=0)`` and then ``test_size=0.5`` on the
held-out part (not stratified). We keep those sizes, 4,599 / 1,533 / 1,534, but draw
a *stratified* split with our own NumPy generator (:func:`split_indices`,
``numpy.random.default_rng(SPLIT_SEED)`` with ``SPLIT_SEED = 0``), so it is
deterministic across scikit-learn versions. It is not the authors' exact partition
(which also depends on their file's row order). Each split keeps the file order.

Labels, in the authors' order (= the ISEAR ``EMOT`` codes 1-7): joy, fear, anger,
sadness, disgust, shame, guilt.
"""

from __future__ import annotations

import csv
import pathlib
import re

import numpy as np

from lcl_jax.data import files
from lcl_jax.data.split import Split, sklearn_split_sizes, stratified_partition

LABELS: tuple[str, ...] = ("joy", "fear", "anger", "sadness", "disgust", "shame", "guilt")
FILE_NAME = "isear_data.csv"
SPLIT_SEED = 0
SPLIT_FRACTIONS = (0.6, 0.2, 0.2)
_SPLIT_INDEX = {"train": 0, "validation": 1, "test": 2}

_EXPORT_BREAK = re.compile(r"[ \t]*\u00e1[ \t]*(?:\r\n|\r|\n)")
_WHITESPACE = re.compile(r"\s+")


def clean_situation(text: str) -> str:
  """Removes the export's ``á``+line-break artefacts and normalises white space."""
  return _WHITESPACE.sub(" ", _EXPORT_BREAK.sub(" ", text)).strip()


def read_all(data_dir: pathlib.Path) -> tuple[list[str], np.ndarray]:
  """All 7,666 cleaned situations and their label ids, in file order."""
  path = files.require_file(data_dir / "isear" / FILE_NAME, dataset="isear",
                            data_dir=data_dir)
  texts: list[str] = []
  labels: list[int] = []
  with path.open(encoding="utf-8", newline="") as f:
    reader = csv.reader(f)
    header = next(reader, None)
    if header is None:
      raise files.MalformedRowError(path, 1, "the file is empty (expected a header row)")
    missing = [c for c in ("Field1", "SIT") if c not in header]
    if missing:
      raise files.MalformedRowError(
          path, 1, f"header lacks column(s) {missing}; ISEAR's export names the emotion "
          f"'Field1' and the situation 'SIT' (header: {header[:6]}...)")
    emotion_col, text_col = header.index("Field1"), header.index("SIT")
    start = reader.line_num + 1
    for row in reader:
      line = start
      start = reader.line_num + 1
      if len(row) != len(header):
        raise files.MalformedRowError(
            path, line, f"expected {len(header)} fields as in the header, got {len(row)}")
      emotion = row[emotion_col].strip()
      if emotion not in LABELS:
        raise files.unknown_label(emotion, LABELS, where=f"{path}, line {line}")
      texts.append(clean_situation(row[text_col]))
      labels.append(LABELS.index(emotion))
  return texts, np.asarray(labels, dtype=np.int32)


def split_indices(labels: np.ndarray, *, seed: int = SPLIT_SEED) -> list[np.ndarray]:
  """Row indices of train / validation / test (60/20/20, stratified, seeded)."""
  sizes = sklearn_split_sizes(len(labels), SPLIT_FRACTIONS)
  return stratified_partition(labels, sizes, seed=seed)


def read_split(data_dir: pathlib.Path, split: str, *, seed: int = SPLIT_SEED) -> Split:
  """One split of ISEAR (``split`` canonical: train/validation/test)."""
  texts, labels = read_all(data_dir)
  idx = split_indices(labels, seed=seed)[_SPLIT_INDEX[split]]
  return Split(dataset="isear", split=split, texts=tuple(texts[i] for i in idx.tolist()),
               labels=labels[idx], label_names=LABELS)
