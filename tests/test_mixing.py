"""Embedding mixing at inference (seed 004 Section 3.4; lcl_jax.train.mixing).

The document's two validation checks (w = 1 and mixing an example with itself give the
unmixed logits exactly), the mix equation against a NumPy transcription of the head,
the exact top-1 search against brute-force NumPy, the paraphrase-file format, the T5
path on a tiny random T5 saved by transformers, the BERTScore error path and a
monkeypatched scorer, and one tiny trainer run with --embed_mix=train.
"""
import dataclasses
import json
import sys
import types

import jax
import numpy as np
import pytest

from lcl_jax import models
from lcl_jax.data import batching
from lcl_jax.models import pretrained
from lcl_jax import inference
from lcl_jax.train import mixing, parallel, trainer
from lcl_jax.train.config import TrainConfig
from test_train import _tiny_config  # pytest puts tests/ on sys.path

TEXTS = ["the parcel arrived broken and nobody answers", "what a lovely surprise",
         "I am so scared of the dark", "fine.", "this is the best day of my life, thanks",
         "why would anyone do that", "ok", "we lost the game again and again"]


@pytest.fixture(scope="module")
def tiny_mixer(tiny_bert_dir):
  """Φ (paper head, 3 classes) on the tiny random BERT, as a Mixer over 8 devices."""
  module, params = models.build_classifier("paper", tiny_bert_dir, 3, rng=jax.random.key(1))
  dp = parallel.make_data_parallel("jit")
  tokenizer = pretrained.load_tokenizer(tiny_bert_dir)

  def batches_of(texts):
    tokens = batching.tokenize_texts(list(texts), tokenizer, max_length=32)
    return batching.eval_batches(tokens, np.zeros(len(tokens), np.int32), batch_size=5,
                                 buckets=(16, 32), row_multiple=dp.num_devices)

  mixer = mixing.Mixer(module, {"primary": dp.put_state(params)}, dp, batches_of)
  return mixer, jax.device_get(params)


def test_weight_one_and_self_mixing_reproduce_the_unmixed_logits_exactly(tiny_mixer):
  mixer, _ = tiny_mixer
  plain = mixer.logits(TEXTS)
  own = mixer.cls_vectors(TEXTS)
  other = own[::-1].copy()
  np.testing.assert_array_equal(mixer.logits(TEXTS, other, 1.0), plain)  # check 1: w = 1
  np.testing.assert_array_equal(mixer.logits(TEXTS, own, 0.5), plain)  # check 2: itself
  np.testing.assert_array_equal(mixer.logits(TEXTS, own, 0.92), plain)
  assert not np.allclose(mixer.logits(TEXTS, other, 0.5), plain)  # mixing does something


def test_mixed_logits_equal_a_numpy_transcription_of_the_head(tiny_mixer):
  mixer, params = tiny_mixer
  own = mixer.cls_vectors(TEXTS)
  other = np.random.default_rng(0).normal(size=own.shape).astype(np.float32)
  w = 0.3
  got = mixer.logits(TEXTS, other, w)
  head = params["head"]  # PaperHead: relu(h W1 + b1) W2 + b2 (dropout off)
  h = w * own.astype(np.float64) + (1 - w) * other
  hidden = np.maximum(h @ np.asarray(head["pooler_fc"]["kernel"], np.float64)
                      + np.asarray(head["pooler_fc"]["bias"]), 0.0)
  want = hidden @ np.asarray(head["label"]["kernel"], np.float64) + np.asarray(
      head["label"]["bias"])
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
  assert own.shape == (len(TEXTS), mixer.module.config.hidden_size)


def _brute_force(queries, keys):
  q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
  k = keys / np.linalg.norm(keys, axis=1, keepdims=True)
  scores = q.astype(np.float64) @ k.astype(np.float64).T
  return scores


def test_top1_search_equals_brute_force_numpy_with_lowest_index_ties():
  rng = np.random.default_rng(7)
  keys = rng.normal(size=(701, 24)).astype(np.float32)
  queries = rng.normal(size=(37, 24)).astype(np.float32)
  # Exact duplicates of key 5 later in the set (other tiles too): the lowest index wins.
  keys[300] = keys[5]
  keys[650] = 3.0 * keys[5]  # same direction: the same cosine
  queries[0] = keys[5] + 1e-3 * rng.normal(size=24).astype(np.float32)
  queries[1] = keys[5]
  index, score = mixing.nearest_neighbours(queries, keys, tile_size=128, query_block=16)
  scores = _brute_force(queries, keys)
  best = scores.max(axis=1)
  np.testing.assert_allclose(score, best, atol=1e-5)
  assert index[0] == 5 and index[1] == 5
  # Away from near-ties, the very same argmax as NumPy's (which also takes the first).
  second = np.sort(scores, axis=1)[:, -2]
  clear = best - second > 1e-5
  np.testing.assert_array_equal(index[clear], scores.argmax(axis=1)[clear])
  assert clear.sum() >= 30
  # One tile, one block, and a single key give the same answers.
  np.testing.assert_array_equal(mixing.nearest_neighbours(queries, keys, tile_size=4096)[0][clear],
                                index[clear])
  assert mixing.nearest_neighbours(queries, keys[:1])[0].tolist() == [0] * len(queries)
  with pytest.raises(ValueError, match="no keys"):
    mixing.nearest_neighbours(queries, keys[:0])


