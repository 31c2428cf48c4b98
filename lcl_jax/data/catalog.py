"""The dataset catalogue: every dataset name, its :class:`DatasetSpec` and its reader.

Imported by :mod:`lcl_jax.data.registry` (:func:`~lcl_jax.data.registry.load_split`,
the public entry point) and by :mod:`lcl_jax.data.tfds_builders` (one TFDS config per
name); it imports only the readers, so imports in this package flow one way::

  registry -> tfds_builders -> catalog -> readers (goemotions, sst, isear, ...)
  registry -> catalog;  ag_news -> tfds_stock;  tfds_builders -> tfds_stock

Counts per split (train / validation / test):

===============================  =======  ================================
name                             classes  examples
===============================  =======  ================================
goemotions                       27       23,485 / 2,956 / 2,984
goemotions_multilabel            28 (mh)  43,410 / 5,426 / 5,427
goemotions_first_label           27       30,587 / 3,834 / 3,821 (seed 001)
sst5                             5        8,544 / 1,101 / 2,210
sst2                             2        6,920 / 872 / 1,821
isear                            7        4,599 / 1,533 / 1,534 (authors' split)
isear_stratified                 7        4,599 / 1,533 / 1,534 (stratified)
emoint                           4        3,613 / 347 / 3,142
empathetic_dialogues             32       19,533 / 2,770 / 2,547
empathetic_dialogues_16          16       10,705 / 1,509 / 1,376
empathetic_dialogues_8           8        5,420 / 732 / 686
empathetic_dialogues_4_easy      4        2,598 / 361 / 328
empathetic_dialogues_4_hard_a    4        2,339 / 329 / 293
empathetic_dialogues_4_hard_b    4        2,360 / 343 / 323
empathetic_dialogues_4_hard_c    4        2,425 / 302 / 283
empathetic_dialogues_4_hard_d    4        2,597 / 324 / 312
ag_news                          4        114,000 / 6,000 / 7,600 (TFDS)
tsa                              2        the user's files (80/20 train split)
parsinlu_sentiment               7        the user's files (overall aspect)
synthetic                        9        360 / 90 / 90 (generated)
===============================  =======  ================================
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
from typing import Callable

from lcl_jax.data import (ag_news, emoint, empathetic_dialogues, files, goemotions, isear,
                          parsinlu, sst, synthetic, tsa)
from lcl_jax.data.split import Split

# DatasetSpec.source values: release files in shared/data, files the user supplies
# (public formats not shipped here; no TFDS builder), TFDS only, generated.
SPEC_SOURCES = ("files", "user_files", "tfds_stock", "generated")


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """What :func:`~lcl_jax.data.registry.load_split` knows about a dataset name.

  Attributes:
    name: the registry name.
    label_names: class names, index = class id.
    multilabel: labels are multi-hot ``[N, C]``.
    source: ``"files"`` (release files in ``data_dir``), ``"user_files"`` (public
      files the user places in ``data_dir``, not shipped in ``shared/data``; no TFDS
      builder), ``"tfds_stock"`` (only through a stock TFDS builder) or
      ``"generated"`` (no files).
    sizes: expected ``(train, validation, test)`` sizes (documentation; the tests
      assert them); None for ``user_files`` datasets.
    description: one line for logs, reports and TFDS.
    folder: the release folder under ``data_dir`` (``None`` if no files).
    reader: ``reader(data_dir, split) -> Split``, ``split`` canonical, ``data_dir`` the
      resolved release folder (a ``pathlib.Path``; ``None`` for ``generated``): the
      implementation :func:`read_files` calls. Every source but ``tfds_stock`` has one
      (a ``tfds_stock`` dataset is read by its stock builder in
      :func:`~lcl_jax.data.registry.load_split`). Adding a dataset = one entry of
      ``_SPECS`` with its reader.
  """

  name: str
  label_names: tuple[str, ...]
  multilabel: bool
  source: str
  sizes: tuple[int, int, int] | None
  description: str
  folder: str | None = None
  reader: Callable[[pathlib.Path | None, str], Split] | None = dataclasses.field(
      default=None, repr=False, compare=False)

  @property
  def num_classes(self) -> int:
    return len(self.label_names)


def _read_ed_subset(name: str, data_dir: pathlib.Path, split: str) -> Split:
  """An Empathetic Dialogues class subset: the full split, re-indexed to the subset."""
  full = empathetic_dialogues.read_split(data_dir, split)
  return full.select_classes(empathetic_dialogues.SUBSETS[name], dataset=name)


def _generate(data_dir: None, split: str) -> Split:
  """The synthetic dataset's reader: generated, no files (`data_dir` unused)."""
  del data_dir
  return synthetic.generate_split(split)


