"""RoBERTa-family encoders (RoBERTa, BERTweet, XLM-R) and mean-pooled features.

Small random RobertaModel / RobertaForSequenceClassification / XLMRobertaModel are
saved by transformers; ours must load them strictly, match their outputs on a padded
batch, give the same states for a sentence whether its batch is left- or right-padded
(positions offset past the padding index), and write checkpoints transformers reloads.
"""
import functools
import json

import jax
import numpy as np
import pytest
import torch  # test dependency (setup.py extra "test")
import transformers

from lcl_jax import models
from lcl_jax.models import pretrained

PAD = 1  # RoBERTa's <pad>
NUM_LABELS = 4


@functools.partial(jax.jit, static_argnums=0)
def _apply(module, params, ids, mask):
  return module.apply({"params": params}, ids, mask, deterministic=True)


def _roberta_config(**overrides):
  values = dict(vocab_size=250, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                intermediate_size=128, max_position_embeddings=40, type_vocab_size=1,
                pad_token_id=PAD, bos_token_id=0, eos_token_id=2, layer_norm_eps=1e-5,
                num_labels=NUM_LABELS)
  values.update(overrides)
  return values


def _right_padded(seed=0):
  """[4, 12] ids with <s> first, </s> last, right padding with id 1; mask."""
  rng = np.random.default_rng(seed)
  ids = rng.integers(5, 250, size=(4, 12)).astype(np.int32)
  mask = np.zeros_like(ids)
  for row, length in enumerate((12, 9, 4, 7)):
    mask[row, :length] = 1
    ids[row, 0], ids[row, length - 1] = 0, 2
  ids[mask == 0] = PAD
  return ids, mask


def _left_padded(ids, mask):
  """The same sentences with the padding moved to the left."""
  left_ids, left_mask = np.full_like(ids, PAD), np.zeros_like(mask)
  for row in range(ids.shape[0]):
    length = int(mask[row].sum())
    left_ids[row, ids.shape[1] - length:] = ids[row, :length]
    left_mask[row, ids.shape[1] - length:] = 1
  return left_ids, left_mask


def _torch(ids, mask, model):
  with torch.no_grad():
    return model(input_ids=torch.tensor(ids, dtype=torch.long),
                 attention_mask=torch.tensor(mask, dtype=torch.long))


def _save_random(tmp_path_factory, model_class, config_class, seed, name):
  """A random transformers model of the RoBERTa family saved in a temporary directory."""
  torch.manual_seed(seed)
  model = model_class(config_class(**_roberta_config())).eval()
  directory = tmp_path_factory.mktemp("roberta") / name
  model.save_pretrained(directory)
  return directory, model


@pytest.fixture(scope="module")
def roberta_cls_dir(tmp_path_factory):
  return _save_random(tmp_path_factory, transformers.RobertaForSequenceClassification,
                      transformers.RobertaConfig, 0, "classifier")


@pytest.fixture(scope="module")
def roberta_base_dir(tmp_path_factory):
  """A RobertaModel (with its pooler, as transformers' default)."""
  return _save_random(tmp_path_factory, transformers.RobertaModel, transformers.RobertaConfig,
                      1, "base")


def test_config_reads_roberta_fields(roberta_cls_dir):
  config = models.EncoderConfig.from_json_file(roberta_cls_dir[0] / "config.json")
  assert config.model_type == "roberta" and config.is_roberta
  assert config.pad_token_id == PAD and config.position_offset == PAD + 1
  assert config.max_length == 40 - (PAD + 1)
  assert config.type_vocab_size == 1 and config.layer_norm_eps == 1e-5
  assert config.base_model_prefix == "roberta"
  assert not models.EncoderConfig.from_json_file(
      roberta_cls_dir[0] / "config.json").has_embeddings_project


def test_position_ids_follow_transformers(roberta_cls_dir):
  from lcl_jax.models.encoder import position_ids
  config = models.EncoderConfig.from_json_file(roberta_cls_dir[0] / "config.json")
  ids, mask = _right_padded()
  for batch in ((ids, mask), _left_padded(ids, mask)):
    expected = transformers.models.roberta.modeling_roberta.RobertaEmbeddings \
        .create_position_ids_from_input_ids(torch.tensor(batch[0]), PAD).numpy()
    np.testing.assert_array_equal(np.asarray(position_ids(batch[0], config)), expected)


def test_roberta_hidden_states_match_transformers(roberta_base_dir):
  directory, model = roberta_base_dir
  module, params, report = models.from_pretrained(directory, with_report=True)
  assert any(name.startswith("pooler.") for name in report.ignored)
  ids, mask = _right_padded()
  ours = np.asarray(_apply(module, params, ids, mask))
  theirs = _torch(ids, mask, model).last_hidden_state.numpy()
  real = mask.astype(bool)
  np.testing.assert_allclose(ours[real], theirs[real], atol=1e-4, rtol=0)


