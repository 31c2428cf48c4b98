"""Release-file readers, the Split type, the synthetic dataset and bad-input errors.

Reference figures come from the shared data's PROVENANCE.md (split counts, SST-5 and
EmoInt per-class counts, ISEAR per-emotion counts) and from lines of the raw files
read by hand; independent re-parses use only the csv module.
"""

import csv
import pathlib
import re

import numpy as np
import pytest

from lcl_jax import data
from lcl_jax.data import emoint, empathetic_dialogues, files, isear, registry, sst, synthetic
from import_cycles import first_cycle  # tests/ is on sys.path (rootdir conftest)
from lcl_jax.data.split import (Split, canonical_split_name, sklearn_split_sizes,
                                stratified_partition)

PAPER_COUNTS = {
    "goemotions": (23485, 2956, 2984),
    "goemotions_multilabel": (43410, 5426, 5427),
    "sst5": (8544, 1101, 2210),
    "sst2": (6920, 872, 1821),
    "isear": (4599, 1533, 1534),
    "isear_stratified": (4599, 1533, 1534),
    "emoint": (3613, 347, 3142),
    "empathetic_dialogues": (19533, 2770, 2547),
}
SPLITS = ("train", "validation", "test")


@pytest.fixture(scope="module")
def loaded(data_dir):
  """Every split of every release-file dataset, read once for the module."""
  cache = {}

  def get(name, split):
    if (name, split) not in cache:
      cache[name, split] = data.load_split(name, split, data_dir=data_dir)
    return cache[name, split]

  return get


# ----------------------------------------------------------------------------------
# Counts and label sets.

@pytest.mark.parametrize("name", sorted(PAPER_COUNTS))
def test_split_counts_match_the_paper(loaded, name):
  counts = tuple(len(loaded(name, s)) for s in SPLITS)
  assert counts == PAPER_COUNTS[name]
  assert registry.DATASETS[name].sizes == PAPER_COUNTS[name]
  for s in SPLITS:
    split = loaded(name, s)
    assert split.dataset == name and split.split == s
    assert split.labels.dtype == np.int32
    assert split.label_names == registry.DATASETS[name].label_names


def test_split_aliases_and_env_var(data_dir, monkeypatch):
  monkeypatch.setenv("LCL_DATA_DIR", str(data_dir))
  for alias in ("dev", "valid", "VALIDATION", "val"):
    assert len(data.load_split("emoint", alias)) == 347
  assert canonical_split_name("Train") == "train"


def test_goemotions_labels_and_paper_filter(loaded, data_dir):
  names = (data_dir / "goemotions" / "emotions.txt").read_text().split()
  single, multi = loaded("goemotions", "validation"), loaded("goemotions_multilabel",
                                                             "validation")
  assert multi.label_names == tuple(names) and names[27] == "neutral"
  assert single.label_names == tuple(names[:27]) and "neutral" not in single.label_names
  assert single.num_classes == 27 and multi.num_classes == 28 and multi.multilabel
  assert multi.labels.shape == (5426, 28) and set(np.unique(multi.labels)) == {0, 1}
  # Independent re-parse: the paper version = rows with one label id that is not 27.
  with (data_dir / "goemotions" / "dev.tsv").open(encoding="utf-8", newline="") as f:
    rows = list(csv.reader(f, delimiter="\t"))
  expected = [(r[0], int(r[1])) for r in rows if "," not in r[1] and r[1] != "27"]
  assert list(zip(single.texts, single.labels.tolist())) == expected
  assert single.labels.max() < 27
  # CSV quoting resolved (dev.tsv lines 89 and 166, read by hand).
  assert multi.texts[88] == ('"I didn\'t learn anything from the last short clip video on '
                             'twitter that cut in mid way through an confrontation" Oh '
                             'look a new one!')
  assert np.flatnonzero(multi.labels[88]).tolist() == [10]
  assert multi.texts[165].startswith('color me embarrassed" I wonder')
  assert np.flatnonzero(multi.labels[165]).tolist() == [12, 26]
  assert multi.texts[165] not in single.texts  # multi-labelled -> not in the paper set
  assert multi.labels.sum(axis=0)[27] > 0  # neutral exists in the full set


def test_sst5_label_set_and_per_class_counts(loaded):
  expected = {"train": [1092, 2218, 1624, 2322, 1288],
              "validation": [139, 289, 229, 279, 165],
              "test": [279, 633, 389, 510, 399]}
  for s in SPLITS:
    split = loaded("sst5", s)
    assert set(np.unique(split.labels).tolist()) == {0, 1, 2, 3, 4}
    assert split.class_counts().tolist() == expected[s]
  assert loaded("sst5", "train").label_names == ("very negative", "negative", "neutral",
                                                 "positive", "very positive")


def test_sst2_is_sst5_without_neutral(loaded):
  for s in SPLITS:
    five, two = loaded("sst5", s), loaded("sst2", s)
    keep = five.labels != 2
    assert two.texts == tuple(t for t, k in zip(five.texts, keep) if k)
    assert two.labels.tolist() == (five.labels[keep] >= 3).astype(int).tolist()
    assert two.label_names == ("negative", "positive")