def _ed_subset(name: str, sizes: tuple[int, int, int]) -> DatasetSpec:
  classes = empathetic_dialogues.SUBSETS[name]
  return DatasetSpec(
      name=name, label_names=classes, multilabel=False, source="files", sizes=sizes,
      folder="empathetic_dialogues", reader=functools.partial(_read_ed_subset, name),
      description=f"Empathetic Dialogues, {len(classes)}-class subset of the LCL paper's "
                  f"Table 3 ({', '.join(classes)})")


_SPECS = [
    DatasetSpec("goemotions", goemotions.EMOTIONS[:goemotions.NEUTRAL_ID], False, "files",
                (23485, 2956, 2984),
                "GoEmotions, single-labelled non-neutral comments (27 classes), as in the "
                "LCL paper", "goemotions", goemotions.read_split),
    DatasetSpec("goemotions_multilabel", goemotions.EMOTIONS, True, "files",
                (43410, 5426, 5427),
                "GoEmotions, all comments, multi-hot over 28 labels incl. neutral",
                "goemotions", functools.partial(goemotions.read_split, multilabel=True)),
    DatasetSpec("goemotions_first_label", goemotions.EMOTIONS[:goemotions.NEUTRAL_ID], False,
                "files", (30587, 3834, 3821),
                "GoEmotions, every comment with a non-neutral label, labelled with its first "
                "(seed 001's re-implementation; 27 classes)", "goemotions",
                functools.partial(goemotions.read_split, first_label=True)),
    DatasetSpec("sst5", sst.SST5_LABELS, False, "files", (8544, 1101, 2210),
                "SST-5: Stanford Sentiment Treebank sentences, root label (5 classes)",
                "sst", sst.read_split),
    DatasetSpec("sst2", sst.SST2_LABELS, False, "files", (6920, 872, 1821),
                "SST-2 (sentence level): SST-5 without neutral, 0-1 negative, 3-4 positive",
                "sst", functools.partial(sst.read_split, binary=True)),
    DatasetSpec("isear", isear.LABELS, False, "files", (4599, 1533, 1534),
                "ISEAR situations (7 emotions), the authors' 60/20/20 split (scikit-learn "
                "train_test_split, random_state=0, unstratified)", "isear",
                functools.partial(isear.read_split, splitter="release")),
    DatasetSpec("isear_stratified", isear.LABELS, False, "files", (4599, 1533, 1534),
                "ISEAR situations (7 emotions), seeded stratified 60/20/20 split "
                "(NumPy, seed 0)", "isear",
                functools.partial(isear.read_split, splitter="stratified")),
    DatasetSpec("emoint", emoint.LABELS, False, "files", (3613, 347, 3142),
                "EmoInt / WASSA-2017 tweets (anger, fear, joy, sadness), cleaned as in the "
                "LCL paper's Appendix B", "emoint", emoint.read_split),
    DatasetSpec("empathetic_dialogues", empathetic_dialogues.LABELS, False, "files",
                (19533, 2770, 2547),
                "Empathetic Dialogues: the speaker's situation prompt, 32 emotions, one "
                "item per conversation", "empathetic_dialogues",
                empathetic_dialogues.read_split),
    _ed_subset("empathetic_dialogues_16", (10705, 1509, 1376)),
    _ed_subset("empathetic_dialogues_8", (5420, 732, 686)),
    _ed_subset("empathetic_dialogues_4_easy", (2598, 361, 328)),
    _ed_subset("empathetic_dialogues_4_hard_a", (2339, 329, 293)),
    _ed_subset("empathetic_dialogues_4_hard_b", (2360, 343, 323)),
    _ed_subset("empathetic_dialogues_4_hard_c", (2425, 302, 283)),
    _ed_subset("empathetic_dialogues_4_hard_d", (2597, 324, 312)),
    DatasetSpec("ag_news", ag_news.LABELS, False, "tfds_stock", (114000, 6000, 7600),
                "AG News topics (4 classes) via TFDS ag_news_subset; validation = a seeded "
                "stratified 5% of train"),
    DatasetSpec("tsa", tsa.LABELS, False, "user_files", None,
                "Twitter sentiment analysis (TSATC corpus), negative / positive; validation "
                "= a seeded stratified 20% of train (seed 001's Table 2)", tsa.FOLDER,
                tsa.read_split),
    DatasetSpec("parsinlu_sentiment", parsinlu.LABELS, False, "user_files", None,
                "ParsiNLU Persian review sentiment, overall aspect, labels -3..3; train and "
                "validation food + movie, test movie only (seed 001's Table 2)",
                parsinlu.FOLDER, parsinlu.read_split),
    DatasetSpec("synthetic", synthetic.LABEL_NAMES, False, "generated", (360, 90, 90),
                synthetic.DESCRIPTION, reader=_generate),
]
DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in _SPECS}