def test_roberta_classifier_logits_match_transformers(roberta_cls_dir):
  directory, model = roberta_cls_dir
  module, params, report = models.build_classifier(
      "roberta", directory, NUM_LABELS, rng=jax.random.key(0), load_head=True,
      with_report=True)
  assert not report.unexpected and not report.missing
  assert any(name.startswith("classifier.out_proj") for name in report.loaded)
  ids, mask = _right_padded()
  out = _apply(module, params, ids, mask)
  theirs = _torch(ids, mask, model).logits.numpy()
  np.testing.assert_allclose(np.asarray(out.logits), theirs, atol=1e-4, rtol=0)


def test_left_and_right_padding_agree(roberta_cls_dir):
  directory, _ = roberta_cls_dir
  module, params = models.from_pretrained(directory)
  ids, mask = _right_padded()
  left_ids, left_mask = _left_padded(ids, mask)
  right = np.asarray(_apply(module, params, ids, mask))
  left = np.asarray(_apply(module, params, left_ids, left_mask))
  for row in range(ids.shape[0]):
    length = int(mask[row].sum())
    np.testing.assert_allclose(left[row, ids.shape[1] - length:], right[row, :length],
                               atol=1e-5, rtol=0)
  # ... and so do the mean-pooled contrastive features of the classifier.
  paper, paper_params = models.build_classifier("paper", directory, NUM_LABELS,
                                                rng=jax.random.key(1), feature_pooling="mean")
  np.testing.assert_allclose(np.asarray(_apply(paper, paper_params, ids, mask).features),
                             np.asarray(_apply(paper, paper_params, left_ids,
                                               left_mask).features), atol=1e-5, rtol=0)


def test_save_reload_exact_and_transformers_loads_it(roberta_cls_dir, tmp_path):
  directory, model = roberta_cls_dir
  module, params = models.build_classifier("roberta", directory, NUM_LABELS,
                                           rng=jax.random.key(0), load_head=True)
  saved = models.save_classifier(tmp_path / "saved", module, params)
  config = json.loads((saved / "config.json").read_text())
  assert config["architectures"] == ["RobertaForSequenceClassification"]
  assert config["model_type"] == "roberta" and config["pad_token_id"] == PAD
  _, reloaded = models.build_classifier("roberta", saved, NUM_LABELS, rng=jax.random.key(5),
                                        load_head=True)
  flat, flat_back = (jax.tree_util.tree_leaves_with_path(tree) for tree in (params, reloaded))
  assert [path for path, _ in flat] == [path for path, _ in flat_back]
  for (_, a), (_, b) in zip(flat, flat_back):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  hf = transformers.RobertaForSequenceClassification.from_pretrained(saved).eval()
  ids, mask = _right_padded(seed=3)
  np.testing.assert_allclose(_torch(ids, mask, hf).logits.numpy(),
                             _torch(ids, mask, model).logits.numpy(), atol=1e-6, rtol=0)


def test_roberta_as_phi_and_psi(roberta_cls_dir):
  directory, _ = roberta_cls_dir
  dual = models.build_dual_network(directory, None, NUM_LABELS, rng=jax.random.key(0))
  assert isinstance(dual.weighting, models.RobertaSequenceClassifier)
  assert isinstance(dual.primary, models.PaperClassifier)
  ids, mask = _right_padded()
  out = _apply(dual.weighting, dual.weighting_params, ids, mask)
  assert out.logits.shape == (4, NUM_LABELS) and np.isfinite(np.asarray(out.logits)).all()


def test_xlm_roberta_loads_and_matches(tmp_path_factory, tmp_path):
  directory, model = _save_random(tmp_path_factory,
                                  transformers.XLMRobertaForSequenceClassification,
                                  transformers.XLMRobertaConfig, 2, "xlmr")
  module, params = models.build_classifier("roberta", directory, NUM_LABELS,
                                           rng=jax.random.key(0), load_head=True)
  assert module.config.model_type == "xlm-roberta"
  ids, mask = _right_padded(seed=4)
  np.testing.assert_allclose(np.asarray(_apply(module, params, ids, mask).logits),
                             _torch(ids, mask, model).logits.numpy(), atol=1e-4, rtol=0)
  saved = models.save_classifier(tmp_path / "saved", module, params)
  assert json.loads((saved / "config.json").read_text())["architectures"] == [
      "XLMRobertaForSequenceClassification"]


def test_input_longer_than_offset_positions_is_refused(roberta_base_dir):
  module, params = models.from_pretrained(roberta_base_dir[0])
  ids = np.full((1, 39), 5, np.int32)  # 40 rows - offset 2 = 38 positions
  with pytest.raises(ValueError, match="exceeds the encoder's maximum 38"):
    module.apply({"params": params}, ids, np.ones_like(ids))


