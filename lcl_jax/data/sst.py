"""Stanford Sentiment Treebank (Socher et al., 2013): SST-5 and sentence-level SST-2.

Files: ``<data_dir>/sst/trees/{train,dev,test}.txt`` as extracted from Stanford's
``trainDevTestTrees_PTB.zip`` (read from ``<data_dir>/sst/trainDevTestTrees_PTB.zip``
directly when the ``trees/`` folder is absent). One PTB-style tree per line with a
sentiment label ``0..4`` on every node, e.g. ``(3 (2 It) (4 (2 's) (3 lovely)))``.

* ``sst5`` -- the root label of each sentence, 5 classes; 8,544 / 1,101 / 2,210.
* ``sst2`` -- sentence level: root label 2 (neutral) dropped, 0-1 -> ``negative`` (0),
  3-4 -> ``positive`` (1); 6,920 / 872 / 1,821. No phrase-level training data (unlike
  GLUE's SST-2, whose train split has 67,349 phrases).

Text = the leaves joined by single spaces (the treebank's tokenisation is kept), with
the PTB escapes of brackets mapped back (``-LRB-`` -> ``(``, ``-RRB-`` -> ``)``,
likewise ``-LSB-``/``-RSB-``/``-LCB-``/``-RCB-``) and backslash escapes removed
(``\\/`` -> ``/``, ``\\*`` -> ``*``). PTB quotes (````` `` ``, ``''``) are kept as they
are. The authors' extraction additionally applied ``clean_str_sst`` (drops every
character outside ``[A-Za-z0-9(),!?'`]``); we do not, since it strips punctuation and
accented letters that a WordPiece tokenizer handles.
"""

from __future__ import annotations

import pathlib
import re
import zipfile

import numpy as np

from lcl_jax.data import files
from lcl_jax.data.split import Split

SST5_LABELS: tuple[str, ...] = ("very negative", "negative", "neutral", "positive",
                                "very positive")
SST2_LABELS: tuple[str, ...] = ("negative", "positive")
FILE_NAMES = {"train": "train.txt", "validation": "dev.txt", "test": "test.txt"}
ZIP_NAME = "trainDevTestTrees_PTB.zip"

PTB_ESCAPES = {"-LRB-": "(", "-RRB-": ")", "-LSB-": "[", "-RSB-": "]",
               "-LCB-": "{", "-RCB-": "}"}
_TOKEN = re.compile(r"\(|\)|[^() ]+")
_BACKSLASH_ESCAPE = re.compile(r"\\([/*])")


def unescape_token(token: str) -> str:
  """Maps a PTB leaf back to its surface form (``-LRB-`` -> ``(``, ``\\/`` -> ``/``)."""
  return _BACKSLASH_ESCAPE.sub(r"\1", PTB_ESCAPES.get(token, token))


def parse_tree(line: str) -> tuple[int, list[str]]:
  """Parses one PTB sentiment tree: returns ``(root label, leaves)``.

  Leaves are returned as written (escaped); see :func:`unescape_token`.

  Raises:
    ValueError: unbalanced brackets, a node without a ``0..4`` label, or trailing text.
  """
  tokens = _TOKEN.findall(line.strip())
  if not tokens or tokens[0] != "(":
    raise ValueError("a tree must start with '('")
  leaves: list[str] = []
  pos = 0

  def node() -> int:
    nonlocal pos
    if tokens[pos] != "(":
      raise ValueError(f"expected '(' at token {pos}, got {tokens[pos]!r}")
    pos += 1
    if pos >= len(tokens) or not re.fullmatch(r"[0-4]", tokens[pos]):
      got = tokens[pos] if pos < len(tokens) else "end of line"
      raise ValueError(f"expected a sentiment label 0-4 after '(', got {got!r}")
    label = int(tokens[pos])
    pos += 1
    if pos < len(tokens) and tokens[pos] not in "()":
      leaves.append(tokens[pos])
      pos += 1
    else:
      children = 0
      while pos < len(tokens) and tokens[pos] == "(":
        node()
        children += 1
      if children == 0:
        raise ValueError("a node has neither a word nor children")
    if pos >= len(tokens) or tokens[pos] != ")":
      raise ValueError("unbalanced brackets: missing ')'")
    pos += 1
    return label

  try:
    root = node()
  except IndexError:
    raise ValueError("unbalanced brackets: the line ends inside a node") from None
  if pos != len(tokens):
    raise ValueError(f"unexpected text after the tree: {' '.join(tokens[pos:])[:60]!r}")
  return root, leaves


def _tree_text(data_dir: pathlib.Path, split: str,
               dataset: str) -> tuple[pathlib.Path, str]:
  """The decoded tree file of a split, from ``sst/trees/`` or else from the zip."""
  folder = data_dir / "sst"
  path = folder / "trees" / FILE_NAMES[split]
  if path.is_file():
    return path, files.read_text(path)
  archive = folder / ZIP_NAME
  if archive.is_file():
    with zipfile.ZipFile(archive) as zf:
      member = f"trees/{FILE_NAMES[split]}"
      try:
        raw = zf.read(member)
      except KeyError:
        raise files.DataFileNotFoundError(
            f"{dataset}: {archive} has no member {member}") from None
    where = pathlib.Path(f"{archive}!{member}")
    return where, files.decode_text(raw, where)
  # Neither exists: raises DataFileNotFoundError naming both.
  files.require_file(path, dataset=dataset, data_dir=data_dir, alternatives=(archive,))
  raise AssertionError("unreachable")


def read_trees(data_dir: pathlib.Path, split: str, *,
               dataset: str = "sst5") -> tuple[list[str], np.ndarray]:
  """Texts and root labels ``0..4`` of one split, in file order.

  Decoding, blank lines, a byte-order mark and empty files as in
  :mod:`lcl_jax.data.files` (an empty file raises ``EmptyFileError``).
  """
  path, text = _tree_text(data_dir, split, dataset)
  texts: list[str] = []
  labels: list[int] = []
  for line_no, line in files.text_lines(text, path, expected="one PTB sentiment tree a line"):
    try:
      root, leaves = parse_tree(line)
    except ValueError as e:
      raise files.MalformedRowError(path, line_no, f"not a PTB sentiment tree: {e}") from None
    texts.append(" ".join(unescape_token(t) for t in leaves))
    labels.append(root)
  return texts, np.asarray(labels, dtype=np.int32)


def read_split(data_dir: pathlib.Path, split: str, *, binary: bool = False) -> Split:
  """``sst5`` (``binary=False``) or sentence-level ``sst2`` (``binary=True``)."""
  name = "sst2" if binary else "sst5"
  texts, labels = read_trees(data_dir, split, dataset=name)
  if not binary:
    return Split(dataset=name, split=split, texts=tuple(texts), labels=labels,
                 label_names=SST5_LABELS)
  keep = np.flatnonzero(labels != 2)
  return Split(dataset=name, split=split, texts=tuple(texts[i] for i in keep),
               labels=(labels[keep] > 2).astype(np.int32), label_names=SST2_LABELS)