_RELEASE_PATTERNS: dict[str, tuple[str, ...]] = {
    "goemotions": ("goemotions/train.tsv", "goemotions/dev.tsv", "goemotions/test.tsv",
                   "goemotions/emotions.txt"),
    "sst": ("sst/trees/train.txt", "sst/trees/dev.txt", "sst/trees/test.txt",
            "sst/trainDevTestTrees_PTB.zip"),
    "isear": ("isear/isear_data.csv",),
    "emoint": ("emoint/*-ratings-0to1.*.txt",),
    "empathetic_dialogues": ("empathetic_dialogues/train.csv",
                             "empathetic_dialogues/valid.csv",
                             "empathetic_dialogues/test.csv"),
    tsa.FOLDER: tuple(f"{tsa.FOLDER}/{name}" for name in tsa.FILE_NAMES.values()),
    parsinlu.FOLDER: tuple(f"{parsinlu.FOLDER}/{name}"
                           for names in parsinlu.SPLIT_FILES.values() for name in names),
}


def dataset_names() -> list[str]:
  """All names :func:`load_split` accepts."""
  return list(DATASETS)


def get_spec(name: str) -> DatasetSpec:
  """The spec of ``name``; ``ValueError`` listing the known names if there is none."""
  if name not in DATASETS:
    raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
  return DATASETS[name]


def release_files(name: str, data_dir: pathlib.Path, *,
                  require: bool = False) -> list[pathlib.Path]:
  """The release files of dataset ``name`` that exist under ``data_dir`` (sorted).

  With ``require=True`` a dataset with no file present raises
  :class:`~lcl_jax.data.files.DataFileNotFoundError`.
  """
  spec = get_spec(name)
  if spec.folder is None:
    return []
  found = sorted({p for pattern in _RELEASE_PATTERNS[spec.folder]
                  for p in data_dir.glob(pattern) if p.is_file()})
  if require and not found:
    raise files.DataFileNotFoundError(
        f"{name}: no release files under {data_dir / spec.folder} (looked for "
        f"{', '.join(_RELEASE_PATTERNS[spec.folder])}); set data_dir=... (--data_dir) or "
        f"${files.DATA_DIR_ENV}")
  return found


def read_files(name: str, split: str, data_dir: pathlib.Path) -> Split:
  """Split ``split`` (canonical) of a ``files`` / ``user_files`` dataset, read by its
  spec's reader."""
  spec = get_spec(name)
  if spec.reader is None or spec.source not in ("files", "user_files"):
    raise AssertionError(f"no file reader for {name!r}")
  return spec.reader(data_dir, split)
