"""Tests for lcl_jax.data.augment (nlpaug SynonymAug re-implementation).

References are independent of the module: NLTK's own WordNet reader and
``nltk.pos_tag``, nlpaug's rules transcribed here from its source.
"""
import csv
import math
import os
import pathlib
import re
import string
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

from lcl_jax.data import augment

_PTB_TO_WN = {
    **dict.fromkeys(["NN", "NNS", "NNP", "NNPS", "NP"], ("n",)),
    **dict.fromkeys(["VB", "VBD", "VBG", "VBN", "VBZ", "VBP"], ("v",)),
    **dict.fromkeys(["JJ", "JJR", "JJS", "IN"], ("a", "s")),
    **dict.fromkeys(["RB", "RBR", "RBS"], ("r",)),
}


@pytest.fixture(scope="module")
def augmenter():
  return augment.default_augmenter()


@pytest.fixture(scope="module")
def ed_prompts(data_dir):
  with open(data_dir / "empathetic_dialogues" / "train.csv", newline="", encoding="utf-8") as f:
    prompts = [row["prompt"] for row in csv.DictReader(f)]
  return prompts[:300] + [
      "", "   ", "?!", "The", "Happy days are here again, said Mary.",
      "I don't think it's (really) that bad...", " ".join(["word"] * 60),
  ]


def _nlpaug_draw_count(n_tokens, aug_p=0.3, aug_min=1, aug_max=10):
  count = int(aug_p * n_tokens)  # nlpaug 1.1.0 _generate_aug_cnt
  return aug_max if count > aug_max else max(count, aug_min)


def test_same_seed_same_views_and_order_independent(augmenter, ed_prompts):
  first = augment.augment_texts(ed_prompts, seed=3)
  assert first == augment.augment_texts(ed_prompts, seed=3)
  # A text's view depends on (seed, its index, epoch) only, not on its neighbours.
  reversed_ids = list(range(len(ed_prompts)))[::-1]
  shard = augmenter.augment_texts([ed_prompts[i] for i in reversed_ids], seed=3,
                                  indices=reversed_ids)
  assert shard == [first[i] for i in reversed_ids]


def test_seeds_and_epochs_give_different_views(ed_prompts):
  texts = ed_prompts[:100]
  base = augment.augment_texts(texts, seed=0)
  for other in (augment.augment_texts(texts, seed=1),
                augment.augment_texts(texts, seed=0, epoch=0),
                augment.augment_texts(texts, seed=0, epoch=1)):
    assert np.mean([a != b for a, b in zip(base, other)]) > 0.5
  epoch_1 = augment.augment_texts(texts, seed=0, epoch=1)
  assert epoch_1 == augment.augment_texts(texts, seed=0, epoch=1)
  assert np.mean([a != b for a, b in zip(augment.augment_texts(texts, seed=0, epoch=2),
                                         epoch_1)]) > 0.5


def test_tokenizer_and_tagger_match_nlpaug_and_nltk(augmenter, ed_prompts):
  import nltk

  for text in ed_prompts[:40] + ed_prompts[-7:]:
    stripped = text.strip()
    tokens = [t for t in re.split(r"(\W)", stripped) if len(t.strip()) > 0]
    details = augmenter.augment_with_details(text, augment.text_rng(0, 0))
    assert list(details.tokens) == tokens
    if tokens:
      assert list(details.tags) == [tag for _, tag in nltk.pos_tag(tokens)]


def test_draw_count_follows_aug_p_min_max_rule(augmenter, ed_prompts):
  shares = []
  for i, text in enumerate(ed_prompts):
    d = augmenter.augment_with_details(text, augment.text_rng(11, i))
    eligible = [j for j, (tok, tag) in enumerate(zip(d.tokens, d.tags))
                if tok not in string.punctuation and tag != "DT"]
    assert list(d.eligible) == eligible
    expected = min(_nlpaug_draw_count(len(d.tokens)), len(eligible)) if eligible else 0
    assert len(d.drawn) == expected, text
    assert set(d.drawn) <= set(eligible) and set(d.replaced) <= set(d.drawn)
    if len(d.tokens) >= 10:
      shares.append(len(d.drawn) / len(d.tokens))
  assert len(ed_prompts[-1].split()) == 60
  assert len(augmenter.augment_with_details(ed_prompts[-1], augment.text_rng(0, 0)).drawn) == 10
  # floor(0.3 n) / n for n >= 10 is in (0.2, 0.3]; punctuation/DT caps lower it a little.
  assert 0.2 < np.mean(shares) <= 0.3


def test_count_rounding_reproduces_nlpaug_float_product():
  # nlpaug 1.1.0 (the release's pin) floors 0.3 * n, nlpaug 1.1.11 ceils it.
  tag_all_nouns = lambda tokens: [(x, "NN") for x in tokens]
  floor = augment.SynonymAugmenter(pos_tagger=tag_all_nouns)
  ceil = augment.SynonymAugmenter(count_rounding="ceil", pos_tagger=tag_all_nouns)
  for n in (0, 1, 3, 4, 10, 11, 33, 34, 100):
    assert floor.replacement_count(n) == _nlpaug_draw_count(n)
    assert ceil.replacement_count(n) == min(max(math.ceil(0.3 * n), 1), 10)
  assert (floor.replacement_count(11), ceil.replacement_count(11)) == (3, 4)
  assert (floor.replacement_count(10), ceil.replacement_count(10)) == (3, 3)


