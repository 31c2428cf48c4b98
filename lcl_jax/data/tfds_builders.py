"""tensorflow-datasets builders for the paper's datasets, and the stock TFDS builders.

Our builder (:class:`LclDatasets`, registered in TFDS as ``lcl_datasets``) has one
``BuilderConfig`` per dataset name of :data:`lcl_jax.data.catalog.DATASETS` that is
read from release files (plus ``synthetic``), e.g. ``lcl_datasets/goemotions``,
``lcl_datasets/sst5``, ``lcl_datasets/empathetic_dialogues_4_hard_a``. The names do
not clash with TFDS's stock ``goemotions``. It reads the release files from
``manual_dir`` (the same layout as ``data_dir``, see :mod:`lcl_jax.data.files`)
through the readers of this package and writes ``array_record`` files, so

* preparing needs no TensorFlow (TFDS's beam-less writer; checked with TFDS 4.9.10
  and no TensorFlow installed), and
* reading back needs no TensorFlow either: ``builder.as_data_source()`` or
  ``tfds.data_source('lcl_datasets/isear', data_dir=...)`` (after importing this
  module, which registers the builder).

Features: ``text`` (``Text``) and ``label`` (``ClassLabel`` with the class names) for
single-label datasets; ``text`` and ``labels`` (``Sequence(ClassLabel)``, the label ids
of the example) for ``goemotions_multilabel``. Shuffling is disabled, so records are in
the readers' order and :func:`load_split_tfds` returns a :class:`Split` equal to the
direct reader's (same texts, labels, names and order). The prepared dataset's metadata
records the size and SHA-256 of every release file it was built from; loading with
the release files present checks them and refuses stale data.

Stock builders (:func:`load_stock_split`; fetched by :mod:`lcl_jax.data.tfds_stock`): TFDS's own ``goemotions``, ``glue/sst2`` and
``ag_news_subset``. ``goemotions`` and ``glue`` are only registered when TensorFlow is
installed; all of them download their data (internet) unless already prepared in the
TFDS data directory. They differ from the release-file path: stock records come in
TFDS's shuffled order (same multiset for GoEmotions); ``glue/sst2``'s train split is
the 67,349 phrases of GLUE (not the 6,920 sentences) and its test split is unlabelled.
"""

from __future__ import annotations

import hashlib
import os
import pathlib

import numpy as np
import tensorflow_datasets as tfds

from lcl_jax.data import catalog, files, goemotions, tfds_stock
from lcl_jax.data.split import SPLIT_NAMES, Split
# Re-exported: the stock-builder error and probe keep their public names here.
from lcl_jax.data.tfds_stock import (StockBuilderUnavailableError,  # noqa: F401
                                     stock_records, tensorflow_available)

BUILDER_NAME = "lcl_datasets"
BUILDER_VERSION = "1.1.0"


def _config_names() -> list[str]:
  return [name for name, spec in catalog.DATASETS.items()
          if spec.source in ("files", "generated")]


def release_fingerprint(name: str, data_dir: pathlib.Path) -> dict[str, dict[str, object]]:
  """``{relative path: {bytes, sha256}}`` of the release files of dataset ``name``."""
  out: dict[str, dict[str, object]] = {}
  for path in catalog.release_files(name, data_dir):
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    out[path.relative_to(data_dir).as_posix()] = {"bytes": path.stat().st_size,
                                                  "sha256": digest}
  return out