def test_multilingual_bert_vocabulary_loads(tmp_path):
  """mBERT is BERT with another vocabulary size: nothing new is needed."""
  torch.manual_seed(3)
  config = transformers.BertConfig(vocab_size=1234, hidden_size=32, num_hidden_layers=1,
                                   num_attention_heads=2, intermediate_size=64,
                                   max_position_embeddings=32)
  model = transformers.BertModel(config).eval()
  model.save_pretrained(tmp_path / "mbert")
  module, params = models.from_pretrained(tmp_path / "mbert")
  assert params["embeddings"]["word_embeddings"]["embedding"].shape == (1234, 32)
  rng = np.random.default_rng(0)
  ids = rng.integers(1000, 1234, size=(2, 6)).astype(np.int32)
  mask = np.ones_like(ids)
  np.testing.assert_allclose(np.asarray(_apply(module, params, ids, mask)),
                             _torch(ids, mask, model).last_hidden_state.numpy(),
                             atol=1e-4, rtol=0)


def test_byte_level_bpe_tokenizer_loads(tmp_path, roberta_cls_dir):
  """A RoBERTa byte-level BPE tokenizer (vocab.json + merges.txt) through load_tokenizer."""
  import shutil
  vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 4}
  for ch in "abcdefghijklmnopqrstuvwxyzĠ":
    vocab[ch] = len(vocab)
  vocab["Ġa"] = len(vocab)
  directory = tmp_path / "tok"
  shutil.copytree(roberta_cls_dir[0], directory)
  transformers.RobertaTokenizerFast(vocab=vocab, merges=[("Ġ", "a")]).save_pretrained(directory)
  tokenizer = pretrained.load_tokenizer(directory)
  assert tokenizer.is_fast and tokenizer.pad_token_id == PAD
  encoded = tokenizer(["a b", "a"], padding="max_length", max_length=6)
  # "a b" -> <s> a Ġ b </s> <pad> (Ġb is no merge; "Ġ a" is, "a" leads without space).
  assert encoded["input_ids"][0] == [0, vocab["a"], vocab["Ġ"], vocab["b"], 2, PAD]
  assert encoded["input_ids"][1] == [0, vocab["a"], 2, PAD, PAD, PAD]
  assert tokenizer([" a"])["input_ids"][0] == [0, vocab["Ġa"], 2]


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_pool_features_matches_numpy(pooling):
  rng = np.random.default_rng(0)
  hidden = rng.normal(size=(5, 7, 3)).astype(np.float32)
  mask = np.zeros((5, 7), np.int32)
  for row, length in enumerate((7, 3, 1, 5, 0)):
    mask[row, :length] = 1
  got = np.asarray(models.pool_features(hidden, mask, pooling))
  if pooling == "cls":
    expected = hidden[:, 0]
  else:
    counts = np.maximum(mask.sum(1, keepdims=True), 1)
    expected = (hidden * mask[..., None]).sum(1) / counts
  np.testing.assert_allclose(got, expected, atol=1e-6, rtol=1e-6)
  if pooling == "mean":
    np.testing.assert_array_equal(got[4], 0.0)  # an all-padding row
    # Changing padded tokens, or adding padding rows/columns, changes nothing.
    noisy = np.where(mask[..., None] > 0, hidden, 1e3).astype(np.float32)
    np.testing.assert_allclose(np.asarray(models.pool_features(noisy, mask, "mean")), got,
                               atol=1e-6, rtol=0)
    wider = np.concatenate([noisy, rng.normal(size=(5, 4, 3)).astype(np.float32)], axis=1)
    wider_mask = np.concatenate([mask, np.zeros((5, 4), np.int32)], axis=1)
    more = np.concatenate([wider, np.ones((2, 11, 3), np.float32)])
    more_mask = np.concatenate([wider_mask, np.zeros((2, 11), np.int32)])
    np.testing.assert_allclose(np.asarray(models.pool_features(more, more_mask, "mean"))[:5],
                               got, atol=1e-6, rtol=0)


def test_pool_features_refuses_unknown_pooling():
  with pytest.raises(ValueError, match="feature pooling 'max'"):
    models.pool_features(np.zeros((1, 2, 3)), np.ones((1, 2)), "max")


def test_objectives_use_mean_pooled_features_for_scl_and_lcl(tiny_bert_dir):
  """--feature_pooling=mean reaches Φ's features (the contrastive losses' input) for SCL
  and LCL: they equal a NumPy masked mean of Φ's encoder states."""
  from lcl_jax.train import objectives
  ids, mask = _right_padded()
  ids = np.where(mask > 0, ids + 100, 0).astype(np.int32)  # BERT vocabulary, pad 0
  for objective in ("scl", "lcl"):
    modules, params = objectives.build_networks(
        objectives.get_spec(objective), encoder=str(tiny_bert_dir),
        weighting_encoder=str(tiny_bert_dir), num_classes=3, rng=jax.random.key(0),
        feature_pooling="mean")
    assert (objective == "lcl") == ("weighting" in modules)
    out = objectives.forward(modules, params, {"input_ids": ids, "attention_mask": mask},
                             dropout_key=None, deterministic=True)
    encoder = models.TransformerEncoder(modules["primary"].config)
    hidden = np.asarray(encoder.apply({"params": params["primary"]["encoder"]}, ids, mask))
    expected = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    np.testing.assert_allclose(np.asarray(out["features"]), expected, atol=1e-5, rtol=1e-5)
