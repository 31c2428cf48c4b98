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

Coarse labelings (seed 004's auxiliary tasks, Section 3.2): the release's
``sentiment_dict.json`` (positive / negative / ambiguous) and ``ekman_mapping.json``
(anger, disgust, fear, joy, sadness, surprise) group the 27 emotions; ``neutral`` is its
own group (the GoEmotions paper's convention). `coarse_labels` maps the 28-label
multi-hot matrix to the groups' multi-hot matrix (an example is in every group one of its
emotions belongs to).
"""

from __future__ import annotations

import csv
import json
import os
import pathlib

import numpy as np

from lcl_jax import choices
from lcl_jax.data import files
from lcl_jax.data.split import Split

EMOTIONS: tuple[str, ...] = (
    "admiration", "amusement", "anger", "annoyance", "approval", "caring", "confusion",
    "curiosity", "desire", "disappointment", "disapproval", "disgust", "embarrassment",
    "excitement", "fear", "gratitude", "grief", "joy", "love", "nervousness", "optimism",
    "pride", "realization", "relief", "remorse", "sadness", "surprise", "neutral")
NEUTRAL_ID = 27
FILE_NAMES = {"train": "train.tsv", "validation": "dev.tsv", "test": "test.tsv"}
# Coarse groupings of the 27 emotions (+ neutral): grouping -> the release's mapping file.
COARSE_GROUPINGS = choices.COARSE_GROUPINGS  # ("ekman", "sentiment"), lcl_jax.choices
GROUPING_FILES = {"ekman": "ekman_mapping.json", "sentiment": "sentiment_dict.json"}


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


def _read_grouping(grouping: str, data_dir: os.PathLike[str] | str | None
                   ) -> tuple[pathlib.Path, dict[str, list[str]]]:
  """The mapping file of `grouping` (group -> member emotions), checked: a JSON object of
  lists of emotion names, every one of the 27 non-neutral emotions in exactly one group."""
  if grouping not in COARSE_GROUPINGS:
    raise ValueError(f"grouping={grouping!r}; expected one of {COARSE_GROUPINGS}")
  dataset = "goemotions_multilabel"
  base = files.resolve_data_dir(data_dir, dataset=dataset)
  path = files.require_file(base / "goemotions" / GROUPING_FILES[grouping], dataset=dataset,
                            data_dir=base)
  text = files.read_text(path)
  try:
    groups = json.loads(text)
  except json.JSONDecodeError as e:
    raise files.MalformedRowError(path, e.lineno, f"not valid JSON: {e.msg}") from None
  if (not isinstance(groups, dict) or not groups
      or any(not isinstance(v, list) or not all(isinstance(x, str) for x in v)
             for v in groups.values())):
    raise files.MalformedRowError(path, 1, "expected a JSON object mapping each group name "
                                  "to a list of emotion names")
  if "neutral" in groups:
    raise files.MalformedRowError(path, 1, "'neutral' is added as its own group; the file "
                                  "must not list it")
  seen: dict[str, str] = {}
  for group, members in groups.items():
    for emotion in members:
      if emotion not in EMOTIONS[:NEUTRAL_ID]:
        raise files.MalformedRowError(
            path, 1, f"group {group!r}: {emotion!r} is not one of the 27 GoEmotions "
            f"emotions {list(EMOTIONS[:NEUTRAL_ID])}")
      if emotion in seen:
        raise files.MalformedRowError(
            path, 1, f"{emotion!r} is in two groups ({seen[emotion]!r}, {group!r})")
      seen[emotion] = group
  missing = [e for e in EMOTIONS[:NEUTRAL_ID] if e not in seen]
  if missing:
    raise files.MalformedRowError(path, 1, f"no group for the emotions {missing}")
  return path, groups


def coarse_label_names(grouping: str, data_dir: os.PathLike[str] | str | None = None
                       ) -> tuple[str, ...]:
  """The groups of a coarse labeling, in the mapping file's order, then ``"neutral"``.

  ``sentiment``: ('positive', 'negative', 'ambiguous', 'neutral'); ``ekman``: ('anger',
  'disgust', 'fear', 'joy', 'sadness', 'surprise', 'neutral') with the release's files.

  Raises:
    ValueError: unknown `grouping`.
    files.DataFileNotFoundError: the mapping file is not in ``<data_dir>/goemotions/``.
    files.MalformedRowError: the file is not a valid grouping of the 27 emotions.
  """
  _, groups = _read_grouping(grouping, data_dir)
  return tuple(groups) + (EMOTIONS[NEUTRAL_ID],)


def emotion_groups(grouping: str, data_dir: os.PathLike[str] | str | None = None
                   ) -> dict[str, str]:
  """Emotion name -> its group under `grouping` (``neutral`` -> ``neutral``); the 28
  names of `EMOTIONS`. Errors as `coarse_label_names`."""
  _, groups = _read_grouping(grouping, data_dir)
  out = {emotion: group for group, members in groups.items() for emotion in members}
  out[EMOTIONS[NEUTRAL_ID]] = EMOTIONS[NEUTRAL_ID]
  return {emotion: out[emotion] for emotion in EMOTIONS}


def coarse_mapping(grouping: str, data_dir: os.PathLike[str] | str | None = None
                   ) -> np.ndarray:
  """int32 [28, G] 0/1 matrix: entry (e, g) is 1 when emotion e (index of `EMOTIONS`)
  belongs to group g (index of `coarse_label_names`). Errors as `coarse_label_names`."""
  _, groups = _read_grouping(grouping, data_dir)
  names = tuple(groups) + (EMOTIONS[NEUTRAL_ID],)
  matrix = np.zeros((len(EMOTIONS), len(names)), np.int32)
  for g, group in enumerate(names):
    members = groups.get(group, [EMOTIONS[NEUTRAL_ID]])
    matrix[[EMOTIONS.index(e) for e in members], g] = 1
  return matrix


def coarse_labels(multi_hot28: np.ndarray, grouping: str,
                  data_dir: os.PathLike[str] | str | None = None) -> np.ndarray:
  """The coarse multi-hot labels of GoEmotions-28 examples (seed 004's auxiliary tasks).

  Args:
    multi_hot28: int/bool [N, 28] multi-hot over `EMOTIONS` (``goemotions_multilabel``'s
      labels; neutral last).
    grouping: ``"ekman"`` or ``"sentiment"`` (`COARSE_GROUPINGS`).
    data_dir: the folder holding ``goemotions/`` (None: ``$LCL_DATA_DIR``).

  Returns:
    int32 [N, G] multi-hot over `coarse_label_names(grouping)`: example i is in group g
    when any of its emotions maps to g (so ``grief`` -> negative / sadness, ``surprise``
    -> ambiguous / surprise, ``neutral`` -> neutral; joy + anger -> two groups).

  Raises:
    ValueError: `multi_hot28` is not [N, 28] with 0/1 entries, or an unknown grouping.
    files.DataFileNotFoundError, files.MalformedRowError: as `coarse_label_names`.
  """
  labels = np.asarray(multi_hot28)
  if labels.ndim != 2 or labels.shape[1] != len(EMOTIONS):
    raise ValueError(f"coarse_labels: expected [N, {len(EMOTIONS)}] multi-hot labels, got "
                     f"shape {labels.shape}")
  if labels.size and not np.isin(labels, (0, 1)).all():
    raise ValueError("coarse_labels: the labels must be 0/1 multi-hot")
  mapping = coarse_mapping(grouping, data_dir)
  return (labels.astype(np.int64) @ mapping > 0).astype(np.int32)
