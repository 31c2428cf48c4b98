"""Label-embedding attention (issue 10 item 3; seed 004 Section 3.3, 3.5.1).

Inputs: label pieces where documented, text truncated to its budget, token types.
Model: scores read from the label positions (NumPy transcription of the head on the
encoder's own hidden states; embedding mixing covers the label block), permutation of
the label block permutes the scores,
Ψ of LCL scores from its label positions, single-label softmax CE on the label scores.
Trainer: one tiny multi-label run with --label_embeddings, then predict and the HF export
give the run's own probabilities; a budget beyond max_position_embeddings is refused.
"""
import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lcl_jax import losses, models
from lcl_jax.data import goemotions, label_inputs
from lcl_jax.models import pretrained
from lcl_jax import inference
from lcl_jax.train import objectives, trainer
from test_train import _tiny_config  # pytest puts tests/ on sys.path (rootdir conftest)

SOME_LABELS = ("joy", "nervousness", "anger", "grief", "relief")  # nervousness: 2 pieces
TEXTS = ("I am so nervous about tomorrow, it scares me",
         "what a relief, thank you all",
         "")


@pytest.fixture(scope="module")
def tokenizer(minilm_dir):
  return pretrained.load_tokenizer(minilm_dir)


def test_label_pieces_sit_after_cls_and_the_text_is_cut_to_its_budget(tokenizer):
  block = label_inputs.label_block(tokenizer, goemotions.EMOTIONS, 7)
  # The tokenizer's own pieces of every name, in class order, at positions 1..P.
  expected = [tokenizer(name, add_special_tokens=False)["input_ids"]
              for name in goemotions.EMOTIONS]
  flat = [i for pieces in expected for i in pieces]
  assert block.piece_ids == tuple(flat)
  assert block.piece_positions == tuple(range(1, len(flat) + 1))
  assert block.piece_labels == tuple(c for c, p in enumerate(expected) for _ in p)
  nervousness = goemotions.EMOTIONS.index("nervousness")
  assert tokenizer.convert_ids_to_tokens(list(block.pieces_of(nervousness))) == [
      "nervous", "##ness"]
  assert len(flat) == 29 and block.prefix_length == 31 and block.suffix_length == 1
  assert block.max_length == 31 + 7 + 1

  long_text = " ".join(["happy"] * 5 + ["sad"] * 20)
  texts = [long_text, "fine", ""]
  rows = label_inputs.tokenize_with_labels(texts, tokenizer, block)
  cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
  for r, text in enumerate(texts):
    n = int(rows.lengths[r])
    ids = rows.input_ids[r, :n].tolist()
    assert ids[0] == cls and ids[1:30] == flat and ids[30] == sep and ids[-1] == sep
    text_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert ids[31:-1] == text_ids[:7]  # the first 7 text pieces, no more
    assert rows.token_type_ids[r, :n].tolist() == [0] * 31 + [1] * (n - 31)
  assert rows.lengths.tolist() == [39, 33, 32]
  assert rows.max_length == 39 and list(rows.empty_ids) == [cls, *flat, sep, sep]
  assert label_inputs.count_truncated_texts(texts, rows, tokenizer, block) == 1


def test_byte_level_bpe_block_roberta_layout(tokenizer):
  """RoBERTa's pair encoding (<s> labels </s></s> text </s>); a lone byte-level "Ġ"
  inside a two-word name belongs to that name; no token types from this tokenizer."""
  import transformers
  vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 4}
  vocab.update({ch: len(vocab) + i for i, ch in enumerate("abcdefghijklmnopqrstuvwxyzĠ")})
  vocab["Ġa"] = len(vocab)
  tok = transformers.RobertaTokenizerFast(vocab=vocab, merges=[("Ġ", "a")])
  block = label_inputs.label_block(tok, ["joy", "an_ger"], 5)
  assert tok.convert_ids_to_tokens(list(block.prefix_ids)) == [
      "<s>", "j", "o", "y", "Ġa", "n", "Ġ", "g", "e", "r", "</s>", "</s>"]
  assert block.piece_labels == (0, 0, 0, 1, 1, 1, 1, 1, 1)
  assert (block.suffix_length, block.max_length) == (1, 12 + 5 + 1)
  rows = label_inputs.tokenize_with_labels(["a happy day", ""], tok, block)
  assert tok.convert_ids_to_tokens(rows.input_ids[0, 12:].tolist()) == [
      "a", "Ġ", "h", "a", "p", "</s>"]
  assert rows.lengths.tolist() == [18, 13] and not rows.token_type_ids.any()
  with pytest.raises(ValueError, match="differs from the tokenizer's pair encoding"):
    label_inputs.tokenize_with_labels(["a happy day"], tokenizer, block)  # MiniLM's


