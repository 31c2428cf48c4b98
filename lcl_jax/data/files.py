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

Reading (:func:`read_text`, :func:`text_lines`, :func:`csv_rows`), the one way every
reader of this package decodes a release file:

* UTF-8, with a leading byte-order mark dropped (``utf-8-sig``), so a BOM neither stays
  in the first text nor hides the first header column;
* a byte that is not UTF-8 raises :class:`MalformedRowError` naming the file, the
  1-based line and the byte (not a bare ``UnicodeDecodeError``);
* a file with no non-blank line raises :class:`EmptyFileError` (a split is never
  silently empty, an EmoInt class never silently missing);
* blank and white-space-only lines (e.g. a trailing empty line) are skipped; line
  numbers in errors stay those of the file.

Errors (all subclasses of built-in exceptions, so ``except ValueError`` still works):

* :class:`DataFileNotFoundError` -- names the file, the dataset and where it looked;
* :class:`MalformedRowError` -- names the file and the 1-based line number;
* :class:`EmptyFileError` -- a :class:`MalformedRowError` for a file without data rows;
* :class:`UnknownLabelError` -- names the label and lists the known ones.
"""

from __future__ import annotations

import csv
import io
import os
import pathlib
from collections.abc import Iterator, Sequence

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


class EmptyFileError(MalformedRowError):
  """A release file has no data rows (empty, blank lines only, or a header only)."""


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


def decode_text(raw: bytes, path: os.PathLike[str] | str) -> str:
  """Decodes a release file's bytes as UTF-8, dropping a leading byte-order mark.

  Args:
    raw: the file's bytes.
    path: the file (or ``archive!member``) named in errors.

  Returns:
    The text, line endings untouched.

  Raises:
    MalformedRowError: a byte sequence is not UTF-8 (names the line, 1-based, and the
      offending bytes).
  """
  try:
    return raw.decode("utf-8-sig")
  except UnicodeDecodeError as e:
    line = raw.count(b"\n", 0, e.start) + 1
    bad = raw[e.start:e.end]
    raise MalformedRowError(
        path, line, f"not valid UTF-8 (byte(s) {bad!r} at byte offset {e.start}: {e.reason}); "
        "the release files are UTF-8 -- re-save the file as UTF-8") from None


def read_text(path: os.PathLike[str] | str) -> str:
  """The whole file, decoded by :func:`decode_text`."""
  return decode_text(pathlib.Path(path).read_bytes(), path)


def require_content(text: str, path: os.PathLike[str] | str, *, expected: str) -> str:
  """Returns ``text``; raises :class:`EmptyFileError` if it has no non-blank line.

  ``expected`` says what the file should hold (for the message).
  """
  if not text.strip():
    raise EmptyFileError(path, 1, f"the file is empty (no non-blank line); expected "
                         f"{expected}")
  return text


def text_lines(text: str, path: os.PathLike[str] | str, *,
               expected: str) -> Iterator[tuple[int, str]]:
  """``(line number, line)`` of each non-blank line of ``text``, line ends removed.

  Line numbers are 1-based and count every line, blank ones included. Lines end at
  ``\n`` (a ``\r`` before it is dropped; a lone ``\r`` inside a line is kept, as in
  the line-per-record release formats).

  Raises:
    EmptyFileError: no non-blank line (raised before anything is yielded).
  """
  require_content(text, path, expected=expected)
  for line_no, line in enumerate(text.split("\n"), start=1):
    line = line.removesuffix("\r")
    if line.strip():
      yield line_no, line


def csv_rows(text: str, path: os.PathLike[str] | str, *, expected: str,
             delimiter: str = ",") -> Iterator[tuple[int, list[str]]]:
  """``(line number, fields)`` of each CSV record of ``text``, skipping blank lines.

  A record is skipped when it is one line whose fields are all empty or white space
  (a blank or white-space-only line; with a tab delimiter a line of tabs is one too). Quoted fields may span lines (the standard ``csv`` dialect with
  ``delimiter``); the line number is the record's first line, 1-based.

  Raises:
    EmptyFileError: no non-blank line (raised before anything is yielded).
    MalformedRowError: the csv module rejects a record (names its line).
  """
  require_content(text, path, expected=expected)
  reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
  start = 1
  while True:
    line = start
    try:
      row = next(reader)
    except StopIteration:
      return
    except csv.Error as e:
      raise MalformedRowError(path, line, f"not a valid CSV record: {e}") from None
    start = reader.line_num + 1
    if reader.line_num == line and not "".join(row).strip():
      continue  # a blank or white-space-only line (a tab included)
    yield line, row