def test_replacements_are_wordnet_synonyms_and_rest_is_untouched(augmenter, ed_prompts):
  from nltk.corpus import wordnet as wn

  def normalise(name):
    return name.replace("_", " ").replace("-", " ").lower()

  n_replaced = n_outside_nltk = 0
  for i, text in enumerate(ed_prompts):
    d = augmenter.augment_with_details(text, augment.text_rng(5, i))
    for j, new in d.replaced.items():
      word, tag = d.tokens[j], d.tags[j]
      poses = _PTB_TO_WN.get(tag, (None,))
      reference = {normalise(l.name()) for p in poses for s in wn.synsets(word, p)
                   for l in s.lemmas()} - {word.lower()}
      n_replaced += 1
      if new.lower() not in reference:
        # Only allowed difference: NLTK >= 3.9 morphy makes one pass of suffix
        # rules, NLTK 3.5 (the release's, ours) repeats them ("beatings" -> "beat").
        assert not reference, (word, tag, new)
        n_outside_nltk += 1
      if len(word) > 1 and word[0].isupper() and word[1:].islower():
        assert new[0].isupper(), (word, new)
    # Every token not replaced is kept verbatim, in order.
    expected_tokens = [t for j, tok in enumerate(d.tokens)
                       for t in (augment.tokenize(d.replaced[j]) if j in d.replaced else [tok])]
    assert augment.tokenize(d.text) == expected_tokens
    if not d.eligible:
      assert d.text == text.strip()
  assert n_replaced > 500 and n_outside_nltk <= 0.02 * n_replaced


def test_wordnet_reader_matches_nltk(augmenter, ed_prompts):
  from nltk.corpus import wordnet as wn

  vocab = sorted({w.lower() for t in ed_prompts for w in re.findall(r"\w+", t)})
  for word in vocab:
    for pos in ("n", "v", "a", "r"):
      ours = augmenter.wordnet.synonyms(word, pos)
      theirs = [l.name() for s in wn.synsets(word, pos) for l in s.lemmas()]
      if ours != theirs:  # the NLTK 3.5 vs >= 3.9 morphy difference only
        assert not wn._morphy(word, pos) and ours, (word, pos)
  assert augmenter.wordnet.synonyms("happy", "a") == [
      l.name() for s in wn.synsets("happy", "a") for l in s.lemmas()]


def test_candidates_exclude_the_word_and_use_all_pos_for_unmapped_tags(augmenter):
  # 'I' tagged PRP has no WordNet POS: nlpaug looks it up in every POS.
  options = augmenter.candidates("I", "PRP")
  assert "iodine" in options and "1" in options and "I" not in options
  assert all(o.lower() != "happy" for o in augmenter.candidates("Happy", "JJ"))
  assert augmenter.candidates("the", "DT") == augmenter.candidates("the", "XX")


def test_detokenize_follows_nlpaug_rules():
  assert augment.detokenize(["Hello", ",", "world", "!"]) == "Hello, world!"
  assert augment.detokenize(["I", "don", "'", "t", "know", "."]) == "I don ' t know."
  assert augment.detokenize(["a", "(", "b", ")", "c"]) == "a (b) c"
  assert augment.detokenize([]) == ""


def test_dict_directory_like_debian_wordnet_base(tmp_path, augmenter):
  # Debian's wordnet-base ships the dict files without lexnames / index.sense.
  source = augment.find_wordnet()
  assert source.name == "wordnet.zip"
  with zipfile.ZipFile(source) as archive:
    for name in archive.namelist():
      base = pathlib.PurePosixPath(name).name
      if base.startswith(("index.", "data.")) and base != "index.sense" or base.endswith(".exc"):
        (tmp_path / base).write_bytes(archive.read(name))
  assert augment.find_wordnet(tmp_path) == tmp_path
  from_dir = augment.WordNet(tmp_path)
  for word, pos in [("happy", "a"), ("running", "v"), ("glasses", "n"), ("I", None), ("fast", "r")]:
    assert from_dir.synonyms(word, pos) == augmenter.wordnet.synonyms(word, pos)


