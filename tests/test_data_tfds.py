"""The TFDS path (our ``lcl_datasets`` builder, array_record, no TensorFlow) equals the
direct readers on the shared release files; the stock-builder fallbacks explain
themselves when TensorFlow / internet are missing.

Equality is exact and ordered: same texts, labels, label names and example order
(the builder disables TFDS shuffling). Every config is prepared once per session
into a temporary TFDS data dir.
"""

import pathlib
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow_datasets as tfds

from lcl_jax import data
from lcl_jax.data import emoint, files, registry, tfds_builders

SPLITS = ("train", "validation", "test")


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory):
  tfds.disable_progress_bar()
  return tmp_path_factory.mktemp("tfds_data")


def test_builder_configs_cover_every_release_file_dataset():
  expected = [n for n, s in registry.DATASETS.items() if s.source in ("files", "generated")]
  assert list(tfds_builders.LclDatasets.builder_configs) == expected
  assert tfds_builders.LclDatasets.name == "lcl_datasets"
  # Registered with TFDS under its own name (tfds.list_builders() would import TF).
  assert tfds.builder_cls("lcl_datasets") is tfds_builders.LclDatasets


@pytest.mark.parametrize("name", [n for n, s in registry.DATASETS.items()
                                  if s.source in ("files", "generated")])
def test_tfds_path_equals_direct_reader(name, data_dir, tfds_dir):
  for split in SPLITS:
    via_tfds = data.load_split(name, split, data_dir=data_dir, source="tfds",
                               tfds_data_dir=tfds_dir)
    direct = data.load_split(name, split, data_dir=data_dir)
    assert via_tfds.texts == direct.texts
    assert np.array_equal(via_tfds.labels, direct.labels)
    assert via_tfds.label_names == direct.label_names
    assert via_tfds == direct


def test_prepare_and_read_never_import_tensorflow(data_dir, tmp_path):
  # A fresh interpreter: prepare, read back, then check TensorFlow was never imported
  # (meaningful also where TensorFlow is installed).
  script = textwrap.dedent(f"""
      import sys
      import tensorflow_datasets as tfds
      tfds.disable_progress_bar()
      from lcl_jax import data
      split = data.load_split("emoint", "test", data_dir={str(data_dir)!r}, source="tfds",
                              tfds_data_dir={str(tmp_path)!r})
      source = tfds.data_source("lcl_datasets/emoint", split="test",
                                data_dir={str(tmp_path)!r})
      print("tensorflow" in sys.modules, len(split), len(source), split == data.load_split(
          "emoint", "test", data_dir={str(data_dir)!r}))
  """)
  result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=pathlib.Path(__file__).resolve().parents[1], check=False)
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.split()[-4:] == ["False", "3142", "3142", "True"]


def test_prepared_dataset_is_a_plain_tfds_data_source(data_dir, tfds_dir):
  data.load_split("isear", "test", data_dir=data_dir, source="tfds", tfds_data_dir=tfds_dir)
  source = tfds.data_source("lcl_datasets/isear", data_dir=str(tfds_dir), split="test")
  assert len(source) == 1534
  builder = tfds_builders.lcl_builder("isear", tfds_data_dir=tfds_dir)
  assert builder.info.features["label"].names == list(registry.DATASETS["isear"].label_names)
  assert builder.info.file_format.value == "array_record"
  assert builder.info.metadata["split_sizes"] == {"train": 4599, "validation": 1533,
                                                  "test": 1534}
  assert set(builder.info.metadata["release_files"]) == {"isear/isear_data.csv"}
  record = source[0]
  direct = data.load_split("isear", "test", data_dir=data_dir)
  assert record["text"].decode("utf-8") == direct.texts[0]
  assert int(record["label"]) == int(direct.labels[0])
  # Once prepared, reading needs no release files.
  again = data.load_split("isear", "test", data_dir=data_dir / "absent", source="tfds",
                          tfds_data_dir=tfds_dir)
  assert again == direct


def test_multilabel_features_keep_the_label_names(data_dir, tfds_dir):
  data.load_split("goemotions_multilabel", "test", data_dir=data_dir, source="tfds",
                  tfds_data_dir=tfds_dir)
  builder = tfds_builders.lcl_builder("goemotions_multilabel", tfds_data_dir=tfds_dir)
  assert builder.info.features["labels"].feature.names[-1] == "neutral"
  assert builder.info.features["labels"].feature.num_classes == 28


def test_classes_argument_through_tfds(data_dir, tfds_dir):
  kwargs = dict(data_dir=data_dir, classes=["terrified", "afraid"])
  assert (data.load_split("empathetic_dialogues", "dev", source="tfds", tfds_data_dir=tfds_dir,
                          **kwargs)
          == data.load_split("empathetic_dialogues", "dev", **kwargs))


def test_stale_prepared_data_is_refused(data_dir, tmp_path):
  release = tmp_path / "release"
  (release / "emoint").mkdir(parents=True)
  for emotion in emoint.LABELS:
    for split in SPLITS:
      shutil.copy(emoint.file_path(data_dir, emotion, split),
                  emoint.file_path(release, emotion, split))
  tfds_dir = tmp_path / "tfds"
  first = data.load_split("emoint", "dev", data_dir=release, source="tfds",
                          tfds_data_dir=tfds_dir)
  assert len(first) == 347
  changed = emoint.file_path(release, "joy", "validation")
  changed.write_text(changed.read_text() + "99999\tnew tweet\tjoy\t0.5\n")
  assert len(data.load_split("emoint", "dev", data_dir=release)) == 348
  with pytest.raises(ValueError, match=r"differ.*emoint/joy-ratings-0to1\.dev\.gold\.txt.*"
                     r"Delete"):
    data.load_split("emoint", "dev", data_dir=release, source="tfds", tfds_data_dir=tfds_dir)


def test_missing_release_files_and_no_tensorflow_explain_the_options(tmp_path, monkeypatch):
  monkeypatch.setattr(tfds_builders, "tensorflow_available", lambda: False)
  with pytest.raises(files.DataFileNotFoundError) as info:
    data.load_split("goemotions", "train", data_dir=tmp_path, source="tfds",
                    tfds_data_dir=tmp_path / "tfds")
  message = str(info.value)
  assert "'lcl_datasets/goemotions'" in message
  assert "stock builder 'goemotions' would be used instead if TensorFlow were" in message
  with pytest.raises(files.DataFileNotFoundError, match=r"isear.*release files"):
    data.load_split("isear", "train", data_dir=tmp_path, source="tfds",
                    tfds_data_dir=tmp_path / "tfds")


def test_stock_builders_explain_what_they_need(tmp_path):
  for name, builder in (("goemotions", "goemotions"), ("sst2", "glue/sst2")):
    if tfds_builders.tensorflow_available():
      expected = rf"TFDS's '{builder}' is not prepared in {tmp_path} and download=False"
    else:
      expected = (rf"stock builder '{builder}' is not available: TFDS registers it only "
                  r"when TensorFlow is installed")
    with pytest.raises(tfds_builders.StockBuilderUnavailableError, match=expected):
      data.load_split(name, "validation", source="tfds_stock", tfds_data_dir=tmp_path,
                      download=False)
  with pytest.raises(tfds_builders.StockBuilderUnavailableError, match="no labels"):
    data.load_split("sst2", "test", source="tfds_stock", tfds_data_dir=tmp_path)
  with pytest.raises(ValueError, match="no stock TFDS builder"):
    data.load_split("isear", "test", source="tfds_stock", tfds_data_dir=tmp_path)
