"""WordNet synonym replacement: the paper's augmentation (§4.2), without nlpaug.

The LCL release builds one augmented view per training text with nlpaug's
``SynonymAug(aug_src='wordnet')`` (``aug_p=0.3``, ``aug_min=1``, ``aug_max=10``;
nlpaug 1.1.0 and NLTK 3.5 pinned in its ``environment.yml``). This module
re-implements that algorithm step by step so that the project neither depends on
nlpaug nor on the WordNet quirks of whichever NLTK version is installed:

1. ``text.strip()``; tokens = ``re.split(r'(\\W)', text)`` without blank pieces
   (so ``"don't"`` is ``don``, ``'``, ``t``).
2. POS tags from NLTK's averaged-perceptron tagger (Penn Treebank tags).
3. Number to replace: ``int(aug_p * len(tokens))`` (nlpaug 1.1.0; newer nlpaug
   uses ``math.ceil``, see ``count_rounding``), raised to ``aug_min`` and capped
   at ``aug_max``. Every token counts, punctuation included.
4. Candidates: tokens that are not a substring of ``string.punctuation`` and are
   not tagged ``DT``. The count is lowered to the number of candidates, and that
   many are drawn uniformly without replacement.
5. For each drawn token: its tag maps to WordNet parts of speech (NN* -> n,
   VB* -> v, JJ*/IN -> a+s, RB* -> r; any other tag -> all parts of speech); the
   synonyms are the lemma names of every synset of the word's morphological base
   forms (NLTK 3.5 ``morphy``), duplicates kept, minus names equal to the token
   case-insensitively. If none is left the token stays (the draw is spent); else
   one is drawn uniformly, ``_`` and ``-`` become spaces, it is lower-cased and
   capitalised when the token was ('I' counts as capitalised).
6. Detokenisation: ``' '.join(tokens)`` then nlpaug's four regex fixes (no space
   before ``.,:;?!%``, around brackets). A text with no candidate token is
   returned as the stripped input.

Randomness differs from nlpaug by design: each text gets its own NumPy
``Generator`` seeded from ``(seed, text index[, epoch])``, so a view does not
depend on the order, the batch or the process that computed it.

WordNet 3.0 is read by a small reader in this module from NLTK's ``wordnet.zip``
or ``corpora/wordnet/`` (searched on the NLTK data folders, :func:`nltk_data_roots`:
``NLTK_DATA``, ``nltk.data.path``, then ``<data_dir>/nltk_data`` -- the data
directory of the release files, ``data_dir`` / ``--data_dir`` else ``$LCL_DATA_DIR``,
as the project's ``shared/data`` holds it), from a WordNet ``dict`` directory such as
Debian's ``wordnet-base`` (``/usr/share/wordnet``, also ``$WNSEARCHDIR`` and
``$WNHOME/dict``), or from an explicit path. The POS tagger comes from NLTK data
(``taggers/averaged_perceptron_tagger_eng``) on the same folders; NLTK only reads
data on its search path, so ``<data_dir>/nltk_data`` is appended to
``nltk.data.path`` when the tagger is loaded from there.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import pathlib
import re
import string
import zipfile
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np

from lcl_jax.data import files

__all__ = [
    "AugmentationDetails",
    "SynonymAugmenter",
    "WordNet",
    "WordNetNotFoundError",
    "augment_texts",
    "default_augmenter",
    "detokenize",
    "find_wordnet",
    "nltk_data_roots",
    "replacement_coverage",
    "text_rng",
    "tokenize",
]

INSTALL_HINT = (
    "Install the NLTK data with `pip install nltk && python -m nltk.downloader "
    "wordnet averaged_perceptron_tagger_eng` (or point NLTK_DATA at a folder "
    "holding corpora/wordnet.zip and taggers/averaged_perceptron_tagger_eng/, or pass "
    "the data directory, --data_dir, whose nltk_data/ folder holds them); "
    "WordNet alone can also come from Debian/Ubuntu with `apt-get install "
    "wordnet-base` (files in /usr/share/wordnet)."
)

# Debian's wordnet-base puts the WordNet 3.0 database files here.
DEBIAN_WORDNET_DIR = pathlib.Path("/usr/share/wordnet")

_TOKEN_SPLIT = re.compile(r"(\W)")
# nlpaug.util.text.tokenizer.DETOKENIZER_REGEXS, in order.
_DETOKENIZER_RULES = (
    (re.compile(r"\s([.,:;?!%]+)([ '\"`])"), r"\1\2"),
    (re.compile(r"\s([.,:;?!%]+)$"), r"\1"),
    (re.compile(r"\s([\[\(\{\<])\s"), r" \g<1>"),
    (re.compile(r"\s([\]\)\}\>])\s"), r"\g<1> "),
)
# nlpaug.util.text.part_of_speech.PartOfSpeech.pos2con, inverted. 'a' and 's'
# (adjective satellite) are looked up separately by nlpaug but, in the NLTK 3.5
# that the release ran, both index every adjective synset, so the candidate list
# is the adjective list twice; drawing uniformly from it equals drawing from one copy.
_PTB_TO_WORDNET = {
    **{tag: ("n",) for tag in ("NN", "NNS", "NNP", "NNPS", "NP")},
    **{tag: ("v",) for tag in ("VB", "VBD", "VBG", "VBN", "VBZ", "VBP")},
    **{tag: ("a",) for tag in ("JJ", "JJR", "JJS", "IN")},
    **{tag: ("r",) for tag in ("RB", "RBR", "RBS")},
}
_ALL_WORDNET_POS = ("n", "v", "a", "r")  # NLTK's POS_LIST order
_SKIPPED_TAGS = frozenset({"DT"})
# NLTK's WordNetCorpusReader.MORPHOLOGICAL_SUBSTITUTIONS.
_MORPHOLOGICAL_SUBSTITUTIONS = {
    "n": (("s", ""), ("ses", "s"), ("ves", "f"), ("xes", "x"), ("zes", "z"),
          ("ches", "ch"), ("shes", "sh"), ("men", "man"), ("ies", "y")),
    "v": (("s", ""), ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"),
          ("ed", ""), ("ing", "e"), ("ing", "")),
    "a": (("er", ""), ("est", ""), ("er", "e"), ("est", "e")),
    "r": (),
}
_FILE_SUFFIX = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}
# NLTK strips adjective syntactic markers such as "(a)", "(p)", "(ip)" this way.
_SYNTACTIC_MARKER = re.compile(r"(.*?)(\(.*\))?$")
# Fixed tag mixed into every per-text seed so these streams never coincide with
# other users of (seed, index) seeds (e.g. the batch shuffler).
_AUGMENT_STREAM = 0x5F3759DF


class WordNetNotFoundError(LookupError):
  """WordNet or the NLTK POS tagger could not be found."""


# --------------------------------------------------------------------------
# WordNet 3.0 database reader.
# --------------------------------------------------------------------------


NLTK_DATA_SUBDIR = "nltk_data"


def _nltk_search_path() -> list[str]:
  try:
    import nltk.data  # pylint: disable=g-import-not-at-top
    return [str(getattr(p, "path", p)) for p in nltk.data.path]
  except ImportError:
    return []


def _data_dir_nltk_root(data_dir: str | os.PathLike[str] | None) -> pathlib.Path | None:
  """``<data_dir>/nltk_data`` (``data_dir`` else ``$LCL_DATA_DIR``), or None."""
  if data_dir is None:
    data_dir = os.environ.get(files.DATA_DIR_ENV) or None
  if data_dir is None:
    return None
  return pathlib.Path(data_dir).expanduser().absolute() / NLTK_DATA_SUBDIR


def nltk_data_roots(data_dir: str | os.PathLike[str] | None = None) -> list[pathlib.Path]:
  """The NLTK data folders searched for WordNet and the POS tagger, in order.

  ``NLTK_DATA`` entries, then ``nltk.data.path`` (NLTK's defaults such as
  ``~/nltk_data``), then ``<data_dir>/nltk_data`` where ``data_dir`` is the data
  directory of the release files (the argument, else ``$LCL_DATA_DIR``).
  """
  roots = _nltk_search_path()
  for root in reversed(os.environ.get("NLTK_DATA", "").split(os.pathsep)):
    if root and root not in roots:
      roots.insert(0, root)
  found = [pathlib.Path(r) for r in roots]
  extra = _data_dir_nltk_root(data_dir)
  if extra is not None and extra not in found:
    found.append(extra)
  return found


def _wordnet_sources_from_nltk_path(data_dir=None) -> list[pathlib.Path]:
  found = []
  for root in nltk_data_roots(data_dir):
    corpora = root / "corpora"
    found += [corpora / "wordnet", corpora / "wordnet.zip"]
  return found


def _wordnet_dict_dirs() -> list[pathlib.Path]:
  dirs = []
  if os.environ.get("WNSEARCHDIR"):
    dirs.append(pathlib.Path(os.environ["WNSEARCHDIR"]))
  if os.environ.get("WNHOME"):
    dirs.append(pathlib.Path(os.environ["WNHOME"]) / "dict")
  dirs.append(DEBIAN_WORDNET_DIR)
  return dirs


def _is_wordnet_source(path: pathlib.Path) -> bool:
  if path.is_dir():
    return all((path / f"index.{s}").is_file() for s in _FILE_SUFFIX.values())
  return path.is_file() and zipfile.is_zipfile(path)


def find_wordnet(path: str | os.PathLike[str] | None = None, *,
                 data_dir: str | os.PathLike[str] | None = None) -> pathlib.Path:
  """The WordNet 3.0 database to read: an explicit path, NLTK data, or Debian's.

  Args:
    path: a WordNet ``dict`` directory (``index.noun``, ``data.noun``, ...), an
      NLTK ``corpora/wordnet`` directory or ``wordnet.zip``. When None, the NLTK
      data folders are searched (:func:`nltk_data_roots`: ``NLTK_DATA``,
      ``nltk.data.path``, ``<data_dir>/nltk_data``), then ``$WNSEARCHDIR``,
      ``$WNHOME/dict`` and ``/usr/share/wordnet`` (Debian's ``wordnet-base``).
    data_dir: the release files' data directory (``None``: ``$LCL_DATA_DIR``), whose
      ``nltk_data/`` folder is searched too.

  Returns:
    The directory or zip file.

  Raises:
    WordNetNotFoundError: nothing usable at ``path`` or anywhere searched; the
      message lists the places looked at and how to install WordNet.
  """
  if path is not None:
    candidates = [pathlib.Path(path)]
  else:
    candidates = _wordnet_sources_from_nltk_path(data_dir) + _wordnet_dict_dirs()
  for candidate in candidates:
    if _is_wordnet_source(candidate):
      return candidate
  looked = "\n  ".join(str(c) for c in candidates)
  raise WordNetNotFoundError(
      f"WordNet 3.0 not found; looked for a WordNet dict directory or NLTK's "
      f"wordnet.zip at:\n  {looked}\n{INSTALL_HINT}")


class WordNet:
  """Read-only WordNet 3.0 lexicon: lemma index, exception lists, synset lemmas.

  Reads the standard database files (``index.{noun,verb,adj,adv}``,
  ``data.*``, ``*.exc``) from a directory or NLTK's zip. Lookups follow NLTK
  3.5's ``WordNetCorpusReader.synsets`` (the version the LCL release ran), which
  later NLTK versions changed (one-pass ``morphy``; a satellite-only ``s``
  index), so results do not depend on the installed NLTK.
  """

  def __init__(self, source: str | os.PathLike[str]):
    self.source = pathlib.Path(source)
    # pos -> lemma -> the rest of its index line (parsed on first use).
    self._index: dict[str, dict[str, str]] = {}
    self._offsets: dict[tuple[str, str], tuple[int, ...]] = {}
    self._exceptions: dict[str, dict[str, tuple[str, ...]]] = {}
    self._data: dict[str, bytes] = {}
    self._lemma_cache: dict[tuple[str, int], tuple[str, ...]] = {}
    for pos, suffix in _FILE_SUFFIX.items():
      self._index[pos] = {
          lemma: rest
          for lemma, _, rest in (line.partition(" ")
                                 for line in self._read(f"index.{suffix}").decode().splitlines()
                                 if line and not line.startswith(" "))  # " ": licence header
      }
      self._exceptions[pos] = {
          fields[0]: tuple(fields[1:])
          for fields in (line.split() for line in self._read(f"{suffix}.exc").decode().splitlines())
          if fields
      }
      self._data[pos] = self._read(f"data.{suffix}")

  def _read(self, name: str) -> bytes:
    """One database file from the directory or the zip (any folder inside it)."""
    if self.source.is_dir():
      file = self.source / name
      if not file.is_file():
        raise WordNetNotFoundError(f"WordNet file {file} is missing. {INSTALL_HINT}")
      return file.read_bytes()
    with zipfile.ZipFile(self.source) as archive:
      members = [n for n in archive.namelist() if pathlib.PurePosixPath(n).name == name]
      if not members:
        raise WordNetNotFoundError(
            f"WordNet file {name} is missing from {self.source}. {INSTALL_HINT}")
      return archive.read(members[0])

  def synset_offsets(self, lemma: str, pos: str) -> tuple[int, ...]:
    """Byte offsets in ``data.<pos>`` of the synsets of an index lemma, in index order."""
    key = (pos, lemma)
    offsets = self._offsets.get(key)
    if offsets is None:
      rest = self._index[pos][lemma]
      fields = rest.split()  # pos synset_cnt p_cnt [ptr...] sense_cnt tagsense_cnt offsets
      try:
        n_synsets, n_pointers = int(fields[1]), int(fields[2])
        offsets = tuple(int(o) for o in fields[5 + n_pointers:5 + n_pointers + n_synsets])
        if len(offsets) != n_synsets:
          raise ValueError(f"expected {n_synsets} synset offsets")
      except (IndexError, ValueError) as e:
        raise ValueError(f"{self.source}: index.{_FILE_SUFFIX[pos]}: malformed line "
                         f"{lemma} {rest[:80]!r} ({e})") from e
      self._offsets[key] = offsets
    return offsets

  def morphy(self, form: str, pos: str) -> list[str]:
    """Base forms of ``form`` in WordNet for ``pos`` (NLTK 3.5 ``_morphy``)."""
    index = self._index[pos]
    substitutions = _MORPHOLOGICAL_SUBSTITUTIONS[pos]

    def apply_rules(forms: list[str]) -> list[str]:
      # NOTE: deduplicated (NLTK keeps duplicates, which only repeat work and can
      # grow exponentially on tokens like "eseseses"); first occurrences keep
      # their order, so the result is unchanged.
      return list(dict.fromkeys(
          f[:-len(old)] + new for f in forms for old, new in substitutions if f.endswith(old)))

    def filter_forms(forms: list[str]) -> list[str]:
      return list(dict.fromkeys(f for f in forms if f in index))

    exceptions = self._exceptions[pos]
    if form in exceptions:
      return filter_forms([form, *exceptions[form]])
    forms = apply_rules([form])
    results = filter_forms([form, *forms])
    while not results and forms:
      forms = apply_rules(forms)
      results = filter_forms(forms)
    return results

  def synset_lemma_names(self, pos: str, offset: int) -> tuple[str, ...]:
    """Lemma names of one synset (``Synset.lemma_names()``), syntactic markers removed."""
    key = (pos, offset)
    if key not in self._lemma_cache:
      data = self._data[pos]
      end = data.find(b"\n", offset)
      fields = data[offset:end if end >= 0 else None].decode().split()
      if not fields or int(fields[0]) != offset:
        raise ValueError(f"{self.source}/data.{_FILE_SUFFIX[pos]}: no synset at byte offset "
                         f"{offset} (file not in the WordNet database format?)")
      n_words = int(fields[3], 16)
      self._lemma_cache[key] = tuple(
          _SYNTACTIC_MARKER.match(name).group(1) for name in fields[4:4 + 2 * n_words:2])
    return self._lemma_cache[key]

  def synonyms(self, word: str, pos: str | None = None) -> list[str]:
    """nlpaug's ``WordNet.predict``: lemma names over ``wordnet.synsets(word, pos)``.

    Args:
      word: any casing (NLTK lower-cases it).
      pos: one of ``n v a r`` (``s`` is treated as ``a``) or None for all.

    Returns:
      Lemma names in synset order, duplicates kept (``_`` joins multi-word names).
    """
    word = word.lower()
    poses = _ALL_WORDNET_POS if pos is None else ("a" if pos == "s" else pos,)
    return [
        name
        for p in poses
        for form in self.morphy(word, p)
        for offset in self.synset_offsets(form, p)
        for name in self.synset_lemma_names(p, offset)
    ]


@functools.lru_cache(maxsize=4)
def _load_wordnet(source: pathlib.Path) -> WordNet:
  return WordNet(source)


# --------------------------------------------------------------------------
# Tokenisation as nlpaug does it.
# --------------------------------------------------------------------------


def tokenize(text: str) -> list[str]:
  """nlpaug's default word tokenizer: split on non-word characters, keep them."""
  return [t for t in _TOKEN_SPLIT.split(text) if t.strip()]


def detokenize(tokens: Sequence[str]) -> str:
  """nlpaug's default ``reverse_tokenizer``."""
  text = " ".join(tokens)
  for pattern, replacement in _DETOKENIZER_RULES:
    text = pattern.sub(replacement, text)
  return text.strip()


def _word_case(word: str) -> str:
  """nlpaug ``WordAugmenter.get_word_case``."""
  if not word:
    return "empty"
  if len(word) == 1 and word.isupper():
    return "capitalize"
  if word.isupper():
    return "upper"
  if word.islower():
    return "lower"
  if any(c.isupper() for c in word[1:]):
    return "mixed"
  return "capitalize" if word[0].isupper() else "unknown"


def _align_capitalization(source: str, replacement: str) -> str:
  if _word_case(source) == "capitalize" and _word_case(replacement) == "lower":
    return replacement.capitalize()
  return replacement


# --------------------------------------------------------------------------
# The augmenter.
# --------------------------------------------------------------------------


def _load_pos_tagger(data_dir: str | os.PathLike[str] | None = None,
                     ) -> Callable[[list[str]], list[tuple[str, str]]]:
  try:
    import nltk.data  # pylint: disable=g-import-not-at-top
    from nltk.tag.perceptron import PerceptronTagger  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise WordNetNotFoundError(f"NLTK is not installed. {INSTALL_HINT}") from e
  extra = _data_dir_nltk_root(data_dir)
  if (extra is not None and (extra / "taggers").is_dir()
      and str(extra) not in _nltk_search_path()):
    # NLTK reads its data only from its own search path (NLTK >= 3.9 refuses other
    # locations), so the data directory's copy is made visible by appending it.
    nltk.data.path.append(str(extra))
  try:
    # NOTE: nltk.pos_tag builds a new PerceptronTagger (reading its JSON weights)
    # on every call; one instance tags identically and ~100x faster.
    return PerceptronTagger().tag
  except LookupError as e:
    looked = ", ".join(str(r) for r in nltk_data_roots(data_dir))
    raise WordNetNotFoundError(
        "NLTK's POS tagger 'averaged_perceptron_tagger_eng' was not found on the NLTK "
        f"data path (NLTK_DATA={os.environ.get('NLTK_DATA', '<unset>')}; looked in "
        f"{looked}). {INSTALL_HINT}"
    ) from e


def text_rng(seed: int, index: int, epoch: int | None = None) -> np.random.Generator:
  """The random stream of text ``index`` (fixed view if ``epoch`` is None)."""
  for name, value in (("seed", seed), ("index", index), ("epoch", epoch)):
    if value is not None and (not isinstance(value, (int, np.integer)) or value < 0):
      raise ValueError(f"{name} must be a non-negative int, got {value!r}")
  # Fixed-length entropy: SeedSequence([a, b]) and ([a, b, 0]) may coincide.
  entropy = [_AUGMENT_STREAM, int(seed), int(index), int(epoch is not None),
             0 if epoch is None else int(epoch)]
  return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))