def test_sst_text_unescapes_brackets(loaded):
  dev = loaded("sst5", "validation")
  assert dev.texts[0] == "It 's a lovely film with lovely performances by Buy and Accorsi ."
  assert dev.labels[0] == 3
  # dev.txt line 8 contains (1 -LRB-) ... (3 -RRB-).
  assert dev.texts[7].startswith("Dazzles with its fully-written characters , its "
                                 "determined stylishness ( which always relates to "
                                 "characters and story ) and Johnny Dankworth 's")
  assert dev.labels[7] == 4
  for s in SPLITS:
    assert not any(re.search(r"-[LR][RSC]B-|\\/", t) for t in loaded("sst5", s).texts)


def test_sst_tree_parser_on_hand_written_trees():
  assert sst.parse_tree("(3 (2 It) (4 (2 's) (3 -LRB-good-RRB-)))") == (
      3, ["It", "'s", "-LRB-good-RRB-"])
  assert sst.parse_tree("(1 (2 2) (0 \\/))") == (1, ["2", "\\/"])
  assert sst.unescape_token("-LRB-") == "(" and sst.unescape_token("1\\/2") == "1/2"
  for bad in ("(3 (2 It)", "(x word)", "3 word", "(3 (2 a)) extra", "(2 )"):
    with pytest.raises(ValueError):
      sst.parse_tree(bad)


def test_sst_reads_the_zip_when_trees_are_absent(data_dir, tmp_path, loaded):
  (tmp_path / "sst").mkdir()
  (tmp_path / "sst" / sst.ZIP_NAME).symlink_to(data_dir / "sst" / sst.ZIP_NAME)
  assert data.load_split("sst5", "dev", data_dir=tmp_path) == loaded("sst5", "validation")


# ----------------------------------------------------------------------------------
# ISEAR.

def test_isear_cleaning_on_hand_written_examples():
  assert isear.clean_situation("we met and \u00e1\nespecially when") == (
      "we met and especially when")
  assert isear.clean_situation("the animal \u00e1\r\nscreamed.  ") == "the animal screamed."
  assert isear.clean_situation("line one\r\nline two") == "line one line two"
  assert isear.clean_situation("after  several\tdays ") == "after several days"
  assert isear.clean_situation("caf\u00e9 \u00e1ccent") == "caf\u00e9 \u00e1ccent"  # no break
  assert isear.clean_situation("") == ""


def test_isear_file_cleaned_and_per_emotion_counts(data_dir):
  texts, labels = isear.read_all(data_dir)
  assert len(texts) == 7666
  counts = dict(zip(isear.LABELS, np.bincount(labels).tolist()))
  assert counts == {"anger": 1096, "disgust": 1096, "fear": 1095, "guilt": 1093,
                    "joy": 1094, "sadness": 1096, "shame": 1096}
  assert texts[0] == ("During the period of falling in love, each time that we met and "
                      "especially when we had not met for a long time.")
  assert not any("\u00e1" in t or "\n" in t or "\r" in t or "  " in t for t in texts)
  assert "None." in texts  # short texts are kept


def _isear_by_hand(data_dir):
  """ISEAR re-read with the csv module only: (SIT, Field1) per row, in file order."""
  with open(data_dir / "isear" / "isear_data.csv", encoding="utf-8", newline="") as f:
    rows = list(csv.DictReader(f))
  return [r["SIT"] for r in rows], [r["Field1"] for r in rows]


def test_isear_default_is_the_release_scikit_learn_split(data_dir, loaded):
  from sklearn.model_selection import train_test_split

  # The authors' data_preprocess.py, on this file: two chained calls, random_state=0,
  # first part of the second call = validation.
  texts, emotions = _isear_by_hand(data_dir)
  x_train, x_held, y_train, y_held = train_test_split(texts, emotions, test_size=0.4,
                                                      random_state=0)
  x_val, x_test, y_val, y_test = train_test_split(x_held, y_held, test_size=0.5,
                                                  random_state=0)
  for split, xs, ys in (("train", x_train, y_train), ("validation", x_val, y_val),
                        ("test", x_test, y_test)):
    got = loaded("isear", split)
    assert got.texts == tuple(isear.clean_situation(x) for x in xs)  # same rows, same order
    assert [got.label_names[k] for k in got.labels] == ys
  assert (len(x_train), len(x_val), len(x_test)) == (4599, 1533, 1534)
  # Not stratified: per-emotion test counts are the release's, not ~219 each.
  assert loaded("isear", "test").class_counts().tolist() == [212, 218, 216, 221, 215, 230,
                                                             222]


def test_isear_stratified_option_deterministic_stratified_and_disjoint(data_dir, loaded):
  texts, labels = isear.read_all(data_dir)
  first, second = (isear.stratified_split_indices(labels),
                   isear.stratified_split_indices(labels))
  assert all(np.array_equal(a, b) for a, b in zip(first, second))
  assert sorted(np.concatenate(first).tolist()) == list(range(7666))
  totals = np.bincount(labels)
  for idx, fraction in zip(first, (4599 / 7666, 1533 / 7666, 1534 / 7666)):
    assert np.all(np.abs(np.bincount(labels[idx], minlength=7) - totals * fraction) <= 1)
  other = isear.stratified_split_indices(labels, seed=1)
  assert [len(p) for p in other] == [4599, 1533, 1534]
  assert not np.array_equal(other[0], first[0])
  # The loaded isear_stratified splits are exactly these rows, in file order.
  stratified_test = loaded("isear_stratified", "test")
  assert stratified_test.texts == tuple(texts[i] for i in first[2])
  assert stratified_test.dataset == "isear_stratified"
  # The figure quoted in BUILD_NOTES: the two test sets share 301 of 1,534 rows.
  release = isear.release_split_indices(len(labels))
  assert len(set(first[2].tolist()) & set(release[2].tolist())) == 301


