"""Empathetic Dialogues (Rashkin et al., 2019): the speaker's situation (``prompt``)
classified into the conversation's emotion (``context``), 32 classes, one item per
conversation: 19,533 / 2,770 / 2,547.

Files: ``<data_dir>/empathetic_dialogues/{train,valid,test}.csv`` in either format,
detected from the header:

* the per-conversation table ``conv_id,context,prompt`` (a proper CSV, one row per
  conversation; what ``shared/data`` holds, see its PROVENANCE.md), or
* the official release's utterance-level CSV ``conv_id,utterance_idx,context,prompt,
  speaker_idx,utterance,selfeval,tags``: one line per utterance, commas inside fields
  written as ``_comma_`` and no CSV quoting (so a line is split on ``,``, as ParlAI and
  the authors' ``ed_data_extract.py`` do; fields after ``prompt`` are ignored, which
  also tolerates the extra candidate column of some test lines). One item per
  ``conv_id``, at its first line; ``_comma_`` -> ``,``, white space stripped at both
  ends (as in the per-conversation table).

Items are in file order. Labels are in the authors' order (``emo_map`` of their
``ed_data_extract.py``). The class subsets of the paper's Table 3 are
:data:`SUBSETS`; any other list goes through ``load_split(..., classes=[...])``.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import numpy as np

from lcl_jax.data import files
from lcl_jax.data.split import Split

LABELS: tuple[str, ...] = (
    "surprised", "excited", "annoyed", "proud", "angry", "sad", "grateful", "lonely",
    "impressed", "afraid", "disgusted", "confident", "terrified", "hopeful", "anxious",
    "disappointed", "joyful", "prepared", "guilty", "furious", "nostalgic", "jealous",
    "anticipating", "embarrassed", "content", "devastated", "sentimental", "caring",
    "trusting", "ashamed", "apprehensive", "faithful")

# The paper's Table 3 subsets, each in the paper's order (= the new class ids).
SUBSETS: dict[str, tuple[str, ...]] = {
    "empathetic_dialogues_16": (
        "afraid", "angry", "annoyed", "anxious", "confident", "disappointed", "disgusted",
        "excited", "grateful", "hopeful", "impressed", "lonely", "proud", "sad",
        "surprised", "terrified"),
    "empathetic_dialogues_8": (
        "angry", "afraid", "ashamed", "disgusted", "guilty", "proud", "sad", "surprised"),
    "empathetic_dialogues_4_easy": ("angry", "afraid", "joyful", "sad"),
    "empathetic_dialogues_4_hard_a": ("anxious", "apprehensive", "afraid", "terrified"),
    "empathetic_dialogues_4_hard_b": ("devastated", "nostalgic", "sad", "sentimental"),
    "empathetic_dialogues_4_hard_c": ("angry", "ashamed", "furious", "guilty"),
    "empathetic_dialogues_4_hard_d": ("anticipating", "excited", "hopeful", "guilty"),
}

FILE_NAMES = {"train": "train.csv", "validation": "valid.csv", "test": "test.csv"}
TABLE_HEADER = ("conv_id", "context", "prompt")
RELEASE_HEADER = ("conv_id", "utterance_idx", "context", "prompt", "speaker_idx",
                  "utterance", "selfeval", "tags")


def _check_label(label: str, path: pathlib.Path, line: int) -> int:
  if label not in LABELS:
    raise files.unknown_label(label, LABELS, where=f"{path}, line {line}")
  return LABELS.index(label)


def _read_table(path: pathlib.Path,
                rows: Iterator[tuple[int, list[str]]]) -> list[tuple[str, int, str]]:
  items: list[tuple[str, int, str]] = []
  seen: dict[str, int] = {}
  for line, row in rows:
    if len(row) != 3:
      raise files.MalformedRowError(
          path, line, f"expected 3 fields (conv_id, context, prompt), got {len(row)}")
    conv_id, context, prompt = row
    if conv_id in seen:
      raise files.MalformedRowError(
          path, line, f"conv_id {conv_id!r} repeats line {seen[conv_id]} (the "
          "per-conversation table has one row per conversation)")
    seen[conv_id] = line
    items.append((conv_id, _check_label(context.strip(), path, line), prompt))
  return items


def _read_release(path: pathlib.Path,
                  lines: Iterator[tuple[int, str]]) -> list[tuple[str, int, str]]:
  items: list[tuple[str, int, str]] = []
  first_line: dict[str, int] = {}
  for line_no, line in lines:
    parts = line.split(",")
    if len(parts) < len(RELEASE_HEADER) - 1:
      raise files.MalformedRowError(
          path, line_no, f"expected {len(RELEASE_HEADER)} comma-separated fields "
          f"({','.join(RELEASE_HEADER)}), got {len(parts)}")
    conv_id, utterance_idx, context = parts[0], parts[1], parts[2].strip()
    if not utterance_idx.strip().isdigit():
      raise files.MalformedRowError(
          path, line_no, f"utterance_idx {utterance_idx!r} is not an integer")
    label = _check_label(context, path, line_no)
    if conv_id in first_line:
      previous = items[-1]
      if previous[0] != conv_id:
        raise files.MalformedRowError(
            path, line_no, f"utterance of conversation {conv_id!r} (first seen on line "
            f"{first_line[conv_id]}) after another conversation; the release lists a "
            "conversation's utterances on consecutive lines")
      if previous[1] != label:
        raise files.MalformedRowError(
            path, line_no, f"context {context!r} differs from the conversation's "
            f"{LABELS[previous[1]]!r} (line {first_line[conv_id]})")
      continue
    first_line[conv_id] = line_no
    items.append((conv_id, label, parts[3].replace("_comma_", ",").strip()))
  return items


def read_conversations(path: pathlib.Path) -> list[tuple[str, int, str]]:
  """``(conv_id, label id, prompt)`` per conversation, in file order (either format).

  Decoding, blank lines, a byte-order mark and empty files as in
  :mod:`lcl_jax.data.files`; a header without rows raises ``EmptyFileError``.
  """
  text = files.read_text(path)
  expected = (f"a header {','.join(TABLE_HEADER)!r} (per-conversation table) or "
              f"{','.join(RELEASE_HEADER)!r} (official release) and rows")
  lines = files.text_lines(text, path, expected=expected)
  header_line_no, header_line = next(lines)
  header = tuple(h.strip() for h in header_line.strip().split(","))
  if header == TABLE_HEADER:
    rows = files.csv_rows(text, path, expected=expected)
    next(rows)
    items = _read_table(path, rows)
  elif header[:4] == RELEASE_HEADER[:4]:
    items = _read_release(path, lines)
  else:
    raise files.MalformedRowError(
        path, header_line_no, f"unrecognised header {header_line.strip()!r}; expected "
        f"{expected}")
  if not items:
    raise files.EmptyFileError(path, header_line_no, "a header but no conversation rows")
  return items


def read_split(data_dir: pathlib.Path, split: str) -> Split:
  """All 32 classes of one split (``split`` canonical: train/validation/test)."""
  path = files.require_file(data_dir / "empathetic_dialogues" / FILE_NAMES[split],
                            dataset="empathetic_dialogues", data_dir=data_dir)
  items = read_conversations(path)
  return Split(dataset="empathetic_dialogues", split=split,
               texts=tuple(prompt for _, _, prompt in items),
               labels=np.array([label for _, label, _ in items], dtype=np.int32),
               label_names=LABELS)
