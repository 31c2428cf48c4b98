"""Dataset names and :func:`load_split`, the one entry point to every dataset.

The names and their specs live in :mod:`lcl_jax.data.catalog` (re-exported here);
this module adds the sources (release files, our TFDS builder, stock TFDS builders).

>>> from lcl_jax.data import load_split
>>> split = load_split("goemotions", "train", data_dir="../shared/data")
>>> len(split), split.num_classes, split.label_names[:3]
(23485, 27, ('admiration', 'amusement', 'anger'))

:data:`DATASETS` maps each name to a :class:`DatasetSpec` (classes, counts, where the
data comes from); the table of counts per split is in :mod:`lcl_jax.data.catalog`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from lcl_jax.data import ag_news, catalog, files
# The catalogue's names, re-exported: registry.DATASETS etc. are the public spelling.
from lcl_jax.data.catalog import (DATASETS, DatasetSpec, dataset_names,  # noqa: F401
                                  release_files)
from lcl_jax.data.split import Split, canonical_split_name

SOURCES = ("files", "tfds", "tfds_stock")


def load_split(name: str, split: str, *,
               data_dir: os.PathLike[str] | str | None = None,
               classes: Sequence[str] | None = None,
               source: str = "files",
               tfds_data_dir: os.PathLike[str] | str | None = None,
               download: bool = True) -> Split:
  """Loads one split of a dataset as a :class:`~lcl_jax.data.split.Split`.

  Args:
    name: a key of :data:`DATASETS`.
    split: ``"train"``, ``"validation"`` or ``"test"`` (``"dev"``, ``"valid"`` and
      ``"val"`` mean ``"validation"``).
    data_dir: the folder holding the release files (layout in
      :mod:`lcl_jax.data.files`); ``None`` -> ``$LCL_DATA_DIR``. Unused by
      ``synthetic`` and ``ag_news``.
    classes: keep only these classes, re-indexed ``0..len(classes)-1`` in the given
      order (any single-label dataset; e.g. a custom Empathetic Dialogues subset).
    source: ``"files"`` reads the release files directly; ``"tfds"`` goes through our
      ``lcl_datasets/<name>`` TFDS builder (prepared from the release files into
      ``tfds_data_dir`` on first use, read back without TensorFlow; same result as
      ``"files"``) -- or, for ``goemotions``/``goemotions_multilabel``/``sst2`` when
      neither release files nor prepared data are there but TensorFlow is, through
      TFDS's stock builder; ``"tfds_stock"`` forces the stock builder
      (``goemotions``, ``glue/sst2``; see :mod:`lcl_jax.data.tfds_builders` for how
      they differ). ``ag_news`` always uses TFDS's ``ag_news_subset``.
    tfds_data_dir: TFDS data directory for the TFDS sources (TFDS's default if None).
    download: whether stock TFDS builders may download (``ag_news``, ``tfds_stock``).

  Returns:
    The split; examples in file order (``isear``: the order scikit-learn's
    ``train_test_split`` returns, as in the authors' release; ``isear_stratified``:
    file order within the split).

  Raises:
    ValueError: unknown dataset, split, source or class (messages list the valid ones).
    DataFileNotFoundError: a release file is missing (names file, dataset, folder).
    MalformedRowError: a row of a release file is malformed (names file and line).
    UnknownLabelError: a label in a file is not one of the dataset's labels.
  """
  spec = catalog.get_spec(name)
  split = canonical_split_name(split)
  if source not in SOURCES:
    raise ValueError(f"unknown source {source!r}; expected one of {list(SOURCES)}")
  if spec.source == "tfds_stock":
    result = ag_news.read_split(split, tfds_data_dir=tfds_data_dir, download=download)
  elif source == "tfds_stock":
    from lcl_jax.data import tfds_builders  # pylint: disable=g-import-not-at-top
    result = tfds_builders.load_stock_split(name, split, tfds_data_dir=tfds_data_dir,
                                            download=download)
  elif source == "tfds":
    result = _load_tfds(name, split, data_dir=data_dir, tfds_data_dir=tfds_data_dir,
                        download=download)
  elif spec.source == "generated":
    result = spec.reader(None, split)
  else:
    result = catalog.read_files(name, split, files.resolve_data_dir(data_dir, dataset=name))
  if classes is not None:
    result = result.select_classes(classes)
  return result


def _load_tfds(name: str, split: str, *, data_dir, tfds_data_dir, download: bool) -> Split:
  """``source='tfds'``: our builder; the stock builder only as the documented fallback."""
  from lcl_jax.data import tfds_builders  # pylint: disable=g-import-not-at-top
  try:
    return tfds_builders.load_split_tfds(name, split, data_dir=data_dir,
                                         tfds_data_dir=tfds_data_dir)
  except files.DataFileNotFoundError as e:
    if name in tfds_builders.STOCK_BUILDERS and tfds_builders.tensorflow_available():
      return tfds_builders.load_stock_split(name, split, tfds_data_dir=tfds_data_dir,
                                            download=download)
    stock = ""
    if name in tfds_builders.STOCK_BUILDERS:
      stock = (f" TFDS's stock builder {tfds_builders.STOCK_BUILDERS[name]!r} would be "
               "used instead if TensorFlow were installed.")
    raise files.DataFileNotFoundError(
        f"{name}: source='tfds' needs the release files to prepare "
        f"'{tfds_builders.BUILDER_NAME}/{name}' (or data already prepared in "
        f"tfds_data_dir={tfds_data_dir}).{stock} Cause: {e}") from e