def test_stratified_partition_against_exact_quotas():
  rng = np.random.default_rng(0)
  for trial in range(20):
    num_classes = int(rng.integers(2, 12))
    labels = rng.integers(0, num_classes, size=int(rng.integers(50, 400)))
    sizes = sklearn_split_sizes(len(labels), (0.6, 0.2, 0.2))
    parts = stratified_partition(labels, sizes, seed=trial)
    assert [len(p) for p in parts] == sizes
    assert sorted(np.concatenate(parts).tolist()) == list(range(len(labels)))
    classes, totals = np.unique(labels, return_counts=True)
    for part, size in zip(parts, sizes):
      got = np.array([(labels[part] == c).sum() for c in classes])
      assert np.all(np.abs(got - totals * size / len(labels)) < 1)
  assert sklearn_split_sizes(7666, (0.6, 0.2, 0.2)) == [4599, 1533, 1534]


# ----------------------------------------------------------------------------------
# EmoInt.

@pytest.mark.parametrize("raw, cleaned", [
    ("@DPD_UK I asked for my parcel #fuming #poorcustomerservice",
     "USER_MENTION I asked for my parcel fuming poorcustomerservice"),
    ("soooo happpppy!!! see https://t.co/abc and www.x.com/y",
     "soo happy!!! see URL and URL"),
    ("rt @bob: cats &amp; dogs... \u2764\ufe0f \U0001F602 hmmm",
     "USER_MENTION cats and dogs hmm"),
    ("\"Quoted   tweet\\nwith escape\" ", "Quoted tweet with escape"),
    ("I &lt;3 caf\u00e9 Aaaah ", "I <3 caf Aaah"),
    ("", ""),
])
def test_emoint_tweet_cleaning(raw, cleaned):
  assert emoint.clean_tweet(raw) == cleaned


def test_emoint_per_emotion_counts_and_cleaned_texts(loaded):
  expected = {"train": [857, 1147, 823, 786], "validation": [84, 110, 79, 74],
              "test": [760, 995, 714, 673]}
  for s in SPLITS:
    split = loaded("emoint", s)
    assert split.class_counts().tolist() == expected[s]
    assert np.all(np.diff(split.labels) >= 0)  # files concatenated in label order
    for text in split.texts:
      assert text.isascii() and "\\n" not in text and "  " not in text
      assert not re.search(r"@\w|https?://|&amp;|([A-Za-z])\1\1", text)
  assert loaded("emoint", "train").texts[2].startswith("USER_MENTION I asked for my parcel")


def test_emoint_skips_a_header_line(data_dir, tmp_path):
  (tmp_path / "emoint").mkdir()
  for emotion in emoint.LABELS:
    source = emoint.file_path(data_dir, emotion, "validation")
    target = emoint.file_path(tmp_path, emotion, "validation")
    body = source.read_text(encoding="utf-8")
    target.write_text(("id\ttweet\ttweettype\tscore\n" if emotion == "fear" else "") + body,
                      encoding="utf-8")
  with_header = data.load_split("emoint", "dev", data_dir=tmp_path)
  assert with_header == data.load_split("emoint", "dev", data_dir=data_dir)


# ----------------------------------------------------------------------------------
# Empathetic Dialogues.

def test_ed_labels_and_independent_counts(loaded, data_dir):
  assert len(empathetic_dialogues.LABELS) == 32
  assert len(set(empathetic_dialogues.LABELS)) == 32
  for s, file_name in zip(SPLITS, ("train.csv", "valid.csv", "test.csv")):
    with (data_dir / "empathetic_dialogues" / file_name).open(encoding="utf-8",
                                                                newline="") as f:
      rows = list(csv.DictReader(f))
    split = loaded("empathetic_dialogues", s)
    assert split.texts == tuple(r["prompt"] for r in rows)
    assert [split.label_names[k] for k in split.labels] == [r["context"] for r in rows]
    assert set(r["context"] for r in rows) == set(empathetic_dialogues.LABELS)


SUBSET_LISTS = {
    "empathetic_dialogues_16": ["afraid", "angry", "annoyed", "anxious", "confident",
                                "disappointed", "disgusted", "excited", "grateful",
                                "hopeful", "impressed", "lonely", "proud", "sad",
                                "surprised", "terrified"],
    "empathetic_dialogues_8": ["angry", "afraid", "ashamed", "disgusted", "guilty",
                               "proud", "sad", "surprised"],
    "empathetic_dialogues_4_easy": ["angry", "afraid", "joyful", "sad"],
    "empathetic_dialogues_4_hard_a": ["anxious", "apprehensive", "afraid", "terrified"],
    "empathetic_dialogues_4_hard_b": ["devastated", "nostalgic", "sad", "sentimental"],
    "empathetic_dialogues_4_hard_c": ["angry", "ashamed", "furious", "guilty"],
    "empathetic_dialogues_4_hard_d": ["anticipating", "excited", "hopeful", "guilty"],
}