class LclDatasets(tfds.core.GeneratorBasedBuilder):
  """The LCL paper's datasets, prepared from the release files (see module doc)."""

  VERSION = tfds.core.Version(BUILDER_VERSION)
  # A new version whenever a config's records change, so data prepared by an older
  # version (same release files) is never served as the new one.
  RELEASE_NOTES = {
      "1.0.0": "Initial release: release-file readers of lcl_jax.data.",
      "1.1.0": "isear = the authors' scikit-learn split (was stratified); the stratified "
               "split is the new config isear_stratified.",
  }
  BUILDER_CONFIGS = [
      tfds.core.BuilderConfig(name=name, description=catalog.DATASETS[name].description)
      for name in _config_names()]
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Put the release files in manual_dir with the layout of lcl_jax.data "
      "(goemotions/{train,dev,test}.tsv, sst/trees/*.txt, isear/isear_data.csv, "
      "emoint/*-ratings-0to1.*.txt, empathetic_dialogues/{train,valid,test}.csv); "
      "the project's shared/data folder has this layout (see its PROVENANCE.md).")

  # NOTE: TFDS locates a builder's checksums file next to its code; for a builder in
  # a package, TFDS 4.9.10 then touches `importlib_resources.abc` unconditionally,
  # a package it only declares for Python < 3.9 (so preparing fails with
  # ModuleNotFoundError on 3.11 without it). We download nothing and have no
  # checksums file, so we report no code path.
  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls):  # pylint: disable=no-self-argument
    return None

  def _info(self) -> tfds.core.DatasetInfo:
    spec = catalog.DATASETS[self.builder_config.name]
    names = list(spec.label_names)
    if spec.multilabel:
      features = tfds.features.FeaturesDict({
          "text": tfds.features.Text(),
          "labels": tfds.features.Sequence(tfds.features.ClassLabel(names=names)),
      })
      supervised_keys = None
    else:
      features = tfds.features.FeaturesDict({
          "text": tfds.features.Text(),
          "label": tfds.features.ClassLabel(names=names),
      })
      supervised_keys = ("text", "label")
    return tfds.core.DatasetInfo(
        builder=self, description=spec.description, features=features,
        supervised_keys=supervised_keys, disable_shuffling=True,
        metadata=tfds.core.MetadataDict())

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    name = self.builder_config.name
    if catalog.DATASETS[name].source == "generated":
      splits = {s: catalog.DATASETS[name].reader(None, s) for s in SPLIT_NAMES}
    else:
      data_dir = pathlib.Path(dl_manager.manual_dir)
      splits = {s: catalog.read_files(name, s, data_dir) for s in SPLIT_NAMES}
      self.info.metadata["release_files"] = release_fingerprint(name, data_dir)
    self.info.metadata["split_sizes"] = {s: len(v) for s, v in splits.items()}
    return {s: self._generate_examples(v) for s, v in splits.items()}

  def _generate_examples(self, split: Split):
    for i, text in enumerate(split.texts):
      if split.multilabel:
        yield i, {"text": text, "labels": np.flatnonzero(split.labels[i]).tolist()}
      else:
        yield i, {"text": text, "label": int(split.labels[i])}


def _split_from_records(records, *, name: str, split: str) -> Split:
  spec = catalog.DATASETS[name]
  texts = tuple(tfds_stock.decode_text(r["text"]) for r in records)
  if spec.multilabel:
    labels = np.zeros((len(records), len(spec.label_names)), dtype=np.int32)
    for i, r in enumerate(records):
      labels[i, np.asarray(r["labels"], dtype=np.int64)] = 1
  else:
    labels = np.asarray([int(r["label"]) for r in records], dtype=np.int32)
  return Split(dataset=name, split=split, texts=texts, labels=labels,
               label_names=spec.label_names, multilabel=spec.multilabel)


def lcl_builder(name: str, *, tfds_data_dir: os.PathLike[str] | str | None = None
                ) -> LclDatasets:
  """Our builder for dataset ``name`` (not prepared yet, maybe)."""
  if name not in LclDatasets.builder_configs:
    raise ValueError(f"{name!r} has no {BUILDER_NAME} config; configs: "
                     f"{', '.join(LclDatasets.builder_configs)}")
  return LclDatasets(config=name, data_dir=None if tfds_data_dir is None else
                     os.fspath(tfds_data_dir), file_format="array_record")


