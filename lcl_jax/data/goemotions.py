"""GoEmotions (Demszky et al., 2020) from the official ``goemotions/data`` TSVs.

Files (no header): ``<data_dir>/goemotions/{train,dev,test}.tsv`` with three
tab-separated columns -- comment text, comma-separated label ids ``0..27`` (indices into
``emotions.txt``; 27 = ``neutral``), Reddit comment id. Texts containing ``"`` are
CSV-quoted (a text ``"I didn't ..." Oh look`` is written with its quotes doubled and
the field quoted), so the files are read with a CSV reader
(tab delimiter, standard double-quote handling), as ``pandas.read_csv(sep='\\t')`` does.

Three datasets:

* ``goemotions`` -- the LCL paper's version: rows with exactly one label id that is not
  ``neutral``; 27 classes, label id = GoEmotions id (as in the authors' release).
  23,485 / 2,956 / 2,984 examples.
* ``goemotions_multilabel`` -- every row, int32 multi-hot over all 28 labels
  (``neutral`` last). 43,410 / 5,426 / 5,427 examples.
* ``goemotions_first_label`` -- seed 001's version ("some samples have multiple labels
  we only used the first one"): every row with at least one non-neutral label,
  labelled with its first non-neutral id in the file's order; 27 classes.
  30,587 / 3,834 / 3,821 examples (the paper filter's 23,485 / 2,956 / 2,984 plus the
  7,102 / 878 / 837 multi-label rows). The release files list ids in ascending order,
  so neutral (27) is never first.
"""

from __future__ import annotations

import csv
import pathlib

import numpy as np

from lcl_jax.data import files
from lcl_jax.data.split import Split

EMOTIONS: tuple[str, ...] = (
    "admiration", "amusement", "anger", "annoyance", "approval", "caring", "confusion",
    "curiosity", "desire", "disappointment", "disapproval", "disgust", "embarrassment",
    "excitement", "fear", "gratitude", "grief", "joy", "love", "nervousness", "optimism",
    "pride", "realization", "relief", "remorse", "sadness", "surprise", "neutral")
NEUTRAL_ID = 27
FILE_NAMES = {"train": "train.tsv", "validation": "dev.tsv", "test": "test.tsv"}


def _check_emotions_file(folder: pathlib.Path) -> None:
  """Verifies ``emotions.txt`` (when present) lists the 28 labels in our order."""
  path = folder / "emotions.txt"
  if not path.is_file():
    return
  names = [line.strip() for _, line in files.text_lines(
      files.read_text(path), path, expected="the 28 GoEmotions label names, one a line")]
  if tuple(names) != EMOTIONS:
    raise files.MalformedRowError(
        path, 1, f"expected the 28 GoEmotions labels {list(EMOTIONS)}, found {names}")


def read_rows(path: pathlib.Path, *, ordered: bool = False
              ) -> tuple[list[str], list[tuple[int, ...]]]:
  """Reads one TSV: texts and label-id tuples (unique; sorted, or in the field's order
  when ``ordered``), in file order.

  Decoding, blank lines, a byte-order mark and empty files as in
  :mod:`lcl_jax.data.files` (an empty file raises ``EmptyFileError``).
  """
  texts: list[str] = []
  label_sets: list[tuple[int, ...]] = []
  content = files.read_text(path)
  for line, row in files.csv_rows(content, path, delimiter="\t",
                                  expected="tab-separated rows (text, label ids, comment id)"):
    if len(row) != 3:
      raise files.MalformedRowError(
          path, line, "expected 3 tab-separated fields (text, label ids, comment id), "
          f"got {len(row)}: {str(row)[:200]}")
    text, ids_field, _ = row
    try:
      listed = [int(x) for x in ids_field.split(",")]
      ids = tuple(dict.fromkeys(listed)) if ordered else tuple(sorted(set(listed)))
    except ValueError:
      raise files.MalformedRowError(
          path, line, f"label field {ids_field!r} is not a comma-separated list of "
          "integers") from None
    if not ids or min(ids) < 0 or max(ids) >= len(EMOTIONS):
      raise files.MalformedRowError(
          path, line, f"label ids {ids_field!r} outside 0..{len(EMOTIONS) - 1}")
    texts.append(text)
    label_sets.append(ids)
  return texts, label_sets


def read_split(data_dir: pathlib.Path, split: str, *, multilabel: bool = False,
               first_label: bool = False) -> Split:
  """Reads one split (``split`` canonical: train/validation/test).

  ``multilabel``: ``goemotions_multilabel``; ``first_label``: seed 001's
  ``goemotions_first_label``; neither: the paper's ``goemotions``.
  """
  if multilabel and first_label:
    raise ValueError("multilabel and first_label are exclusive")
  name = ("goemotions_multilabel" if multilabel else
          "goemotions_first_label" if first_label else "goemotions")
  folder = data_dir / "goemotions"
  path = files.require_file(folder / FILE_NAMES[split], dataset=name, data_dir=data_dir)
  _check_emotions_file(folder)
  texts, label_sets = read_rows(path, ordered=first_label)
  if first_label:
    firsts = [next((i for i in ids if i != NEUTRAL_ID), None) for ids in label_sets]
    keep = [row for row, first in enumerate(firsts) if first is not None]
    return Split(dataset=name, split=split, texts=tuple(texts[i] for i in keep),
                 labels=np.array([firsts[i] for i in keep], dtype=np.int32),
                 label_names=EMOTIONS[:NEUTRAL_ID], multilabel=False)
  if multilabel:
    labels = np.zeros((len(texts), len(EMOTIONS)), dtype=np.int32)
    for i, ids in enumerate(label_sets):
      labels[i, list(ids)] = 1
    return Split(dataset=name, split=split, texts=tuple(texts), labels=labels,
                 label_names=EMOTIONS, multilabel=True)
  keep = [i for i, ids in enumerate(label_sets) if len(ids) == 1 and ids[0] != NEUTRAL_ID]
  return Split(dataset=name, split=split, texts=tuple(texts[i] for i in keep),
               labels=np.array([label_sets[i][0] for i in keep], dtype=np.int32),
               label_names=EMOTIONS[:NEUTRAL_ID], multilabel=False)