@pytest.mark.parametrize("name", sorted(SUBSET_LISTS))
def test_ed_table3_subsets(loaded, data_dir, name):
  classes = SUBSET_LISTS[name]
  assert set(classes) <= set(empathetic_dialogues.LABELS)
  assert len(set(classes)) == len(classes) == int(name.split("_")[2])
  sizes = []
  for s in SPLITS:
    full, subset = loaded("empathetic_dialogues", s), data.load_split(name, s,
                                                                     data_dir=data_dir)
    assert subset.label_names == tuple(classes) and subset.dataset == name
    expected = [(t, classes.index(full.label_names[k]))
                for t, k in zip(full.texts, full.labels)
                if full.label_names[k] in classes]
    assert list(zip(subset.texts, subset.labels.tolist())) == expected
    sizes.append(len(subset))
  assert tuple(sizes) == registry.DATASETS[name].sizes


def test_classes_argument_reindexes_in_the_given_order(data_dir, loaded):
  split = data.load_split("empathetic_dialogues", "test", data_dir=data_dir,
                          classes=["sad", "joyful"])
  full = loaded("empathetic_dialogues", "test")
  assert split.label_names == ("sad", "joyful")
  assert len(split) == int(np.isin(full.labels, [full.label_names.index("sad"),
                                                 full.label_names.index("joyful")]).sum())
  first_sad = full.texts[int(np.flatnonzero(full.labels == full.label_names.index("sad"))[0])]
  assert split.labels[split.texts.index(first_sad)] == 0
  # Works for any single-label dataset, not for multi-label ones.
  assert data.load_split("emoint", "dev", data_dir=data_dir,
                         classes=["joy"]).class_counts().tolist() == [79]
  with pytest.raises(ValueError, match="single-label"):
    data.load_split("goemotions_multilabel", "dev", data_dir=data_dir, classes=["joy"])
  with pytest.raises(ValueError, match=r"unknown class.*'happy'.*known classes: surprised, "
                     r"excited"):
    data.load_split("empathetic_dialogues", "dev", data_dir=data_dir,
                    classes=["sad", "happy"])
  with pytest.raises(ValueError, match="repeat"):
    data.load_split("empathetic_dialogues", "dev", data_dir=data_dir, classes=["sad", "sad"])


def _write_release_csv(path: pathlib.Path, conversations) -> None:
  """Writes utterance rows exactly as the official release does (no CSV quoting)."""
  lines = [",".join(empathetic_dialogues.RELEASE_HEADER)]
  for conv_id, context, prompt, utterances in conversations:
    for idx, utterance in enumerate(utterances, start=1):
      esc = lambda s: s.replace(",", "_comma_")  # noqa: E731
      lines.append(f"{conv_id},{idx},{context},{esc(prompt)},{idx % 2},{esc(utterance)},"
                   "5|5|5_2|2|5,")
  path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_ed_reader_on_release_format_fixture(tmp_path):
  folder = tmp_path / "empathetic_dialogues"
  folder.mkdir()
  train = [
      ("hit:0_conv:1", "sentimental",
       "I remember going to the fireworks, with my best friend. ",
       ["I remember going to see the fireworks, it was great.", "Was this a friend?",
        "This was a best friend. I miss her."]),
      ("hit:1_conv:2", "afraid", " i used to scare for darkness",
       ["it feels like hitting to blank wall", "Oh ya? I don't really see how"]),
      ("hit:1_conv:3", "proud", "I showed a guy, how to weld \"well\".", ["Hi"]),
      ("hit:2_conv:4", "faithful", "", ["I have never cheated on my wife."]),
  ]
  _write_release_csv(folder / "train.csv", train)
  # A test line of the release may carry a 9th (candidates) field.
  _write_release_csv(folder / "test.csv", train[:1])
  with (folder / "test.csv").open("a", encoding="utf-8") as f:
    f.write("hit:9_conv:99,1,guilty,I ate the last cookie_comma_ sorry,1,hi,5|5|5_2|2|5,,"
            "cand one|cand two\n")
  split = data.load_split("empathetic_dialogues", "train", data_dir=tmp_path)
  assert split.texts == ("I remember going to the fireworks, with my best friend.",
                         "i used to scare for darkness", 'I showed a guy, how to weld "well".',
                         "")
  assert [split.label_names[k] for k in split.labels] == ["sentimental", "afraid", "proud",
                                                          "faithful"]
  test = data.load_split("empathetic_dialogues", "test", data_dir=tmp_path)
  assert test.texts[-1] == "I ate the last cookie, sorry"
  assert test.label_names[test.labels[-1]] == "guilty"
  subset = data.load_split("empathetic_dialogues_4_hard_b", "train", data_dir=tmp_path)
  assert subset.texts == ("I remember going to the fireworks, with my best friend.",)
  assert subset.labels.tolist() == [3]


