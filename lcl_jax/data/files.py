"""Locating release files and reporting bad input, shared by the dataset readers.

The data directory (``data_dir``) holds one folder per dataset, as in the project's
``shared/data`` (see its ``PROVENANCE.md``)::

  <data_dir>/goemotions/{train,dev,test}.tsv, emotions.txt
  <data_dir>/sst/trees/{train,dev,test}.txt   (or sst/trainDevTestTrees_PTB.zip)
  <data_dir>/isear/isear_data.csv
  <data_dir>/emoint/{anger,fear,joy,sadness}-ratings-0to1.{train,dev.gold,test.gold}.txt
  <data_dir>/empathetic_dialogues/{train,valid,test}.csv
  <data_dir>/tsa/{train_150k,test_62k}.txt                (not shipped: lcl_jax/data/tsa.py)
  <data_dir>/parsinlu_sentiment/{food,movie}_{train,dev,test}.jsonl  (not shipped)

It comes from the ``data_dir`` argument (the binaries' ``--data_dir`` flag) or, when
that is ``None``, from the environment variable ``LCL_DATA_DIR``.

Errors (all subclasses of built-in exceptions, so ``except ValueError`` still works):

* :class:`DataFileNotFoundError` -- names the file, the dataset and where it looked;
* :class:`MalformedRowError` -- names the file and the 1-based line number;
* :class:`UnknownLabelError` -- names the label and lists the known ones.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Sequence

DATA_DIR_ENV = "LCL_DATA_DIR"


class DataFileNotFoundError(FileNotFoundError):
  """A release file is missing."""


class MalformedRowError(ValueError):
  """A row of a release file does not have the expected format."""

  def __init__(self, path: os.PathLike[str] | str, line: int, problem: str):
    self.path = pathlib.Path(path)
    self.line = line
    self.problem = problem
    super().__init__(f"{self.path}, line {line}: {problem}")


class UnknownLabelError(ValueError):
  """A label name (in a file or an argument) is not one of the dataset's labels."""


def resolve_data_dir(data_dir: os.PathLike[str] | str | None, *, dataset: str) -> pathlib.Path:
  """Returns ``data_dir``, else ``$LCL_DATA_DIR``; raises if neither is set or exists."""
  if data_dir is None:
    env = os.environ.get(DATA_DIR_ENV)
    if not env:
      raise DataFileNotFoundError(
          f"{dataset}: no data directory given. Pass data_dir=... (--data_dir=... for "
          f"the binaries) or set the environment variable {DATA_DIR_ENV} to the folder "
          f"holding the release files ({dataset_layout_hint(dataset)}).")
    path, origin = pathlib.Path(env).expanduser(), f"${DATA_DIR_ENV}"
  else:
    path, origin = pathlib.Path(data_dir).expanduser(), "data_dir"
  if not path.is_dir():
    raise DataFileNotFoundError(
        f"{dataset}: data directory {path} (from {origin}) does not exist or is not a "
        f"directory. Pass data_dir=... (--data_dir) or set {DATA_DIR_ENV}.")
  return path


_LAYOUT_HINTS = {
    "goemotions": "goemotions/{train,dev,test}.tsv",
    "sst": "sst/trees/{train,dev,test}.txt",
    "isear": "isear/isear_data.csv",
    "emoint": "emoint/<emotion>-ratings-0to1.{train,dev.gold,test.gold}.txt",
    "empathetic_dialogues": "empathetic_dialogues/{train,valid,test}.csv",
    "tsa": "tsa/train_150k.txt and tsa/test_62k.txt (the TSATC corpus, "
           "carblacac/twitter-sentiment-analysis)",
    "parsinlu": "parsinlu_sentiment/{food,movie}_{train,dev,test}.jsonl (persiannlp/parsinlu "
                "data/sentiment-analysis)",
}


def dataset_layout_hint(dataset: str) -> str:
  """A short description of where a dataset's files go under the data directory."""
  for prefix, hint in _LAYOUT_HINTS.items():
    if dataset.startswith(prefix):
      return f"expected <data_dir>/{hint}"
  return "see lcl_jax/data/files.py for the layout"


def require_file(path: pathlib.Path, *, dataset: str, data_dir: pathlib.Path,
                 alternatives: Sequence[pathlib.Path] = ()) -> pathlib.Path:
  """Returns ``path`` if it is a file, else raises a :class:`DataFileNotFoundError`.

  The message names the missing file, the dataset, the data directory it looked in
  and how to point the readers elsewhere.
  """
  if path.is_file():
    return path
  also = ""
  if alternatives:
    also = " (also looked for " + ", ".join(str(a) for a in alternatives) + ")"
  raise DataFileNotFoundError(
      f"{dataset}: release file {path} not found{also}. Looked in data directory "
      f"{data_dir} (set by data_dir=... / --data_dir, else ${DATA_DIR_ENV}); "
      f"{dataset_layout_hint(dataset)}.")


def unknown_label(label: str, known: Sequence[str], *, where: str) -> UnknownLabelError:
  """Builds the error for an unknown label name, listing the known ones."""
  return UnknownLabelError(f"{where}: unknown label {label!r}; known labels: "
                           f"{', '.join(known)}")