@dataclasses.dataclass(frozen=True)
class AugmentationDetails:
  """What one augmentation did (for tests and statistics).

  Attributes:
    text: the augmented text.
    tokens: nlpaug tokens of the (stripped) input.
    tags: their Penn Treebank tags.
    eligible: indices of tokens that could be drawn.
    drawn: indices drawn for replacement, ascending.
    replaced: ``{token index: replacement}`` for draws that had a synonym.
  """

  text: str
  tokens: tuple[str, ...]
  tags: tuple[str, ...]
  eligible: tuple[int, ...]
  drawn: tuple[int, ...]
  replaced: dict[int, str]


class SynonymAugmenter:
  """nlpaug ``SynonymAug(aug_src='wordnet')``, re-implemented and seedable.

  Args:
    aug_p: share of tokens to replace.
    aug_min: at least this many draws (when the text has a candidate).
    aug_max: at most this many draws (None: no cap).
    count_rounding: ``"floor"`` = ``int(aug_p * n)`` as nlpaug 1.1.0, which the
      release pinned; ``"ceil"`` = ``math.ceil(aug_p * n)`` as current nlpaug
      (1.1.11): one more draw whenever ``aug_p * n`` is not a whole number.
    wordnet: a ``WordNet``, or a path for ``find_wordnet``; None searches.
    pos_tagger: ``tokens -> [(token, tag)]`` with Penn Treebank tags; None loads
      NLTK's averaged-perceptron tagger (what ``nltk.pos_tag`` uses).
    data_dir: the release files' data directory (``None``: ``$LCL_DATA_DIR``); its
      ``nltk_data/`` folder is searched for WordNet and the tagger after the NLTK
      data path (:func:`nltk_data_roots`).

  Raises:
    WordNetNotFoundError: WordNet or the tagger is nowhere searched (the message
      lists the places and how to install them).
  """

  def __init__(self, *, aug_p: float = 0.3, aug_min: int = 1, aug_max: int | None = 10,
               count_rounding: Literal["floor", "ceil"] = "floor",
               wordnet: WordNet | str | os.PathLike[str] | None = None,
               pos_tagger: Callable[[list[str]], list[tuple[str, str]]] | None = None,
               data_dir: str | os.PathLike[str] | None = None):
    if not 0.0 <= aug_p <= 1.0:
      raise ValueError(f"aug_p must be in [0, 1], got {aug_p}")
    if aug_min < 0 or (aug_max is not None and aug_max < aug_min):
      raise ValueError(f"need 0 <= aug_min <= aug_max, got aug_min={aug_min}, aug_max={aug_max}")
    if count_rounding not in ("floor", "ceil"):
      raise ValueError(f"count_rounding must be 'floor' or 'ceil', got {count_rounding!r}")
    self.aug_p, self.aug_min, self.aug_max = aug_p, aug_min, aug_max
    self.count_rounding = count_rounding
    if not isinstance(wordnet, WordNet):
      wordnet = _load_wordnet(find_wordnet(wordnet, data_dir=data_dir))
    self.wordnet = wordnet
    self.pos_tagger = pos_tagger if pos_tagger is not None else _load_pos_tagger(data_dir)
    self._candidate_cache: dict[tuple[str, tuple[str, ...] | None], tuple[str, ...]] = {}

  def replacement_count(self, n_tokens: int) -> int:
    """How many tokens nlpaug draws for a text of ``n_tokens`` tokens (before capping
    at the number of candidates)."""
    product = self.aug_p * n_tokens
    count = int(product) if self.count_rounding == "floor" else int(math.ceil(product))
    if count < self.aug_min:
      count = self.aug_min
    if self.aug_max is not None and count > self.aug_max:
      count = self.aug_max
    return count

  def candidates(self, token: str, tag: str) -> tuple[str, ...]:
    """Synonyms a token may be replaced by (raw lemma names, duplicates kept)."""
    poses = _PTB_TO_WORDNET.get(tag)
    key = (token.lower(), poses)
    cached = self._candidate_cache.get(key)
    if cached is None:
      if poses is None:
        names = self.wordnet.synonyms(token)
      else:
        names = [n for p in poses for n in self.wordnet.synonyms(token, p)]
      cached = tuple(n for n in names if n.lower() != key[0])
      self._candidate_cache[key] = cached
    return cached

  def augment_with_details(self, text: str, rng: np.random.Generator) -> AugmentationDetails:
    """Augments one text and reports which tokens were drawn and replaced."""
    if not isinstance(text, str):
      raise TypeError(f"text must be a str, got {type(text).__name__}: {text!r}")
    text = text.strip()
    tokens = tokenize(text)
    tags = tuple(tag for _, tag in self.pos_tagger(tokens)) if tokens else ()
    eligible = tuple(i for i, (token, tag) in enumerate(zip(tokens, tags))
                     if token not in string.punctuation and tag not in _SKIPPED_TAGS)
    if not eligible:
      return AugmentationDetails(text, tuple(tokens), tags, eligible, (), {})
    count = min(self.replacement_count(len(tokens)), len(eligible))
    drawn = tuple(sorted(eligible[i] for i in rng.choice(len(eligible), count, replace=False)))
    new_tokens = list(tokens)
    replaced = {}
    for i in drawn:  # nlpaug 1.1.0 walks the drawn tokens in text order
      options = self.candidates(tokens[i], tags[i])
      if not options:
        continue
      choice = options[int(rng.integers(len(options)))]
      choice = choice.replace("_", " ").replace("-", " ").lower()
      new_tokens[i] = replaced[i] = _align_capitalization(tokens[i], choice)
    return AugmentationDetails(detokenize(new_tokens), tuple(tokens), tags, eligible, drawn,
                               replaced)

  def augment(self, text: str, rng: np.random.Generator) -> str:
    """One augmented view of ``text``, drawn from ``rng``."""
    return self.augment_with_details(text, rng).text

  def augment_texts(self, texts: Sequence[str], *, seed: int, epoch: int | None = None,
                    indices: Sequence[int] | None = None) -> list[str]:
    """One view per text; text ``i`` uses ``text_rng(seed, indices[i], epoch)``.

    Args:
      texts: the texts.
      seed: non-negative int.
      epoch: None for the one fixed view, else a fresh view for this epoch.
      indices: each text's dataset index (default ``0..len-1``), so that a shard of
        a dataset gets the same views as the whole.
    """
    if isinstance(texts, str):
      raise TypeError("texts must be a sequence of str, not a single str")
    if indices is None:
      indices = range(len(texts))
    elif len(indices) != len(texts):
      raise ValueError(f"indices has {len(indices)} entries for {len(texts)} texts")
    return [self.augment(text, text_rng(seed, int(i), epoch)) for text, i in zip(texts, indices)]