def test_ed_release_format_errors(tmp_path):
  folder = tmp_path / "empathetic_dialogues"
  folder.mkdir()
  _write_release_csv(folder / "valid.csv", [("hit:0_conv:1", "sad", "p", ["a", "b"])])
  lines = (folder / "valid.csv").read_text().splitlines()
  (folder / "valid.csv").write_text("\n".join(lines + ["hit:0_conv:2,x,sad,p,1,u,,"]) + "\n")
  with pytest.raises(files.MalformedRowError, match=r"valid\.csv, line 4: utterance_idx"):
    data.load_split("empathetic_dialogues", "dev", data_dir=tmp_path)
  (folder / "valid.csv").write_text("\n".join(lines + ["hit:0_conv:2,1,sad,p"]) + "\n")
  with pytest.raises(files.MalformedRowError, match=r"line 4: expected 8 comma-separated"):
    data.load_split("empathetic_dialogues", "dev", data_dir=tmp_path)
  (folder / "valid.csv").write_text("\n".join(lines + ["hit:0_conv:1,3,proud,p,1,u,,"])
                                    + "\n")
  with pytest.raises(files.MalformedRowError, match=r"line 4: context 'proud' differs"):
    data.load_split("empathetic_dialogues", "dev", data_dir=tmp_path)
  (folder / "valid.csv").write_text("\n".join(lines + ["hit:0_conv:2,1,blissful,p,1,u,,"])
                                    + "\n")
  with pytest.raises(files.UnknownLabelError,
                     match=r"line 4: unknown label 'blissful'; known labels: surprised, "):
    data.load_split("empathetic_dialogues", "dev", data_dir=tmp_path)
  (folder / "valid.csv").write_text("id,label,text\n1,sad,x\n")
  with pytest.raises(files.MalformedRowError, match="unrecognised header"):
    data.load_split("empathetic_dialogues", "dev", data_dir=tmp_path)


# ----------------------------------------------------------------------------------
# Bad input: missing files, malformed rows, unknown labels, bad names.

def test_missing_file_error_names_file_dataset_and_folder(tmp_path, data_dir):
  with pytest.raises(data.DataFileNotFoundError) as info:
    data.load_split("goemotions", "test", data_dir=tmp_path)
  message = str(info.value)
  assert str(tmp_path / "goemotions" / "test.tsv") in message
  assert message.startswith("goemotions:") and "LCL_DATA_DIR" in message
  assert f"data directory {tmp_path}" in message
  with pytest.raises(data.DataFileNotFoundError, match=r"sst/trees/dev\.txt.*also looked "
                     r"for .*trainDevTestTrees_PTB\.zip"):
    data.load_split("sst2", "dev", data_dir=tmp_path)
  for name in ("isear", "emoint", "empathetic_dialogues_8"):
    with pytest.raises(FileNotFoundError, match=name.split("_8")[0]):
      data.load_split(name, "train", data_dir=tmp_path)
  with pytest.raises(data.DataFileNotFoundError, match="does not exist"):
    data.load_split("isear", "train", data_dir=tmp_path / "nowhere")


def test_no_data_dir_error_mentions_env_var(monkeypatch):
  monkeypatch.delenv("LCL_DATA_DIR", raising=False)
  with pytest.raises(data.DataFileNotFoundError, match=r"LCL_DATA_DIR.*isear/isear_data"):
    data.load_split("isear", "train")
  assert len(data.load_split("synthetic", "train")) == 360  # needs no files


def _write(path: pathlib.Path, text: str) -> pathlib.Path:
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(text, encoding="utf-8")
  return path


def test_malformed_rows_report_file_and_line(tmp_path):
  _write(tmp_path / "goemotions" / "dev.tsv",
         "fine text\t3\tid1\n\"quoted\ntwo lines\"\t4\tid2\nno label field\tid3\n")
  with pytest.raises(files.MalformedRowError,
                     match=r"goemotions/dev\.tsv, line 4: expected 3 tab-separated"):
    data.load_split("goemotions", "dev", data_dir=tmp_path)
  _write(tmp_path / "goemotions" / "dev.tsv", "ok\t3\ta\nbad ids\t3,x\tb\n")
  with pytest.raises(files.MalformedRowError, match=r"line 2: label field '3,x'"):
    data.load_split("goemotions_multilabel", "dev", data_dir=tmp_path)
  _write(tmp_path / "goemotions" / "dev.tsv", "ok\t3\ta\nout of range\t28\tb\n")
  with pytest.raises(files.MalformedRowError, match=r"line 2: label ids '28' outside"):
    data.load_split("goemotions", "dev", data_dir=tmp_path)

  _write(tmp_path / "sst" / "trees" / "test.txt", "(3 (2 fine) (3 tree))\n(2 (2 broken)\n")
  with pytest.raises(files.MalformedRowError, match=r"test\.txt, line 2: not a PTB"):
    data.load_split("sst5", "test", data_dir=tmp_path)

  header = "ID,Field1,SIT\n"
  _write(tmp_path / "isear" / "isear_data.csv", header + '1,joy,"ok \u00e1\nok"\n2,joy\n')
  with pytest.raises(files.MalformedRowError, match=r"isear_data\.csv, line 4: expected 3"):
    data.load_split("isear", "train", data_dir=tmp_path)
  _write(tmp_path / "isear" / "isear_data.csv", header + "1,joy,a\n2,bliss,b\n")
  with pytest.raises(files.UnknownLabelError, match=r"line 3: unknown label 'bliss'; known "
                     r"labels: joy, fear, anger, sadness, disgust, shame, guilt"):
    data.load_split("isear", "train", data_dir=tmp_path)
  _write(tmp_path / "isear" / "isear_data.csv", "ID,EMOT,SITUATION\n1,1,a\n")
  with pytest.raises(files.MalformedRowError, match=r"line 1: header lacks .*Field1"):
    data.load_split("isear", "train", data_dir=tmp_path)

  for emotion in emoint.LABELS:
    _write(emoint.file_path(tmp_path, emotion, "test"), f"1\ttweet\t{emotion}\t0.5\n")
  _write(emoint.file_path(tmp_path, "joy", "test"), "1\tok\tjoy\t0.5\n2\tmissing\tjoy\n")
  with pytest.raises(files.MalformedRowError, match=r"joy-ratings-0to1\.test\.gold\.txt, "
                     r"line 2: expected 4 tab-separated"):
    data.load_split("emoint", "test", data_dir=tmp_path)
  _write(emoint.file_path(tmp_path, "joy", "test"), "1\tok\thappiness\t0.5\n")
  with pytest.raises(files.UnknownLabelError, match=r"line 1: unknown label 'happiness'; "
                     r"known labels: anger, fear, joy, sadness"):
    data.load_split("emoint", "test", data_dir=tmp_path)
  _write(emoint.file_path(tmp_path, "joy", "test"), "1\tok\tfear\t0.5\n")
  with pytest.raises(files.MalformedRowError, match=r"line 1: emotion column is 'fear'"):
    data.load_split("emoint", "test", data_dir=tmp_path)

  _write(tmp_path / "empathetic_dialogues" / "test.csv",
         "conv_id,context,prompt\nhit:0_conv:1,sad,ok\nhit:0_conv:2,sad\n")
  with pytest.raises(files.MalformedRowError, match=r"test\.csv, line 3: expected 3 fields"):
    data.load_split("empathetic_dialogues", "test", data_dir=tmp_path)
  _write(tmp_path / "empathetic_dialogues" / "test.csv",
         "conv_id,context,prompt\nhit:0_conv:1,sad,ok\nhit:0_conv:2,gloomy,x\n")
  with pytest.raises(files.UnknownLabelError, match=r"line 3: unknown label 'gloomy'"):
    data.load_split("empathetic_dialogues", "test", data_dir=tmp_path)


