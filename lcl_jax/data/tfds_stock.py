"""TFDS's stock builders, read without TensorFlow where possible (array_record).

What both :mod:`lcl_jax.data.ag_news` (always through TFDS's ``ag_news_subset``) and
:mod:`lcl_jax.data.tfds_builders` (our builder and the ``goemotions`` / ``glue/sst2``
fallbacks) need; it imports nothing else of this package, so neither of them has to
import the other. ``tensorflow_datasets`` is imported when a builder is first used.

``goemotions`` and ``glue`` are only registered by TFDS when TensorFlow is installed;
every stock builder downloads its data (internet) unless it is already prepared in the
TFDS data directory.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping


def decode_text(value: object) -> str:
  """A TFDS ``Text`` value (bytes, UTF-8) as ``str``."""
  return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def records(source) -> list[Mapping[str, object]]:
  """Every record of a TFDS data source, in its order."""
  n = len(source)
  if n == 0:
    return []
  return list(source.__getitems__(list(range(n))))


class StockBuilderUnavailableError(RuntimeError):
  """A stock TFDS builder cannot be loaded or prepared here."""


def tensorflow_available() -> bool:
  """Whether ``tensorflow`` is importable (TFDS then registers more stock builders)."""
  return importlib.util.find_spec("tensorflow") is not None


def stock_records(builder_name: str, split: str, *,
                  tfds_data_dir: os.PathLike[str] | str | None = None,
                  download: bool = True) -> list[Mapping[str, object]]:
  """All records of a stock TFDS builder's split (prepares it if allowed)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  where = "TFDS's default data dir" if tfds_data_dir is None else str(tfds_data_dir)
  try:
    builder = tfds.builder(builder_name, data_dir=None if tfds_data_dir is None
                           else os.fspath(tfds_data_dir), file_format="array_record")
  except tfds.core.registered.DatasetNotFoundError as e:
    raise StockBuilderUnavailableError(
        f"TFDS's stock builder {builder_name!r} is not available: TFDS registers it only "
        f"when TensorFlow is installed (tensorflow importable: {tensorflow_available()}). "
        "Install tensorflow, or use the release files with source='tfds' (our "
        "TensorFlow-free 'lcl_datasets' builder) or source='files'.") from e
  if not builder.is_prepared():
    if not download:
      raise StockBuilderUnavailableError(
          f"TFDS's {builder_name!r} is not prepared in {where} and download=False. "
          f"Prepare it once where there is internet access (`tfds build {builder_name} "
          "--file_format=array_record`) and pass its folder as tfds_data_dir "
          "(or set TFDS_DATA_DIR), or allow the download.")
    try:
      builder.download_and_prepare()
    except Exception as e:  # pylint: disable=broad-except
      raise StockBuilderUnavailableError(
          f"could not download and prepare TFDS's {builder_name!r} into {where}: "
          f"{type(e).__name__}: {e}. This needs internet access (and TFDS's downloader "
          "needs the importlib_resources package); alternatively prepare it elsewhere "
          f"with `tfds build {builder_name} --file_format=array_record` and pass its "
          "folder as tfds_data_dir.") from e
  if split not in builder.info.splits:
    raise StockBuilderUnavailableError(
        f"TFDS's {builder_name!r} has no split {split!r} (splits: "
        f"{', '.join(builder.info.splits)})")
  try:
    return records(builder.as_data_source(split=split))
  except (ValueError, NotImplementedError) as e:
    if not tensorflow_available():
      raise StockBuilderUnavailableError(
          f"TFDS's {builder_name!r} in {where} is stored as "
          f"{builder.info.file_format}; reading it without TensorFlow needs "
          "array_record. Re-prepare it with --file_format=array_record or install "
          "tensorflow.") from e
    return list(tfds.as_numpy(builder.as_dataset(split=split)))