def _tiny_label_model(tiny_bert_dir, labels, *, aux_groups=(), constant_positions=False):
  tok = pretrained.load_tokenizer(tiny_bert_dir)
  block = label_inputs.label_block(tok, labels, 12)
  layout = models.LabelLayout.from_block(block, aux_groups=aux_groups)
  module, params = models.build_classifier("label_attention", tiny_bert_dir, len(labels),
                                           rng=jax.random.key(1), label_layout=layout,
                                           num_aux_classes=len(aux_groups))
  if constant_positions:  # every position embeds alike: the encoder is order-blind
    table = params["encoder"]["embeddings"]["position_embeddings"]["embedding"]
    params["encoder"]["embeddings"]["position_embeddings"]["embedding"] = jnp.broadcast_to(
        table[:1], table.shape)
  rows = label_inputs.tokenize_with_labels(list(TEXTS), tok, block)
  mask = (np.arange(rows.input_ids.shape[1])[None] < rows.lengths[:, None]).astype(np.int32)
  return module, params, block, (rows.input_ids, mask, rows.token_type_ids)


def _numpy_scorer(p, vectors):
  hidden = np.tanh(vectors @ np.asarray(p["dense"]["kernel"]) + np.asarray(p["dense"]["bias"]))
  return (hidden @ np.asarray(p["out"]["kernel"]) + np.asarray(p["out"]["bias"]))[..., 0]