def test_empty_texts_are_kept(tmp_path):
  _write(tmp_path / "empathetic_dialogues" / "valid.csv",
         'conv_id,context,prompt\nhit:0_conv:1,sad,\nhit:0_conv:2,proud,"a, b"\n')
  split = data.load_split("empathetic_dialogues", "valid", data_dir=tmp_path)
  assert split.texts == ("", "a, b") and split.labels.tolist() == [5, 3]
  _write(tmp_path / "goemotions" / "test.tsv", "\t3\ta\n\"\"\t27\tb\n")
  split = data.load_split("goemotions_multilabel", "test", data_dir=tmp_path)
  assert split.texts == ("", "")


# Every reader alike: blank / white-space-only lines skipped, a UTF-8 byte-order mark
# dropped, an empty file refused, a non-UTF-8 byte reported with file and line.
# Each reader gets a small valid file whose one "MARK" (on line `mark_line`) becomes a
# Latin-1 byte in the non-UTF-8 case; the other cases must load exactly like it.

_EMOINT_OTHER = "id\ttweet\temotion\tscore\n1\tsome tweet\t{e}\t0.5\n"
READER_FIXTURES = {
    # name: (dataset, split, target file, {other files}, content, mark_line)
    "goemotions": ("goemotions_multilabel", "validation", "goemotions/dev.tsv", {},
                   "first comment\t3\tid1\nMARK comment\t4,27\tid2\n", 2),
    "sst": ("sst5", "validation", "sst/trees/dev.txt", {},
            "(3 (2 good) (3 film))\n(1 (1 MARK) (2 plot))\n", 2),
    "isear": ("isear", None, "isear/isear_data.csv", {},
              'Field1,ID,SIT\njoy,1,"first \u00e1\nsituation"\nfear,2,MARK\n'
              "anger,3,third\nguilt,4,fourth\nshame,5,fifth\n", 4),
    "emoint": ("emoint", "test", "emoint/joy-ratings-0to1.test.gold.txt",
               {f"emoint/{e}-ratings-0to1.test.gold.txt": _EMOINT_OTHER.format(e=e)
                for e in ("anger", "fear", "sadness")},
               "id\ttweet\temotion\tscore\n7\tso happy\tjoy\t0.9\n8\tMARK\tjoy\t0.7\n", 3),
    "empathetic_dialogues": ("empathetic_dialogues", "test", "empathetic_dialogues/test.csv",
                             {}, 'conv_id,context,prompt\nhit:0_conv:1,sad,"lost, sadly"\n'
                             "hit:0_conv:2,proud,MARK\n", 3),
    "empathetic_dialogues_release": (
        "empathetic_dialogues", "test", "empathetic_dialogues/test.csv", {},
        "conv_id,utterance_idx,context,prompt,speaker_idx,utterance,selfeval,tags\n"
        "hit:0_conv:1,1,sad,lost_comma_ sadly,1,hi,,\nhit:0_conv:1,2,sad,lost,2,yo,,\n"
        "hit:0_conv:2,1,proud,MARK,1,hey,,\n", 4),
}
READER_CASES = ("trailing_blank_line", "whitespace_only_lines", "byte_order_mark",
                "empty_file", "blank_lines_only", "non_utf8_byte")


def _load_fixture(root, name, content: bytes):
  dataset, split, target, others, _, _ = READER_FIXTURES[name]
  for rel, text in others.items():
    _write(root / rel, text)
  (root / target).parent.mkdir(parents=True, exist_ok=True)
  (root / target).write_bytes(content)
  splits = (split,) if split else SPLITS
  loaded = [data.load_split(dataset, s, data_dir=root) for s in splits]
  return [(x.texts, x.labels.tolist()) for x in loaded]