def test_missing_wordnet_raises_clear_error(tmp_path, monkeypatch):
  with pytest.raises(augment.WordNetNotFoundError, match="nltk.downloader") as e:
    augment.find_wordnet(tmp_path)
  assert str(tmp_path) in str(e.value)
  # Nothing on NLTK_DATA, no Debian files: the constructor fails the same way,
  # and with WordNet given explicitly it names the missing POS tagger.
  script = textwrap.dedent(f"""
      import pathlib
      import nltk.data
      from lcl_jax.data import augment
      nltk.data.path[:] = [{str(tmp_path)!r}]  # also hide ~/nltk_data, /usr/share/nltk_data
      augment.DEBIAN_WORDNET_DIR = pathlib.Path({str(tmp_path / 'none')!r})
      try:
        augment.SynonymAugmenter()
      except augment.WordNetNotFoundError as e:
        assert 'nltk.downloader' in str(e) and 'wordnet-base' in str(e), e
        print('WORDNET_MISSING_OK')
      try:
        augment.SynonymAugmenter(wordnet={str(augment.find_wordnet())!r})
      except augment.WordNetNotFoundError as e:
        assert 'averaged_perceptron_tagger_eng' in str(e), e
        print('TAGGER_MISSING_OK')
  """)
  # No LCL_DATA_DIR either: its nltk_data/ folder is searched too.
  env = {k: v for k, v in os.environ.items()
         if k not in ("WNSEARCHDIR", "WNHOME", "LCL_DATA_DIR")}
  env.update(NLTK_DATA=str(tmp_path), HOME=str(tmp_path))
  result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          cwd=pathlib.Path(__file__).resolve().parents[1], timeout=120)
  assert "WORDNET_MISSING_OK" in result.stdout and "TAGGER_MISSING_OK" in result.stdout, (
      result.stdout + result.stderr)


def test_replacement_coverage_counts_word_changes_not_spacing():
  originals = ["I don't know.", "Hello world", "plain"]
  respaced = ["I don ' t know.", "Hello world", "plain"]
  assert augment.replacement_coverage(originals, respaced) == 0.0
  assert augment.replacement_coverage(originals, ["I don ' t cognize.", "Hi world", "plain"]) == (
      pytest.approx(2 / 3))
  with pytest.raises(ValueError, match="3 originals but 2"):
    augment.replacement_coverage(originals, respaced[:2])


def test_bad_arguments():
  with pytest.raises(ValueError, match="seed"):
    augment.text_rng(-1, 0)
  with pytest.raises(TypeError, match="sequence of str"):
    augment.augment_texts("a single string", seed=0)
  with pytest.raises(ValueError, match="aug_p"):
    augment.SynonymAugmenter(aug_p=1.5, pos_tagger=lambda t: [])


def test_wordnet_and_tagger_found_under_data_dir_without_nltk_data(tmp_path):
  """--data_dir=<dir> with <dir>/nltk_data and no NLTK_DATA: found there (also via
  $LCL_DATA_DIR and through the trainer's data side); missing -> the same message."""
  shared = pathlib.Path(os.environ["NLTK_DATA"].split(os.pathsep)[0])
  (tmp_path / "data").mkdir()
  (tmp_path / "data" / "nltk_data").symlink_to(shared, target_is_directory=True)
  script = textwrap.dedent(f"""
      import os, pathlib, types
      import nltk.data
      nltk.data.path[:] = [{str(tmp_path / 'empty')!r}]  # nothing installed for NLTK
      from lcl_jax.data import augment
      from lcl_jax.train import data_pipeline
      augment.DEBIAN_WORDNET_DIR = pathlib.Path({str(tmp_path / 'none')!r})
      print('lcl_jax from', augment.__file__)
      try:
        augment.SynonymAugmenter()
      except augment.WordNetNotFoundError as e:
        assert 'nltk.downloader' in str(e) and 'wordnet-base' in str(e), e
        print('MISSING_WITHOUT_DATA_DIR_OK')
      aug = augment.SynonymAugmenter(data_dir='data')  # relative, as --data_dir=../x
      source = pathlib.Path(aug.wordnet.source)
      assert source == pathlib.Path('data').absolute() / 'nltk_data/corpora/wordnet.zip', source
      assert aug.pos_tagger(['The', 'dog', 'runs']) == [('The', 'DT'), ('dog', 'NN'),
                                                         ('runs', 'NNS')]
      print('DATA_DIR_OK', aug.augment_texts(['The happy dog runs fast.'], seed=0))
      os.environ['LCL_DATA_DIR'] = 'data'
      assert augment.find_wordnet() == source
      print('ENV_OK')
      fake = types.SimpleNamespace(synthetic=False, cfg=types.SimpleNamespace(
          augment_p=0.3, data_dir='data'))
      del os.environ['LCL_DATA_DIR']
      pipeline_aug = data_pipeline.PreparedData._augmenter(fake)
      assert pathlib.Path(pipeline_aug.wordnet.source) == source
      print('PIPELINE_OK')
  """)
  env = {k: v for k, v in os.environ.items()
         if k not in ("WNSEARCHDIR", "WNHOME", "NLTK_DATA", "LCL_DATA_DIR")}
  env.update(HOME=str(tmp_path),
             PYTHONPATH=os.pathsep.join([str(pathlib.Path(__file__).resolve().parents[1])]
                                        + env.get("PYTHONPATH", "").split(os.pathsep)))
  result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, cwd=tmp_path, timeout=300)
  out = result.stdout + result.stderr
  for marker in ("MISSING_WITHOUT_DATA_DIR_OK", "DATA_DIR_OK", "ENV_OK", "PIPELINE_OK"):
    assert marker in result.stdout, out
  assert f"lcl_jax from {pathlib.Path(__file__).resolve().parents[1]}" in result.stdout, out
