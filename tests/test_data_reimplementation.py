"""Datasets of seed 001's re-implementation study: GoEmotions with the first label,
Twitter sentiment (TSA) and ParsiNLU sentiment readers (on small files written here,
in the public formats; the real files are not shipped)."""
import csv
import json

import numpy as np
import pytest

from lcl_jax import data
from lcl_jax.data import files, registry, tfds_builders

SPLITS = ("train", "validation", "test")


def test_goemotions_first_label_sizes_and_labels(data_dir):
  paper = {s: data.load_split("goemotions", s, data_dir=data_dir) for s in SPLITS}
  first = {s: data.load_split("goemotions_first_label", s, data_dir=data_dir) for s in SPLITS}
  sizes = tuple(len(first[s]) for s in SPLITS)
  print("goemotions_first_label", sizes, "paper filter", tuple(len(paper[s]) for s in SPLITS))
  assert sizes == (30587, 3834, 3821) == registry.DATASETS["goemotions_first_label"].sizes
  assert first["train"].num_classes == 27 and not first["train"].multilabel
  # Independent reading of the TSV: every row with a non-neutral id, its first such id.
  with (data_dir / "goemotions" / "dev.tsv").open(encoding="utf-8", newline="") as f:
    expected = [(text, next(int(i) for i in ids.split(",") if int(i) != 27))
                for text, ids, _ in csv.reader(f, delimiter="\t")
                if any(int(i) != 27 for i in ids.split(","))]
  assert list(first["validation"].texts) == [text for text, _ in expected]
  np.testing.assert_array_equal(first["validation"].labels, [label for _, label in expected])
  # The paper's single-label rows are a subsequence with the same labels.
  rows = iter(zip(first["test"].texts, first["test"].labels.tolist()))
  assert all(any(row == pair for row in rows)
             for pair in zip(paper["test"].texts, paper["test"].labels.tolist()))


def test_goemotions_first_label_takes_the_first_listed_non_neutral(tmp_path):
  folder = tmp_path / "goemotions"
  folder.mkdir()
  rows = [("a", "27,3"), ("b", "5,2"), ("c", "27"), ("d", "11")]
  for name in ("train.tsv", "dev.tsv", "test.tsv"):
    (folder / name).write_text("".join(f"{t}\t{ids}\tid{i}\n" for i, (t, ids) in
                                       enumerate(rows)), encoding="utf-8")
  split = data.load_split("goemotions_first_label", "train", data_dir=tmp_path)
  assert split.texts == ("a", "b", "d")
  assert split.labels.tolist() == [3, 5, 11]


def _write_tsa(folder, n_per_class=10):
  folder.mkdir(parents=True)
  lines = [f"{i % 2}\ttweet number {i}" for i in range(2 * n_per_class)]
  (folder / "train_150k.txt").write_text("\ufeff" + "\n".join(lines) + "\n\n", encoding="utf-8")
  (folder / "test_62k.txt").write_text("1\tgreat day :)\n0\tawful\ttab inside\n",
                                       encoding="utf-8")


def test_tsa_reader(tmp_path):
  _write_tsa(tmp_path / "tsa")
  train, val, test = (data.load_split("tsa", s, data_dir=tmp_path) for s in SPLITS)
  assert (len(train), len(val), len(test)) == (16, 4, 2)
  assert train.label_names == ("negative", "positive")
  assert val.labels.tolist().count(0) == 2 and val.labels.tolist().count(1) == 2
  assert sorted(train.texts + val.texts) == sorted(f"tweet number {i}" for i in range(20))
  for split in (train, val):
    for text, label in zip(split.texts, split.labels.tolist()):
      assert int(text.split()[-1]) % 2 == label
  assert test.texts == ("great day :)", "awful\ttab inside") and test.labels.tolist() == [1, 0]
  # Deterministic partition.
  assert data.load_split("tsa", "validation", data_dir=tmp_path).texts == val.texts


