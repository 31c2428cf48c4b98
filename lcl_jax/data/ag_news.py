"""AG News (Zhang et al., 2015), 4 topic classes, through TFDS's ``ag_news_subset``.

There are no release files in ``data_dir``: the data comes from TFDS's stock builder
``ag_news_subset`` (120,000 train / 7,600 test), which downloads the CSVs (internet)
the first time and can be prepared as ``array_record`` without TensorFlow. Text =
``title + " " + description``. ``ag_news_subset`` has no validation split, so we hold
out a seeded stratified 5% of train (:func:`lcl_jax.data.split.stratified_partition`,
seed :data:`VALIDATION_SEED`): 114,000 / 6,000 / 7,600, 1,500 validation texts per class.
"""

from __future__ import annotations

import os

import numpy as np

from lcl_jax.data import tfds_stock
from lcl_jax.data.split import Split, holdout_split

LABELS: tuple[str, ...] = ("World", "Sports", "Business", "Sci/Tech")
TFDS_NAME = "ag_news_subset"
VALIDATION_FRACTION = 0.05
VALIDATION_SEED = 0


def read_split(split: str, *, tfds_data_dir: os.PathLike[str] | str | None = None,
               download: bool = True) -> Split:
  """One split (``split`` canonical: train/validation/test) of AG News via TFDS.

  Raises:
    StockBuilderUnavailableError: TFDS cannot provide ``ag_news_subset`` here (the
      message says what is needed: internet, or a TFDS data dir where it is prepared).
  """
  tfds_split = "test" if split == "test" else "train"
  records = tfds_stock.stock_records(TFDS_NAME, tfds_split, tfds_data_dir=tfds_data_dir,
                                        download=download)

  def text(r) -> str:
    title, description = (v.decode("utf-8") if isinstance(v, bytes) else str(v)
                          for v in (r["title"], r["description"]))
    return f"{title} {description}".strip()

  texts = [text(r) for r in records]
  labels = np.asarray([int(r["label"]) for r in records], dtype=np.int32)
  if split != "test":
    texts, labels = holdout_split(texts, labels, split, fraction=VALIDATION_FRACTION,
                                  seed=VALIDATION_SEED)
  return Split(dataset="ag_news", split=split, texts=tuple(texts), labels=labels,
               label_names=LABELS)