def test_paraphrase_file_format_and_errors_name_the_file_and_line(tmp_path):
  splits = {"validation": ["a b", "c d"], "test": ["e f"]}
  path = tmp_path / "p.tsv"
  path.write_text("text\tparaphrase\nc d\tC D\na b\tA B\ne f\tE F\nunused\tU\n")
  assert mixing.read_paraphrase_file(path, splits) == {"validation": ["A B", "C D"],
                                                       "test": ["E F"]}
  path.write_text("split\tindex\tparaphrase\nvalidation\t1\tC D\nvalidation\t0\tA B\n"
                  "test\t0\tE F\n")
  assert mixing.read_paraphrase_file(path, splits)["validation"] == ["A B", "C D"]
  cases = {
      "": "line 1: expected a header",
      "text\tother\na b\tx\n": "line 1: the header",
      "text\tparaphrase\na b\tA\nc d\n": "line 3: 1 cells",
      "text\tparaphrase\na b\t \n": "line 2: empty paraphrase",
      "text\tparaphrase\na b\tA\nc d\tC\na b\tB\ne f\tE\n": "line 4: 'a b' was already given "
                                                            "on line 2",
      "text\tparaphrase\na b\tA\ne f\tE\n": "1 of the 2 validation examples have no paraphrase",
      "split\tindex\tparaphrase\ntrain\t0\tA\n": "line 2: split 'train'",
      "split\tindex\tparaphrase\ntest\t1\tA\n": r"line 2: index '1' is not in \[0, 1\)",
  }
  for content, message in cases.items():
    path.write_text(content)
    with pytest.raises(ValueError, match=f"--paraphrase_file {path}.*{message}"):
      mixing.read_paraphrase_file(path, splits)
  with pytest.raises(ValueError, match="no such file"):
    mixing.read_paraphrase_file(tmp_path / "none.tsv", splits)
  path.write_bytes("text\tparaphrase\na b\tA\nc d\tcaf\u00e9\n".encode("latin-1"))
  with pytest.raises(ValueError, match=f"--paraphrase_file {path}.*line 3.*not valid UTF-8"):
    mixing.read_paraphrase_file(path, splits)


@pytest.fixture(scope="module")
def tiny_t5_dir(tmp_path_factory, tiny_bert_dir):
  """A tiny random T5 saved by transformers, with the tiny BERT's WordPiece tokenizer."""
  import shutil

  import torch
  import transformers
  path = tmp_path_factory.mktemp("tiny_t5")
  torch.manual_seed(0)
  config = transformers.T5Config(vocab_size=30522, d_model=16, d_kv=4, d_ff=32, num_layers=1,
                                 num_heads=2, pad_token_id=0, eos_token_id=102,
                                 decoder_start_token_id=0)
  transformers.T5ForConditionalGeneration(config).save_pretrained(path)
  for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt",
               "special_tokens_map.json"):
    if (tiny_bert_dir / name).exists():
      shutil.copy(tiny_bert_dir / name, path / name)
  return path


def test_t5_paraphrases_are_transformers_greedy_generations(tiny_t5_dir, tiny_bert_dir,
                                                            tiny_mixer):
  import torch
  import transformers
  texts = TEXTS[:3]
  got = mixing.t5_paraphrases(texts, tiny_t5_dir, max_length=8, batch_size=2)
  tokenizer = transformers.AutoTokenizer.from_pretrained(str(tiny_t5_dir))
  model = transformers.T5ForConditionalGeneration.from_pretrained(str(tiny_t5_dir)).eval()
  want = []
  for text in texts:  # one at a time: no padding
    ids = tokenizer(["paraphrase: " + text], return_tensors="pt", truncation=True, max_length=8)
    with torch.no_grad():
      out = model.generate(input_ids=ids["input_ids"], attention_mask=ids["attention_mask"],
                           max_new_tokens=8, do_sample=False, num_beams=1)
    want.append(tokenizer.decode(out[0], skip_special_tokens=True).strip())
  assert got == want and len(got) == 3
  settings = mixing.MixSettings(embed_mix="t5", t5_checkpoint=str(tiny_t5_dir),
                                embed_mix_weight=0.5)
  mixing.check_settings(settings, {"test": texts})
  with pytest.raises(ValueError, match="--t5_checkpoint=.*not a seq2seq"):
    mixing.check_settings(dataclasses.replace(settings, t5_checkpoint=str(tiny_bert_dir)),
                          {"test": texts})
  mixer, _ = tiny_mixer
  mixed = mixing.mixed_splits(settings, mixer, {"test": texts}, max_length=8)["test"]
  assert mixed.candidates == want
  np.testing.assert_array_equal(
      mixed.logits, mixer.logits(texts, mixer.cls_vectors(want), 0.5))