@pytest.mark.parametrize("case", READER_CASES)
@pytest.mark.parametrize("name", sorted(READER_FIXTURES))
def test_every_reader_handles_blank_lines_bom_empty_files_and_bad_bytes(tmp_path, name,
                                                                         case):
  _, _, target, _, content, mark_line = READER_FIXTURES[name]
  reference = _load_fixture(tmp_path / "clean", name, content.encode("utf-8"))
  assert sum(len(texts) for texts, _ in reference) >= 2
  root = tmp_path / case
  path = root / target
  if case in ("empty_file", "blank_lines_only"):
    raw = b"" if case == "empty_file" else b"\n  \n\t\n"
    with pytest.raises(files.EmptyFileError, match=re.escape(f"{path}, line 1: the file is "
                                                             "empty")):
      _load_fixture(root, name, raw)
  elif case == "non_utf8_byte":
    raw = content.encode("utf-8").replace(b"MARK", b"caf\xe9")  # Latin-1 e-acute
    with pytest.raises(files.MalformedRowError,
                       match=re.escape(f"{path}, line {mark_line}: not valid UTF-8")):
      _load_fixture(root, name, raw)
  else:
    raw = {"trailing_blank_line": content + "\n",
           "whitespace_only_lines": content + "   \n\t\n \n",
           "byte_order_mark": "\ufeff" + content}[case].encode("utf-8")
    assert _load_fixture(root, name, raw) == reference


@pytest.mark.parametrize("name", ["isear", "emoint", "empathetic_dialogues",
                                  "empathetic_dialogues_release"])
def test_a_header_without_rows_is_refused(tmp_path, name):
  _, _, target, _, content, _ = READER_FIXTURES[name]
  header = content.split("\n")[0] + "\n\n"
  with pytest.raises(files.EmptyFileError, match=re.escape(str(tmp_path / target))):
    _load_fixture(tmp_path, name, header.encode("utf-8"))


def test_empty_emotions_file_and_sst_zip_member_are_refused(tmp_path):
  import zipfile
  _write(tmp_path / "goemotions" / "dev.tsv", "ok\t3\ta\n")
  _write(tmp_path / "goemotions" / "emotions.txt", "\n")
  with pytest.raises(files.EmptyFileError, match=r"emotions\.txt, line 1: the file is empty"):
    data.load_split("goemotions", "dev", data_dir=tmp_path)
  (tmp_path / "sst").mkdir()
  with zipfile.ZipFile(tmp_path / "sst" / sst.ZIP_NAME, "w") as zf:
    zf.writestr("trees/dev.txt", b"(3 (3 fine))\n(2 caf\xe9)\n")
  with pytest.raises(files.MalformedRowError, match=r"!trees/dev\.txt, line 2: not valid UTF-8"):
    data.load_split("sst5", "dev", data_dir=tmp_path)


def test_unknown_dataset_split_and_source():
  with pytest.raises(ValueError, match=r"unknown dataset 'sst3'.*goemotions, "):
    data.load_split("sst3", "train")
  with pytest.raises(ValueError, match=r"unknown split 'holdout'.*'train', 'validation'"):
    data.load_split("synthetic", "holdout")
  with pytest.raises(ValueError, match=r"unknown source 'hub'"):
    data.load_split("synthetic", "train", source="hub")


def test_every_dataset_has_its_reader_in_its_registry_entry(loaded, data_dir):
  """Adding a dataset = one catalogue entry carrying its reader: every source but the
  stock TFDS one has a reader, and load_split reads through it."""
  from lcl_jax.data import catalog
  for name, spec in registry.DATASETS.items():
    assert (spec.reader is None) == (spec.source == "tfds_stock"), name
  assert catalog.read_files("sst2", "validation", data_dir) == loaded("sst2", "validation")
  assert registry.DATASETS["synthetic"].reader(None, "test") == synthetic.generate_split("test")
  with pytest.raises(AssertionError, match="no file reader for 'synthetic'"):
    catalog.read_files("synthetic", "test", data_dir)


def test_ag_news_without_tfds_data_explains_what_is_needed(tmp_path):
  from lcl_jax.data import tfds_builders
  with pytest.raises(tfds_builders.StockBuilderUnavailableError) as info:
    data.load_split("ag_news", "train", tfds_data_dir=tmp_path, download=False)
  message = str(info.value)
  assert "'ag_news_subset' is not prepared in" in message and str(tmp_path) in message
  assert "tfds build ag_news_subset --file_format=array_record" in message
  assert registry.DATASETS["ag_news"].label_names == ("World", "Sports", "Business",
                                                      "Sci/Tech")


# ----------------------------------------------------------------------------------
# The Split type.

