"""EmoInt / WASSA-2017 shared task (Mohammad & Bravo-Marquez, 2017), as 4-way emotion
classification: anger, fear, joy, sadness.

Files (official names, no header): ``<data_dir>/emoint/{emotion}-ratings-0to1.{train,
dev.gold,test.gold}.txt``; each line ``id<TAB>tweet<TAB>emotion<TAB>intensity``. A split
is the concatenation of the four emotion files in label order (anger, fear, joy,
sadness), which is the authors' concatenated file. Every tweet is kept: 3,613 / 347 /
3,142. The authors' ``tweet.py`` skips the first line of each concatenated split as if it
were a header (``readlines()[1:]``), which drops one real tweet per split and gives the
paper's 3,612 / 346 / 3,141. A header line (``id tweet ...``, as in some re-distributed
copies) is recognised and skipped.

Tweet cleaning (:func:`clean_tweet`), the paper's Appendix B plus the remaining steps
of the authors' ``tweet.py``, in this order:

1. literal ``\\n`` escapes (2 characters, 773 in the files) -> space;
2. ``&amp;`` -> `` and `` (authors), other HTML entities unescaped (``&lt;`` -> ``<``);
3. non-ASCII characters (emoji etc.) dropped;
4. links (``www.…``, ``http(s)://…``) -> ``URL``;
5. user mentions (``@name…`` up to white space) -> ``USER_MENTION``;
6. hashtags: ``#word`` -> ``word`` (authors);
7. the retweet marker ``rt`` (whole lowercase word) removed (authors);
8. runs of 2+ dots -> space (authors);
9. a letter repeated 3+ times -> twice (``sooooo`` -> ``soo``, ``hmmm`` -> ``hmm``);
   the paper's "letter repetitions" rule, case-sensitive, letters only (``!!!`` kept);
10. white space collapsed to single spaces; spaces and quote characters (``"``, ``'``)
    stripped from both ends (authors).

The placeholders are padded with spaces (the authors' mention replacement is not, so
``hi@bob`` became ``hiUSER_MENTION``); the authors' ``str.replace`` of a regex for
``RT @user`` is a no-op in their code and is not reproduced.
"""

from __future__ import annotations

import html
import pathlib
import re

import numpy as np

from lcl_jax.data import files
from lcl_jax.data.split import Split

LABELS: tuple[str, ...] = ("anger", "fear", "joy", "sadness")
FILE_SUFFIXES = {"train": "train", "validation": "dev.gold", "test": "test.gold"}
URL_TOKEN = "URL"
USER_TOKEN = "USER_MENTION"

_URL = re.compile(r"(?:www\.\S+)|(?:https?://\S+)")
_MENTION = re.compile(r"@\S+")
_HASHTAG = re.compile(r"#(\S+)")
_RT = re.compile(r"\brt\b")
_DOTS = re.compile(r"\.{2,}")
_REPEATED_LETTER = re.compile(r"([A-Za-z])\1{2,}")
_WHITESPACE = re.compile(r"\s+")


def clean_tweet(text: str) -> str:
  """Cleans one tweet (see the module docstring for the rules and their order)."""
  text = text.replace("\\n", " ")
  text = text.replace("&amp;", " and ")
  text = html.unescape(text)
  text = text.encode("ascii", "ignore").decode("ascii")
  text = _URL.sub(f" {URL_TOKEN} ", text)
  text = _MENTION.sub(f" {USER_TOKEN} ", text)
  text = _HASHTAG.sub(r" \1 ", text)
  text = _RT.sub(" ", text)
  text = _DOTS.sub(" ", text)
  text = _REPEATED_LETTER.sub(r"\1\1", text)
  text = _WHITESPACE.sub(" ", text)
  return text.strip(" \"'")


def file_path(data_dir: pathlib.Path, emotion: str, split: str) -> pathlib.Path:
  return data_dir / "emoint" / f"{emotion}-ratings-0to1.{FILE_SUFFIXES[split]}.txt"


def read_file(path: pathlib.Path, emotion: str, *,
              clean: bool = True) -> tuple[list[str], list[str]]:
  """Tweet ids and (cleaned) texts of one per-emotion file, in file order.

  Decoding, blank lines and a byte-order mark as in :mod:`lcl_jax.data.files`.

  Raises:
    EmptyFileError: the file has no tweet (empty, blank, or a header line only), which
      would silently drop the class ``emotion`` from the split.
    MalformedRowError / UnknownLabelError: a bad line (names file and line).
  """
  ids: list[str] = []
  texts: list[str] = []
  expected = f"lines 'id<TAB>tweet<TAB>{emotion}<TAB>intensity'"
  first = True
  for line_no, line in files.text_lines(files.read_text(path), path, expected=expected):
    fields = line.split("\t")
    if len(fields) != 4:
      raise files.MalformedRowError(
          path, line_no, f"expected 4 tab-separated fields (id, tweet, emotion, "
          f"intensity), got {len(fields)}")
    tweet_id, tweet, label, score = fields
    if first and tweet_id.strip().lower() == "id":
      first = False
      continue  # a header line added by some re-distributions
    first = False
    if label.strip() != emotion:
      if label.strip() in LABELS:
        raise files.MalformedRowError(
            path, line_no, f"emotion column is {label!r} but the file is the "
            f"{emotion!r} file")
      raise files.unknown_label(label.strip(), LABELS, where=f"{path}, line {line_no}")
    try:
      float(score)
    except ValueError:
      raise files.MalformedRowError(
          path, line_no, f"intensity {score!r} is not a number") from None
    ids.append(tweet_id)
    texts.append(clean_tweet(tweet) if clean else tweet)
  if not ids:
    raise files.EmptyFileError(
        path, 1, f"a header line but no tweet; every EmoInt split needs tweets of each "
        f"of {', '.join(LABELS)} (expected {expected})")
  return ids, texts


def read_split(data_dir: pathlib.Path, split: str, *, clean: bool = True) -> Split:
  """One split, the four emotion files concatenated in label order."""
  texts: list[str] = []
  labels: list[int] = []
  for label_id, emotion in enumerate(LABELS):
    path = files.require_file(file_path(data_dir, emotion, split), dataset="emoint",
                              data_dir=data_dir)
    _, emotion_texts = read_file(path, emotion, clean=clean)
    texts.extend(emotion_texts)
    labels.extend([label_id] * len(emotion_texts))
  return Split(dataset="emoint", split=split, texts=tuple(texts),
               labels=np.asarray(labels, dtype=np.int32), label_names=LABELS)