def test_bertscore_needs_the_package_and_uses_its_f1(monkeypatch):
  monkeypatch.setitem(sys.modules, "bert_score", None)  # import fails as if not installed
  with pytest.raises(ImportError, match="--embed_mix_similarity=bertscore needs the "
                                        "bert-score package"):
    mixing.bertscore_neighbours(["a"], ["b"], model_type="m", num_layers=1)
  import importlib.util
  monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
  with pytest.raises(ValueError, match="--embed_mix_similarity='bertscore': bertscore needs "
                                       "the bert-score package"):
    TrainConfig(embed_mix="train", embed_mix_similarity="bertscore").validate()
  monkeypatch.undo()

  class Scorer:  # F1 = minus the difference in length (deterministic, ties on purpose)
    def __init__(self, *, model_type, num_layers, batch_size):
      assert (model_type, num_layers) == ("enc", 2)

    def score(self, cands, refs):
      f = -np.abs(np.array([len(c) for c in cands]) - np.array([len(r) for r in refs]))
      return f, f, f.astype(np.float32)

  monkeypatch.setitem(sys.modules, "bert_score", types.SimpleNamespace(BERTScorer=Scorer))
  keys = ["aaaa", "bb", "cccccc", "dd", "e"]
  queries = ["xx", "yyyyy", "z", "wwwwwwwwww"]
  index, score = mixing.bertscore_neighbours(queries, keys, model_type="enc", num_layers=2,
                                             pairs_per_call=2)
  brute = -np.abs(np.subtract.outer([len(q) for q in queries], [len(k) for k in keys]))
  np.testing.assert_array_equal(index, brute.argmax(axis=1))  # first maximum
  assert index.tolist() == [1, 0, 4, 2]
  np.testing.assert_array_equal(score, brute.max(axis=1))


def test_trainer_reports_mixed_metrics_and_evaluate_path_agrees(tiny_bert_dir, data_dir,
                                                                 tmp_path):
  workdir = tmp_path / "run"
  cfg = _tiny_config(tiny_bert_dir, data_dir, workdir, objective="ce", epochs=1,
                     max_train_examples=16, max_eval_examples=8, embed_mix="train",
                     embed_mix_weight=0.8)
  results = trainer.train(cfg)
  mixed = results["mixed"]
  assert mixed["embed_mix"] == "train" and mixed["embed_mix_weight"] == 0.8
  assert set(mixed["test"]) >= {"accuracy", "macro_f1", "loss"}
  saved = np.load(workdir / "predictions" / "mixed_test.npz")
  assert saved["candidate_index"].shape == (8,) and saved["candidate_index"].max() < 16
  # The evaluate path (Predictor) gives the same candidates and mixed probabilities.
  predictor = inference.Predictor.load(workdir)
  test_texts = [line.split("\t")[2] for line in
                (workdir / "predictions" / "mixed_test_candidates.tsv").read_text()
                .splitlines()[1:]]
  from lcl_jax import data as data_lib
  from lcl_jax.train import data_pipeline
  train = data_pipeline.fixed_subset(data_lib.load_split("isear", "train", data_dir=data_dir), 16)
  settings = mixing.MixSettings.from_config(cfg)
  mixer = predictor.mixer()
  again = mixing.mixed_splits(settings, mixer, {"test": test_texts},
                              train_texts=list(train.texts))["test"]
  np.testing.assert_array_equal(again.candidate_index, saved["candidate_index"])
  np.testing.assert_allclose(trainer.probabilities(again.logits, False),
                             saved["probabilities"], atol=1e-6)
  # The candidates file is a valid --paraphrase_file giving the same mix (re-encoded).
  para = dataclasses.replace(settings, embed_mix="paraphrase", paraphrase_file=str(
      workdir / "predictions" / "mixed_test_candidates.tsv"))
  by_file = mixing.mixed_splits(para, mixer, {"test": test_texts})["test"]
  np.testing.assert_allclose(by_file.logits, again.logits, atol=1e-5)
  assert json.loads((workdir / "results.json").read_text())["mixed"]["test"] == mixed["test"]


def test_mix_equation_on_cls_and_on_leading_positions():
  rng = np.random.default_rng(3)
  hidden = rng.normal(size=(3, 5, 4)).astype(np.float32)
  cls = rng.normal(size=(3, 4)).astype(np.float32)
  block = rng.normal(size=(3, 2, 4)).astype(np.float32)
  w = np.array([0.92, 0.5, 0.0], np.float32)
  got = np.asarray(models.classifiers.mix_cls_states(hidden, cls, w))
  want = hidden.copy()
  want[:, 0] = w[:, None] * hidden[:, 0] + (1 - w[:, None]) * cls
  np.testing.assert_allclose(got, want, rtol=1e-6)
  got = np.asarray(models.classifiers.mix_cls_states(hidden, block, 0.25))
  want = hidden.copy()
  want[:, :2] = 0.25 * hidden[:, :2] + 0.75 * block
  np.testing.assert_allclose(got, want, rtol=1e-6)
  with pytest.raises(ValueError, match="candidate states"):
    models.classifiers.mix_cls_states(hidden, cls[:, :3], 0.5)