def test_split_validates_shapes_and_values():
  ok = Split("d", "train", ["a", "b"], np.array([0, 1]), ("x", "y"))
  assert ok.num_classes == 2 and len(ok) == 2 and ok.texts == ("a", "b")
  assert ok.labels.dtype == np.int32 and not ok.labels.flags.writeable
  with pytest.raises(ValueError, match=r"shape \[N\] = \(2,\), got \(3,\)"):
    Split("d", "train", ["a", "b"], np.array([0, 1, 1]), ("x", "y"))
  with pytest.raises(ValueError, match=r"label ids must lie in \[0, 2\)"):
    Split("d", "train", ["a", "b"], np.array([0, 2]), ("x", "y"))
  with pytest.raises(ValueError, match=r"shape \[N, C\] = \(2, 2\), got \(2, 3\)"):
    Split("d", "train", ["a", "b"], np.zeros((2, 3), int), ("x", "y"), multilabel=True)
  with pytest.raises(ValueError, match="0 or 1"):
    Split("d", "train", ["a", "b"], np.full((2, 2), 2), ("x", "y"), multilabel=True)
  with pytest.raises(ValueError, match="integers"):
    Split("d", "train", ["a"], np.array([0.5]), ("x", "y"))
  with pytest.raises(ValueError, match=r"texts\[1\] is int"):
    Split("d", "train", ["a", 3], np.array([0, 1]), ("x", "y"))
  with pytest.raises(ValueError, match="duplicate label names"):
    Split("d", "train", ["a"], np.array([0]), ("x", "x"))
  empty = Split("d", "test", [], np.zeros(0), ("x",))
  assert len(empty) == 0 and empty.class_counts().tolist() == [0]


def test_split_subset_head_and_equality():
  split = synthetic.generate_split("validation")
  head = split.head(5)
  assert len(head) == 5 and head.split == "validation[:5]"
  assert head.texts == split.texts[:5] and head.labels.tolist() == split.labels[:5].tolist()
  picked = split.subset([7, 2, 7])
  assert picked.texts == (split.texts[7], split.texts[2], split.texts[7])
  mask = split.labels == 4
  assert split.subset(mask).class_counts()[4] == int(mask.sum())
  assert split.head(10_000) == split.subset(np.arange(len(split)), split="validation[:10000]")
  assert split != split.head(3) and split == synthetic.generate_split("validation")
  assert "n=90" in repr(split) and "num_classes=9" in repr(split)
  with pytest.raises(IndexError):
    split.subset([90])
  multi = Split("m", "train", ["a", "b"], np.array([[1, 0, 1], [0, 1, 0]]), ("p", "q", "r"),
                multilabel=True)
  assert multi.class_counts().tolist() == [1, 1, 1]
  assert multi.subset([1]).labels.tolist() == [[0, 1, 0]]


# ----------------------------------------------------------------------------------
# Synthetic default dataset.

def test_synthetic_is_deterministic_balanced_and_labelled_synthetic():
  for s, per_class in (("train", 40), ("validation", 10), ("test", 10)):
    a, b = data.load_split("synthetic", s), synthetic.generate_split(s)
    assert a == b
    assert a.class_counts().tolist() == [per_class] * 9
  train = data.load_split("synthetic", "train")
  assert train.dataset == "synthetic" and "SYNTHETIC" in synthetic.DESCRIPTION
  assert all(name.startswith("synthetic_") for name in train.label_names)
  assert registry.DATASETS["synthetic"].description == synthetic.DESCRIPTION
  assert len(set(train.texts)) > 0.95 * len(train)
  assert synthetic.generate_split("train", seed=1).texts != train.texts
  test = data.load_split("synthetic", "test")
  assert len(set(test.texts) & set(train.texts)) < 0.1 * len(test)


def test_synthetic_is_learnable_but_not_trivial():
  from sklearn.feature_extraction.text import CountVectorizer
  from sklearn.linear_model import LogisticRegression
  from sklearn.metrics import confusion_matrix

  train, test = synthetic.generate_split("train"), synthetic.generate_split("test")
  vectorizer = CountVectorizer(ngram_range=(1, 2))
  model = LogisticRegression(C=10.0, max_iter=5000).fit(
      vectorizer.fit_transform(train.texts), train.labels)
  predicted = model.predict(vectorizer.transform(test.texts))
  accuracy = float((predicted == test.labels).mean())
  assert 0.4 < accuracy < 0.9  # chance is 1/9
  group = np.arange(9) // 3
  confusion = confusion_matrix(test.labels, predicted, labels=range(9))
  errors = confusion * (1 - np.eye(9, dtype=int))
  within = errors[group[:, None] == group[None, :]].sum()
  assert within > 0 and within >= 0.8 * errors.sum()


# ----------------------------------------------------------------------------------
# Package structure.

def test_data_modules_import_each_other_one_way_only():
  """No import circle among lcl_jax.data's modules, deferred (in-function) imports
  included: e.g. registry -> tfds_builders -> catalog, never back."""
  import ast
  package = pathlib.Path(data.__file__).parent
  modules = {p.stem for p in package.glob("*.py") if p.stem != "__init__"}
  graph = {}
  for name in modules:
    tree = ast.parse((package / f"{name}.py").read_text(encoding="utf-8"))
    deps = set()
    for node in ast.walk(tree):
      if isinstance(node, ast.ImportFrom) and node.module == "lcl_jax.data":
        deps |= {a.name for a in node.names if a.name in modules}
      elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lcl_jax.data."):
        deps.add(node.module.split(".")[2])
      elif isinstance(node, ast.Import):
        deps |= {a.name.split(".")[2] for a in node.names
                 if a.name.startswith("lcl_jax.data.")}
    graph[name] = deps - {name}
  assert graph["registry"] >= {"catalog", "tfds_builders", "ag_news"}  # the parser sees them
  cycle = first_cycle(graph)
  if cycle:
    pytest.fail("import circle: " + " -> ".join(cycle))