def load_split_tfds(name: str, split: str, *,
                    data_dir: os.PathLike[str] | str | None = None,
                    tfds_data_dir: os.PathLike[str] | str | None = None) -> Split:
  """Loads a split through ``lcl_datasets/<name>``, preparing it first if needed.

  Args:
    name: a dataset with release files (or ``synthetic``).
    split: canonical split name.
    data_dir: the release files (``manual_dir``); resolved like the direct readers
      (``$LCL_DATA_DIR`` when ``None``). Needed to prepare; when the dataset is
      already prepared it is optional and, if present, used to check that the
      prepared data was built from the same files.
    tfds_data_dir: TFDS data directory (TFDS's default, ``$TFDS_DATA_DIR`` or
      ``~/tensorflow_datasets``, when ``None``).

  Raises:
    DataFileNotFoundError: neither prepared data nor release files are available.
    ValueError: the prepared data was built from different release files.
  """
  builder = lcl_builder(name, tfds_data_dir=tfds_data_dir)
  generated = catalog.DATASETS[name].source == "generated"
  release_dir: pathlib.Path | None = None
  if not generated:
    try:
      release_dir = files.resolve_data_dir(data_dir, dataset=name)
    except files.DataFileNotFoundError:
      if not builder.is_prepared():
        raise
  if not builder.is_prepared():
    download_config = tfds.download.DownloadConfig(
        manual_dir=None if release_dir is None else os.fspath(release_dir))
    if release_dir is not None:
      catalog.release_files(name, release_dir, require=True)
    builder.download_and_prepare(download_config=download_config)
  elif release_dir is not None and catalog.release_files(name, release_dir):
    stored = dict(builder.info.metadata.get("release_files", {}))
    current = release_fingerprint(name, release_dir)
    # Files present on one side only (e.g. SST's zip next to its extracted trees)
    # are not evidence of staleness; a file present on both sides must match.
    changed = sorted(k for k in stored.keys() & current.keys() if stored[k] != current[k])
    if changed:
      raise ValueError(
          f"{name}: the TFDS data prepared at {builder.data_dir} was built from release "
          f"files that differ from those in {release_dir} (differing: {changed}). "
          f"Delete {builder.data_dir} to re-prepare, or use another tfds_data_dir.")
  source = builder.as_data_source(split=split)
  return _split_from_records(tfds_stock.records(source), name=name, split=split)


# ----------------------------------------------------------------------------------
# Stock TFDS builders (TensorFlow and/or internet needed; see the module docstring).

STOCK_BUILDERS: dict[str, str] = {
    "goemotions": "goemotions",
    "goemotions_multilabel": "goemotions",
    "sst2": "glue/sst2",
    "ag_news": "ag_news_subset",
}


def load_stock_split(name: str, split: str, *,
                     tfds_data_dir: os.PathLike[str] | str | None = None,
                     download: bool = True) -> Split:
  """``goemotions``, ``goemotions_multilabel`` or ``sst2`` via a stock TFDS builder.

  GoEmotions gets the same filtering as the release-file reader (same multiset of
  examples, TFDS's order). ``sst2`` maps to ``glue/sst2``: ``train`` is GLUE's 67,349
  phrases and ``test`` is refused (GLUE's test labels are hidden).
  """
  if name not in STOCK_BUILDERS or name == "ag_news":
    raise ValueError(f"{name!r} has no stock TFDS builder here; stock builders exist "
                     f"for {', '.join(k for k in STOCK_BUILDERS if k != 'ag_news')}")
  if name == "sst2" and split == "test":
    raise StockBuilderUnavailableError(
        "glue/sst2's test split has no labels (GLUE hides them); use the release files "
        "(source='files' or 'tfds') for the sentence-level SST-2 test split")
  records = stock_records(STOCK_BUILDERS[name], split, tfds_data_dir=tfds_data_dir,
                          download=download)
  texts: list[str] = []
  if name == "sst2":
    labels = [int(r["label"]) for r in records]
    texts = [tfds_stock.decode_text(r["sentence"]) for r in records]
    return Split(dataset=name, split=split, texts=tuple(texts),
                 labels=np.asarray(labels, dtype=np.int32),
                 label_names=catalog.DATASETS[name].label_names)
  multi_hot = np.asarray([[bool(r[e]) for e in goemotions.EMOTIONS] for r in records],
                         dtype=np.int32).reshape(len(records), len(goemotions.EMOTIONS))
  texts = [tfds_stock.decode_text(r["comment_text"]) for r in records]
  if name == "goemotions_multilabel":
    return Split(dataset=name, split=split, texts=tuple(texts), labels=multi_hot,
                 label_names=goemotions.EMOTIONS, multilabel=True)
  keep = np.flatnonzero((multi_hot.sum(axis=1) == 1)
                        & (multi_hot[:, goemotions.NEUTRAL_ID] == 0))
  return Split(dataset=name, split=split, texts=tuple(texts[i] for i in keep),
               labels=multi_hot[keep].argmax(axis=1).astype(np.int32),
               label_names=goemotions.EMOTIONS[:goemotions.NEUTRAL_ID])
