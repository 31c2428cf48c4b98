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

Split: ISEAR has no official split. Two are offered, both 4,599 / 1,533 / 1,534:

* ``isear`` (default) -- the authors' release split (their ``data_preprocess.py``):
  scikit-learn ``train_test_split(texts, labels, test_size=0.4, random_state=0)`` on
  the rows in file order, then ``train_test_split(held_out, test_size=0.5,
  random_state=0)`` on the held-out 40%, whose *first* part (1,533) is validation and
  second (1,534) test. Both calls shuffle (scikit-learn's default) and neither
  stratifies; each split is in scikit-learn's (shuffled) order, exactly the lists the
  release passes on (:func:`release_split_indices`). The partition depends only on the
  number of rows (scikit-learn draws ``RandomState(0).permutation(n)``), so it equals
  the authors' as far as their ``ISEAR.csv`` lists the rows in this file's order.
* ``isear_stratified`` -- our earlier split (:func:`stratified_split_indices`): the same
  sizes, stratified (every emotion within one example of its exact share in each split)
  with ``numpy.random.default_rng(0)``, independent of scikit-learn; each split in file
  order. Its test set shares 301 of 1,534 rows with the release split's.

Labels, in the authors' order (= the ISEAR ``EMOT`` codes 1-7): joy, fear, anger,
sadness, disgust, shame, guilt.
"""

from __future__ import annotations

import pathlib
import re

import numpy as np

from lcl_jax.data import files
from lcl_jax.data.split import Split, sklearn_split_sizes, stratified_partition

LABELS: tuple[str, ...] = ("joy", "fear", "anger", "sadness", "disgust", "shame", "guilt")
FILE_NAME = "isear_data.csv"
SPLIT_SEED = 0
RELEASE_TEST_SIZE = 0.4      # first train_test_split: train vs. held out
RELEASE_HELD_OUT_TEST_SIZE = 0.5  # second: validation vs. test of the held-out part
SPLIT_FRACTIONS = (0.6, 0.2, 0.2)
SPLITTERS = ("release", "stratified")
_SPLIT_INDEX = {"train": 0, "validation": 1, "test": 2}

_EXPORT_BREAK = re.compile(r"[ \t]*\u00e1[ \t]*(?:\r\n|\r|\n)")
_WHITESPACE = re.compile(r"\s+")


def clean_situation(text: str) -> str:
  """Removes the export's ``á``+line-break artefacts and normalises white space."""
  return _WHITESPACE.sub(" ", _EXPORT_BREAK.sub(" ", text)).strip()


def read_all(data_dir: pathlib.Path) -> tuple[list[str], np.ndarray]:
  """All 7,666 cleaned situations and their label ids, in file order.

  Decoding, blank lines, a byte-order mark and empty files as in
  :mod:`lcl_jax.data.files`; a header without rows raises ``EmptyFileError``.
  """
  path = files.require_file(data_dir / "isear" / FILE_NAME, dataset="isear",
                            data_dir=data_dir)
  texts: list[str] = []
  labels: list[int] = []
  rows = files.csv_rows(files.read_text(path), path,
                        expected="a CSV header naming 'Field1' (emotion) and 'SIT' (text)")
  _, header = next(rows)
  missing = [c for c in ("Field1", "SIT") if c not in header]
  if missing:
    raise files.MalformedRowError(
        path, 1, f"header lacks column(s) {missing}; ISEAR's export names the emotion "
        f"'Field1' and the situation 'SIT' (header: {header[:6]}...)")
  emotion_col, text_col = header.index("Field1"), header.index("SIT")
  for line, row in rows:
    if len(row) != len(header):
      raise files.MalformedRowError(
          path, line, f"expected {len(header)} fields as in the header, got {len(row)}")
    emotion = row[emotion_col].strip()
    if emotion not in LABELS:
      raise files.unknown_label(emotion, LABELS, where=f"{path}, line {line}")
    texts.append(clean_situation(row[text_col]))
    labels.append(LABELS.index(emotion))
  if not texts:
    raise files.EmptyFileError(path, 1, "a header but no data rows")
  return texts, np.asarray(labels, dtype=np.int32)


def release_split_indices(num_rows: int) -> list[np.ndarray]:
  """Row indices of train / validation / test as the authors' release splits them.

  ``train_test_split(test_size=0.4, random_state=0)``, then
  ``train_test_split(test_size=0.5, random_state=0)`` on the held-out rows (first part
  validation, second test); not stratified, shuffled; each array in scikit-learn's
  order. For 7,666 rows: 4,599 / 1,533 / 1,534.
  """
  from sklearn.model_selection import train_test_split  # pylint: disable=g-import-not-at-top
  rows = np.arange(num_rows)
  train, held_out = train_test_split(rows, test_size=RELEASE_TEST_SIZE,
                                     random_state=SPLIT_SEED)
  validation, test = train_test_split(held_out, test_size=RELEASE_HELD_OUT_TEST_SIZE,
                                      random_state=SPLIT_SEED)
  return [np.asarray(part, dtype=np.int64) for part in (train, validation, test)]


def stratified_split_indices(labels: np.ndarray, *,
                             seed: int = SPLIT_SEED) -> list[np.ndarray]:
  """Row indices of train / validation / test (60/20/20, stratified, seeded; each
  ascending, i.e. in file order)."""
  sizes = sklearn_split_sizes(len(labels), SPLIT_FRACTIONS)
  return stratified_partition(labels, sizes, seed=seed)


def read_split(data_dir: pathlib.Path, split: str, *, splitter: str = "release",
               seed: int = SPLIT_SEED) -> Split:
  """One split of ISEAR (``split`` canonical: train/validation/test).

  Args:
    data_dir: the data directory.
    split: ``"train"``, ``"validation"`` or ``"test"``.
    splitter: ``"release"`` (dataset ``isear``, the authors' split) or
      ``"stratified"`` (dataset ``isear_stratified``); see the module docstring.
    seed: the stratified split's NumPy seed (``splitter="stratified"`` only).
  """
  if splitter not in SPLITTERS:
    raise ValueError(f"unknown ISEAR splitter {splitter!r}; expected one of {SPLITTERS}")
  texts, labels = read_all(data_dir)
  if splitter == "release":
    name, parts = "isear", release_split_indices(len(labels))
  else:
    name, parts = "isear_stratified", stratified_split_indices(labels, seed=seed)
  idx = parts[_SPLIT_INDEX[split]]
  return Split(dataset=name, split=split, texts=tuple(texts[i] for i in idx.tolist()),
               labels=labels[idx], label_names=LABELS)