def test_scores_are_the_label_positions_through_the_feed_forward_layer(tiny_bert_dir):
  groups = ((0, 4), (1, 2, 3))  # two coarse groups, for the auxiliary scorer
  module, params, block, inputs = _tiny_label_model(tiny_bert_dir, SOME_LABELS,
                                                    aux_groups=groups)
  out = jax.jit(module.apply)({"params": params}, *inputs)
  hidden = np.asarray(jax.jit(models.TransformerEncoder(module.config).apply)(
      {"params": params["encoder"]}, *inputs))
  # Reference: mean of each label's pieces (positions from the block), shared scorer.
  vectors = np.stack([hidden[:, [p for p, c in zip(block.piece_positions, block.piece_labels)
                                 if c == label]].mean(axis=1)
                      for label in range(len(SOME_LABELS))], axis=1)
  np.testing.assert_allclose(out.logits, _numpy_scorer(params["head"]["scorer"], vectors),
                             rtol=1e-5, atol=1e-5)
  group_vectors = np.stack([vectors[:, list(g)].mean(axis=1) for g in groups], axis=1)
  np.testing.assert_allclose(out.aux_logits,
                             _numpy_scorer(params["aux_head"]["scorer"], group_vectors),
                             rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(out.features, hidden[:, 0], rtol=1e-6, atol=1e-6)
  assert out.logits.shape == (3, 5) and out.aux_logits.shape == (3, 2)
  # Embedding mixing (Section 3.5.3) mixes [CLS] and the whole label block: with w = 0
  # each row scores as the row whose states it took; with itself as candidate, as itself.
  positions = module.mixed_positions()
  assert positions == max(block.piece_positions) + 1
  mixed = jax.jit(lambda p, c, w: module.apply({"params": p}, *inputs, mix_cls=c,
                                               mix_weight=w).logits)
  swapped = hidden[[1, 2, 0], :positions]
  np.testing.assert_allclose(mixed(params, swapped, 0.0), np.asarray(out.logits)[[1, 2, 0]],
                             rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(mixed(params, hidden[:, :positions], 0.5), out.logits,
                             rtol=1e-6, atol=1e-6)


def test_permuting_the_label_block_permutes_the_scores(tiny_bert_dir):
  """With position embeddings made constant, nothing but the label tokens tells labels
  apart; a head that read fixed slots (or [CLS]) would not follow the permutation."""
  order = [3, 0, 4, 1, 2]
  permuted = tuple(SOME_LABELS[i] for i in order)
  module, params, _, inputs = _tiny_label_model(tiny_bert_dir, SOME_LABELS,
                                                constant_positions=True)
  module_p, _, block_p, inputs_p = _tiny_label_model(tiny_bert_dir, permuted)
  assert block_p.piece_labels == (0, 1, 2, 3, 3, 4)  # nervousness moved to slot 3
  logits = np.asarray(jax.jit(module.apply)({"params": params}, *inputs).logits)
  logits_p = np.asarray(jax.jit(module_p.apply)({"params": params}, *inputs_p).logits)
  np.testing.assert_allclose(logits_p, logits[:, order], rtol=2e-5, atol=2e-5)
  assert np.abs(logits - logits[:, order]).max() > 1e-3  # the labels score differently


def test_lcl_weighting_network_and_single_label_ce_use_the_label_scores(tiny_bert_dir):
  tok = pretrained.load_tokenizer(tiny_bert_dir)
  block = label_inputs.label_block(tok, SOME_LABELS, 12)
  layout = objectives.label_layout_for(block, aux_membership=np.eye(5, 2, dtype=np.int32))
  assert layout.aux_groups == ((0,), (1,))
  spec = objectives.get_spec("lcl")
  modules, params = objectives.build_networks(
      spec, encoder=str(tiny_bert_dir), weighting_encoder=str(tiny_bert_dir),
      num_classes=5, rng=jax.random.key(0), label_layout=layout, num_aux_classes=2)
  assert {type(m).__name__ for m in modules.values()} == {"LabelAttentionClassifier"}
  assert modules["weighting"].layout.aux_groups == ()  # the auxiliary task stays Φ's
  rows = label_inputs.tokenize_with_labels(list(TEXTS) * 2, tok, block)
  batch = {"input_ids": rows.input_ids, "token_type_ids": rows.token_type_ids,
           "attention_mask": (np.arange(rows.input_ids.shape[1])[None]
                              < rows.lengths[:, None]).astype(np.int32)}
  outputs = jax.jit(lambda p, b: objectives.forward(modules, p, b, dropout_key=None,
                                                    deterministic=True))(params, batch)
  weighting = jax.jit(modules["weighting"].apply)(
      {"params": params["weighting"]}, batch["input_ids"], batch["attention_mask"],
      batch["token_type_ids"])
  np.testing.assert_array_equal(outputs["weight_logits"], weighting.logits)
  assert outputs["aux_logits"].shape == (6, 2)
  labels = jnp.asarray([0, 1, 4, 0, 1, 4])  # single-label: softmax CE over label scores
  valid = jnp.ones(6, bool)
  loss, parts = objectives.loss_from_outputs(spec, outputs, labels, valid, alpha=0.5,
                                             temperature=0.3, multilabel=False)
  reference, _ = losses.lcl_objective(outputs["logits"], outputs["weight_logits"],
                                      outputs["features"], labels, alpha=0.5,
                                      temperature=0.3, valid=valid)
  assert np.isfinite(float(loss)) and float(loss) == pytest.approx(float(reference))
  log_softmax = jax.nn.log_softmax(np.asarray(outputs["logits"], np.float64))
  ce, _ = losses.ce_objective(outputs["logits"], labels, valid=valid)
  assert float(ce) == pytest.approx(-np.mean(np.asarray(log_softmax)[np.arange(6), labels]),
                                    rel=1e-5)


def test_training_step_predict_and_export_with_label_embeddings(tiny_bert_dir, data_dir,
                                                                tmp_path):
  workdir = tmp_path / "run"
  cfg = _tiny_config(tiny_bert_dir, data_dir, workdir, dataset="goemotions_multilabel",
                     objective="ce", baseline_views="texts", epochs=1, max_train_examples=8,
                     texts_per_batch=4, max_steps_per_epoch=1, max_eval_examples=6,
                     eval_batch_size=8, length_buckets=(64,), label_embeddings=True,
                     label_text_tokens=20, thresholds=0.3, threshold_fit="none",
                     export_hf=True, aux_task="ekman")
  results = trainer.train(cfg)
  assert results["steps"] == 1 and results["multilabel"]
  # Label Embeds + Aux (Section 3.5.1): the auxiliary head scores the 7 Ekman groups.
  assert len(results["aux"]["label_names"]) == 7 and "macro_f1" in results["aux"]["test"]
  described = json.loads((workdir / "config.json").read_text())["dataset"]
  assert described["label_embeddings"]["label_pieces"] == 29
  assert described["max_length"] == 31 + 20 + 1
  from lcl_jax import data as data_lib
  test_texts = list(trainer.data_pipeline.fixed_subset(
      data_lib.load_split("goemotions_multilabel", "test", data_dir=data_dir), 6).texts)
  saved = np.load(workdir / "predictions" / "best_test.npz")["probabilities"]
  from_run = inference.Predictor.load(workdir)
  np.testing.assert_allclose(from_run.probabilities(test_texts)["primary"], saved,
                             rtol=1e-5, atol=1e-6)
  exported = inference.Predictor.load(workdir / "export" / "primary")
  assert exported.label_block.max_length == 52
  np.testing.assert_allclose(exported.probabilities(test_texts)["primary"], saved,
                             rtol=1e-5, atol=1e-6)


def test_text_budget_beyond_the_positions_is_refused(tiny_bert_dir, data_dir, tmp_path):
  workdir = tmp_path / "run"
  cfg = _tiny_config(tiny_bert_dir, data_dir, workdir, dataset="goemotions_multilabel",
                     objective="ce", label_embeddings=True, label_text_tokens=100,
                     max_train_examples=8, max_eval_examples=6)
  with pytest.raises(ValueError, match=r"--label_text_tokens=100: .* 31 label-block tokens "
                                       r".* = 132 tokens, more than --encoder=.*128 "
                                       r"positions.*use --label_text_tokens<=96"):
    trainer.train(cfg)
  assert not workdir.exists()  # refused before anything is written (issue 18 item 12)
  with pytest.raises(ValueError, match="--label_embeddings.*--head=direct"):
    trainer.train(dataclasses.replace(cfg, head="direct", label_text_tokens=10))