def test_tsa_bad_rows_and_missing_files(tmp_path):
  with pytest.raises(files.DataFileNotFoundError, match=r"tsa/train_150k\.txt"):
    data.load_split("tsa", "train", data_dir=tmp_path)
  with pytest.raises(files.DataFileNotFoundError, match=r"test_62k\.txt"):
    data.load_split("tsa", "test", data_dir=tmp_path)
  (tmp_path / "tsa").mkdir()
  (tmp_path / "tsa" / "test_62k.txt").write_text("1\tok\npositive\tbad label\n")
  with pytest.raises(files.MalformedRowError, match=r"test_62k\.txt, line 2: label 'positive'"):
    data.load_split("tsa", "test", data_dir=tmp_path)
  (tmp_path / "tsa" / "test_62k.txt").write_text("1 no tab\n")
  with pytest.raises(files.MalformedRowError, match="line 1: expected 'label<TAB>tweet'"):
    data.load_split("tsa", "test", data_dir=tmp_path)
  (tmp_path / "tsa" / "test_62k.txt").write_text("\n \n")
  with pytest.raises(files.EmptyFileError, match=r"test_62k\.txt.*empty"):
    data.load_split("tsa", "test", data_dir=tmp_path)


def _parsinlu_row(review, aspect, label, *, as_json):
  row = {"review": review, "review_id": "1", "question": "q?", "category": " c",
         "aspect": aspect, "label": label, "example_id": "1", "guid": "g"}
  return json.dumps(row, ensure_ascii=False) if as_json else repr(row)


def _write_parsinlu(folder):
  folder.mkdir(parents=True)
  overall = "کلی"
  for domain in ("food", "movie"):
    for split in ("train", "dev", "test"):
      lines = [
          _parsinlu_row(f"{domain} {split} one", "صدا", "-3", as_json=False),
          _parsinlu_row(f"{domain} {split} one", overall, "2", as_json=domain == "food"),
          _parsinlu_row(f"{domain} {split} two", overall, "-1", as_json=False),
      ]
      (folder / f"{domain}_{split}.jsonl").write_text("\n".join(lines) + "\n\n",
                                                      encoding="utf-8")


def test_parsinlu_reader(tmp_path):
  _write_parsinlu(tmp_path / "parsinlu_sentiment")
  train, val, test = (data.load_split("parsinlu_sentiment", s, data_dir=tmp_path)
                      for s in SPLITS)
  assert train.texts == ("food train one", "food train two", "movie train one",
                         "movie train two")
  assert val.texts == ("food dev one", "food dev two", "movie dev one", "movie dev two")
  assert test.texts == ("movie test one", "movie test two")  # movies only (seed 001)
  assert [train.label_names[i] for i in train.labels] == ["2", "-1", "2", "-1"]
  assert train.num_classes == 7 and train.label_names[0] == "-3"


def test_parsinlu_bad_rows_and_missing_files(tmp_path):
  with pytest.raises(files.DataFileNotFoundError,
                     match=r"parsinlu_sentiment/food_train\.jsonl.*\{food,movie\}"):
    data.load_split("parsinlu_sentiment", "train", data_dir=tmp_path)
  _write_parsinlu(tmp_path / "parsinlu_sentiment")
  path = tmp_path / "parsinlu_sentiment" / "movie_test.jsonl"
  path.write_text(_parsinlu_row("x", "کلی", "5", as_json=True) + "\n", encoding="utf-8")
  with pytest.raises(files.MalformedRowError, match=r"movie_test\.jsonl, line 1: label '5'"):
    data.load_split("parsinlu_sentiment", "test", data_dir=tmp_path)
  path.write_text("\n{'review': 'x', 'label': '1'}\n", encoding="utf-8")
  with pytest.raises(files.MalformedRowError, match=r"line 2: missing column\(s\) \['aspect'\]"):
    data.load_split("parsinlu_sentiment", "test", data_dir=tmp_path)
  path.write_text("not a row\n", encoding="utf-8")
  with pytest.raises(files.MalformedRowError, match="line 1: neither a JSON object"):
    data.load_split("parsinlu_sentiment", "test", data_dir=tmp_path)


def test_user_file_datasets_have_no_tfds_builder():
  configs = list(tfds_builders.LclDatasets.builder_configs)
  assert "goemotions_first_label" in configs
  assert "tsa" not in configs and "parsinlu_sentiment" not in configs
