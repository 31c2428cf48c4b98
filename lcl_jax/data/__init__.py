"""Datasets of the LCL paper from their release files, TFDS builders, and batching.

Entry point: :func:`load_split` (``lcl_jax.data.registry``) returns a :class:`Split`
(``lcl_jax.data.split``) for every name in :data:`DATASETS`. The TFDS builders live in
``lcl_jax.data.tfds_builders`` (imported on demand: importing it registers the
``lcl_datasets`` builder with TFDS).
"""

from lcl_jax.data import synthetic
from lcl_jax.data.files import (DATA_DIR_ENV, DataFileNotFoundError, EmptyFileError,
                                MalformedRowError, UnknownLabelError)
from lcl_jax.data.registry import DATASETS, DatasetSpec, dataset_names, load_split
from lcl_jax.data.split import SPLIT_NAMES, Split, canonical_split_name, stratified_partition

from lcl_jax.data.augment import (SynonymAugmenter, WordNetNotFoundError, augment_texts,
                                  replacement_coverage)
from lcl_jax.data.batching import (PairedTrainBatcher, TokenizedTexts, epoch_views,
                                   eval_batches, tokenize_texts)

__all__ = [
    "DATASETS",
    "PairedTrainBatcher",
    "SynonymAugmenter",
    "TokenizedTexts",
    "WordNetNotFoundError",
    "augment_texts",
    "epoch_views",
    "eval_batches",
    "replacement_coverage",
    "tokenize_texts",
    "DATA_DIR_ENV",
    "DataFileNotFoundError",
    "DatasetSpec",
    "EmptyFileError",
    "MalformedRowError",
    "SPLIT_NAMES",
    "Split",
    "UnknownLabelError",
    "canonical_split_name",
    "dataset_names",
    "load_split",
    "stratified_partition",
    "synthetic",
]