def default_augmenter(aug_p: float = 0.3, *,
                      data_dir: str | os.PathLike[str] | None = None) -> SynonymAugmenter:
  """The release's augmenter (nlpaug 1.1.0 defaults), built once per process and
  ``(aug_p, data_dir)``; ``data_dir`` as in :class:`SynonymAugmenter`."""
  return _default_augmenter(aug_p, None if data_dir is None else os.fspath(data_dir))


@functools.lru_cache(maxsize=8)
def _default_augmenter(aug_p: float, data_dir: str | None) -> SynonymAugmenter:
  return SynonymAugmenter(aug_p=aug_p, data_dir=data_dir)


def augment_texts(texts: Sequence[str], *, seed: int, epoch: int | None = None,
                  aug_p: float = 0.3,
                  data_dir: str | os.PathLike[str] | None = None) -> list[str]:
  """WordNet synonym replacement of ``aug_p`` of the words of every text.

  Args:
    texts: N texts.
    seed: non-negative int; with ``epoch`` it fixes every view.
    epoch: None: one fixed view per text (the paper); an int: a fresh view per epoch.
    aug_p: share of words replaced (0.3 in the paper).
    data_dir: the release files' data directory, whose ``nltk_data/`` is searched
      for WordNet and the tagger (``None``: ``$LCL_DATA_DIR``).

  Returns:
    N augmented texts; text i depends only on (texts[i], seed, i, epoch).
  """
  return default_augmenter(aug_p, data_dir=data_dir).augment_texts(texts, seed=seed,
                                                                   epoch=epoch)


def replacement_coverage(originals: Sequence[str], augmented: Sequence[str]) -> float:
  """Share of texts whose view has at least one word replaced.

  Compares nlpaug token sequences, so the re-spacing that detokenisation applies
  to every augmented text ("don't" -> "don ' t") does not count as a change.
  """
  if len(originals) != len(augmented):
    raise ValueError(f"{len(originals)} originals but {len(augmented)} augmented texts")
  if not originals:
    raise ValueError("replacement_coverage of zero texts")
  changed = sum(tokenize(o.strip()) != tokenize(a) for o, a in zip(originals, augmented))
  return changed / len(originals)
