"""The Flax encoder on real weights (all-MiniLM-L6-v2) against transformers' PyTorch BertModel.

Also: pooler parity, padding invariance, bf16 tolerance, dropout and remat
behaviour, the two attention paths, and input validation.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch  # test dependency (setup.py extra "test")
import transformers

from lcl_jax import models
from lcl_jax.models import encoder as encoder_lib
from lcl_jax.models import pretrained

# NOTE: bf16 tolerance, measured on this batch: max |diff| 0.024 against values up
# to |6|, [CLS] cosine >= 0.99998 (BUILD_NOTES / .notes/models.md). Stated bound:
BF16_MAX_ABS = 0.08
BF16_MIN_COSINE = 0.9995


@pytest.fixture(scope="module")
def texts(data_dir):
  """Real sentences of different lengths: GoEmotions dev texts plus a long one."""
  lines = (data_dir / "goemotions" / "dev.tsv").read_text(encoding="utf-8").splitlines()
  sentences = [line.split("\t")[0] for line in lines[:7]]
  sentences.append("Honestly, after everything that happened at the meeting yesterday, I "
                   "am still not sure whether I should be angry, relieved, or just tired.")
  return sentences


@pytest.fixture(scope="module")
def minilm(minilm_dir):
  module, params = models.from_pretrained(minilm_dir)
  return module, params


@pytest.fixture(scope="module")
def batch(minilm_dir, texts):
  tokenizer = models.load_tokenizer(minilm_dir)
  encoded = tokenizer(texts, padding=True, return_tensors="np")
  lengths = encoded["attention_mask"].sum(1)
  assert len(set(lengths.tolist())) >= 4, lengths  # really different lengths, padded
  return {k: encoded[k].astype(np.int32) for k in ("input_ids", "attention_mask",
                                                      "token_type_ids")}


@pytest.fixture(scope="module")
def torch_outputs(minilm_dir, batch):
  model = transformers.BertModel.from_pretrained(str(minilm_dir)).eval()
  with torch.no_grad():
    out = model(**{k: torch.tensor(v, dtype=torch.long) for k, v in batch.items()})
  return out.last_hidden_state.numpy(), out.pooler_output.numpy()


@pytest.fixture(scope="module")
def apply_fn():
  def apply(module, params, batch, **kwargs):
    return module.apply({"params": params}, batch["input_ids"], batch["attention_mask"],
                        batch["token_type_ids"], **kwargs)
  return jax.jit(apply, static_argnums=0, static_argnames=("deterministic",))


@pytest.fixture(scope="module")
def hidden_f32(minilm, batch, apply_fn):
  module, params = minilm
  return np.asarray(apply_fn(module, params, batch))


def test_minilm_hidden_states_match_transformers(hidden_f32, batch, torch_outputs):
  reference, _ = torch_outputs
  mask = batch["attention_mask"].astype(bool)
  assert hidden_f32.shape == reference.shape == (*mask.shape, 384)
  assert np.abs(hidden_f32 - reference)[mask].max() <= 1e-4


def test_minilm_pooler_matches_transformers(minilm_dir, hidden_f32, torch_outputs):
  pooler, pooler_params = models.load_pretrained_pooler(minilm_dir)
  pooled = np.asarray(pooler.apply({"params": pooler_params}, jnp.asarray(hidden_f32)))
  assert np.abs(pooled - torch_outputs[1]).max() <= 1e-4


def test_padded_sentence_equals_sentence_alone(minilm, minilm_dir, texts, hidden_f32, batch):
  module, params = minilm
  tokenizer = models.load_tokenizer(minilm_dir)
  shortest = int(np.argmin(batch["attention_mask"].sum(1)))
  alone = tokenizer([texts[shortest]], return_tensors="np")
  assert alone["input_ids"].shape[1] < batch["input_ids"].shape[1]  # really padded in batch
  out = np.asarray(module.apply({"params": params}, alone["input_ids"],
                                alone["attention_mask"]))  # eager: no compile for one call
  length = alone["input_ids"].shape[1]
  np.testing.assert_allclose(out[0, 0], hidden_f32[shortest, 0], atol=1e-5, rtol=0)
  np.testing.assert_allclose(out[0], hidden_f32[shortest, :length], atol=1e-5, rtol=0)


def test_bf16_compute_within_stated_tolerance(minilm_dir, batch, hidden_f32, apply_fn):
  module, params = models.from_pretrained(minilm_dir, dtype=jnp.bfloat16)
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree_util.tree_leaves(params))
  out = apply_fn(module, params, batch)
  assert out.dtype == jnp.bfloat16
  out = np.asarray(out, np.float32)
  mask = batch["attention_mask"].astype(bool)
  diff = np.abs(out - hidden_f32)[mask]
  assert diff.max() <= BF16_MAX_ABS
  assert diff.max() > 0  # really computed in bf16
  cls, cls_ref = out[:, 0], hidden_f32[:, 0]
  cosine = (cls * cls_ref).sum(1) / np.linalg.norm(cls, axis=1) / np.linalg.norm(cls_ref, axis=1)
  assert cosine.min() >= BF16_MIN_COSINE


# NOTE: XLA:CPU compiles dropout's threefry bits much more slowly for very small
# shapes (e.g. 13 s at [3, 10] x 32 vs 6 s here), so the random model is not tinier.
TINY_BERT = models.EncoderConfig(model_type="bert", vocab_size=50, hidden_size=64,
                                 num_hidden_layers=2, num_attention_heads=4,
                                 intermediate_size=128, max_position_embeddings=16)


@pytest.fixture(scope="module")
def tiny_batch():
  rng = np.random.default_rng(0)
  ids = rng.integers(1, 50, size=(4, 16)).astype(np.int32)
  mask = np.ones_like(ids)
  mask[1, 6:] = 0
  mask[3, 11:] = 0
  return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


@pytest.fixture(scope="module")
def tiny_params():
  """Random parameters (NumPy: no init program to compile), LayerNorms at identity."""
  rng = np.random.default_rng(0)

  def leaf(path, spec):
    if path[-1].key == "scale":
      return jnp.ones(spec.shape, jnp.float32)
    return jnp.asarray(0.05 * rng.standard_normal(spec.shape), jnp.float32)

  return jax.tree_util.tree_map_with_path(leaf, pretrained.encoder_template(TINY_BERT))


def test_dropout_active_only_when_not_deterministic(tiny_batch, tiny_params, apply_fn):
  module = models.TransformerEncoder(TINY_BERT)

  def run(seed):
    return np.asarray(apply_fn(module, tiny_params, tiny_batch, deterministic=False,
                               rngs={"dropout": jax.random.PRNGKey(seed)}))

  evaluation = np.asarray(apply_fn(module, tiny_params, tiny_batch))
  first, again, other = run(0), run(0), run(1)
  np.testing.assert_array_equal(first, again)
  assert np.abs(first - other).max() > 1e-2
  assert np.abs(first - evaluation).max() > 1e-2


def test_attention_dropout_uses_the_explicit_path(tiny_batch, tiny_params, apply_fn):
  """With hidden dropout off, only attention-probability dropout can make keys differ."""
  only_attention = models.TransformerEncoder(TINY_BERT.replace(hidden_dropout_prob=0.0))
  no_dropout = models.TransformerEncoder(
      TINY_BERT.replace(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))
  params = tiny_params

  def run(module, seed):
    return np.asarray(apply_fn(module, params, tiny_batch, deterministic=False,
                               rngs={"dropout": jax.random.PRNGKey(seed)}))

  assert np.abs(run(only_attention, 0) - run(only_attention, 1)).max() > 1e-3
  np.testing.assert_array_equal(run(no_dropout, 0), run(no_dropout, 1))


def test_config_override_switches_dropout_off(minilm_dir):
  module, _ = models.from_pretrained(
      minilm_dir, config_overrides={"attention_probs_dropout_prob": 0.0})
  assert module.config.attention_probs_dropout_prob == 0.0
  assert module.config.hidden_dropout_prob == 0.1


def test_explicit_attention_matches_fused_and_numpy():
  rng = np.random.default_rng(0)
  q, k, v = (rng.standard_normal((2, 5, 3, 4)).astype(np.float32) for _ in range(3))
  mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
  explicit = np.asarray(encoder_lib.softmax_attention(q, k, v, jnp.asarray(mask)))
  fused = np.asarray(encoder_lib.fused_attention(q, k, v, jnp.asarray(mask),
                                                 implementation="xla"))
  # NumPy transcription of softmax(q k^T / sqrt(d) + mask) v, per batch and head.
  logits = np.einsum("btnd,bsnd->bnts", q, k) / np.sqrt(4.0)
  logits = np.where(mask[:, None, None, :], logits, -np.inf)
  probs = np.exp(logits - logits.max(-1, keepdims=True))
  probs /= probs.sum(-1, keepdims=True)
  reference = np.einsum("bnts,bsnd->btnd", probs, v)
  np.testing.assert_allclose(explicit, reference, atol=1e-5)
  np.testing.assert_allclose(fused, reference, atol=1e-5)


def test_explicit_attention_dropout_is_inverted_dropout():
  rng = np.random.default_rng(1)
  q, k = (rng.standard_normal((1, 4, 1, 8)).astype(np.float32) for _ in range(2))
  v = np.eye(4, dtype=np.float32)[None, :, None, :]  # value rows = one-hot: output = probs
  mask = jnp.ones((1, 4), bool)
  plain = np.asarray(encoder_lib.softmax_attention(q, k, v, mask))
  dropped = np.asarray(encoder_lib.softmax_attention(
      q, k, v, mask, dropout_rate=0.5, dropout_rng=jax.random.PRNGKey(3)))
  kept = dropped != 0
  assert 0 < kept.sum() < kept.size
  np.testing.assert_allclose(dropped[kept], plain[kept] / 0.5, rtol=1e-5)


def test_remat_gives_same_outputs_and_gradients(tiny_batch, tiny_params):
  one_layer = TINY_BERT.replace(num_hidden_layers=1)  # halves the two compiles
  plain = models.TransformerEncoder(one_layer)
  remat = models.TransformerEncoder(one_layer, remat=True)
  params = {**tiny_params, "encoder": {"layer": {"0": tiny_params["encoder"]["layer"]["0"]}}}
  key = jax.random.PRNGKey(0)

  def loss(module, p):
    hidden = module.apply({"params": p}, tiny_batch["input_ids"],
                          tiny_batch["attention_mask"], deterministic=False,
                          rngs={"dropout": key})
    return jnp.sum(hidden[:, 0] ** 2), hidden

  (loss_plain, out_plain), grad_plain = jax.jit(
      jax.value_and_grad(lambda p: loss(plain, p), has_aux=True))(params)
  (loss_remat, out_remat), grad_remat = jax.jit(
      jax.value_and_grad(lambda p: loss(remat, p), has_aux=True))(params)
  np.testing.assert_allclose(np.asarray(out_remat), np.asarray(out_plain), atol=1e-5)
  np.testing.assert_allclose(float(loss_remat), float(loss_plain), rtol=1e-5)
  assert jax.tree_util.tree_structure(grad_remat) == jax.tree_util.tree_structure(grad_plain)
  for g_remat, g_plain in zip(jax.tree_util.tree_leaves(grad_remat),
                              jax.tree_util.tree_leaves(grad_plain)):
    np.testing.assert_allclose(np.asarray(g_remat), np.asarray(g_plain), atol=1e-5, rtol=1e-5)
  assert float(jnp.abs(grad_plain["encoder"]["layer"]["0"]["attention"]["self"]["query"]
                       ["kernel"]).max()) > 0
  # The remat'd layers really are checkpointed in the backward pass.
  jaxpr = jax.make_jaxpr(jax.grad(lambda p: loss(remat, p)[0]))(params)
  assert "remat" in str(jaxpr) or "checkpoint" in str(jaxpr)


def test_all_padding_row_is_finite(tiny_params, apply_fn):
  module = models.TransformerEncoder(TINY_BERT)
  ids = np.array([[1, 7, 9, 2], [0, 0, 0, 0]], np.int32)
  mask = np.array([[1, 1, 1, 1], [0, 0, 0, 0]], np.int32)
  both = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
  out = np.asarray(apply_fn(module, tiny_params, both))
  assert np.isfinite(out).all()
  # The real row is unaffected by the all-padding row beside it.
  alone = {k: v[:1] for k, v in both.items()}
  np.testing.assert_allclose(out[:1], np.asarray(apply_fn(module, tiny_params, alone)),
                             atol=1e-5)


@pytest.mark.parametrize("kwargs, message", [
    (dict(input_ids=np.zeros((4,), np.int32), attention_mask=np.ones((4,), np.int32)),
     "input_ids must be"),
    (dict(input_ids=np.zeros((2, 4), np.int32), attention_mask=np.ones((2, 5), np.int32)),
     "attention_mask has shape"),
    (dict(input_ids=np.zeros((2, 4), np.float32), attention_mask=np.ones((2, 4), np.int32)),
     "integer token ids"),
    (dict(input_ids=np.zeros((1, 513), np.int32), attention_mask=np.ones((1, 513), np.int32)),
     "max_position_embeddings"),
])
def test_bad_inputs_name_the_argument(minilm, kwargs, message):
  module, params = minilm
  with pytest.raises(ValueError, match=message):
    module.apply({"params": params}, **kwargs)


@pytest.mark.parametrize("kind,shapes,default_dropout", [
    ("direct", {("dense", "kernel"): (64, 64), ("dense", "bias"): (64,),
                ("out", "kernel"): (64, 5), ("out", "bias"): (5,)}, 0.3),
    ("dense1", {("out", "kernel"): (64, 5), ("out", "bias"): (5,)}, 0.0),
    ("dense2", {("hidden", "kernel"): (64, 64), ("hidden", "bias"): (64,),
                ("out", "kernel"): (64, 5), ("out", "bias"): (5,)}, 0.0),
])
def test_issue9_head_variants_have_documented_shapes(kind, shapes, default_dropout):
  """Seed 000's direct head and seed 003's DenseLayer(1)/(2): params, logits and the
  documented computation ([CLS] only) on random hidden states."""
  from flax import traverse_util
  cls = models.CLASSIFIERS[kind]
  module = cls(TINY_BERT, 5)
  assert module.head_dropout_rate() == default_dropout
  assert cls(TINY_BERT, 5, classifier_dropout=0.2).head_dropout_rate() == 0.2
  head = module.build_head()
  hidden = jax.random.normal(jax.random.key(0), (3, 7, 64))
  params = head.init(jax.random.key(1), hidden)["params"]
  flat = {k: v.shape for k, v in traverse_util.flatten_dict(params).items()}
  assert flat == shapes
  logits = head.apply({"params": params}, hidden)
  assert logits.shape == (3, 5) and logits.dtype == jnp.float32
  cls_only = np.asarray(hidden[:, 0], np.float64)
  p = jax.tree.map(lambda x: np.asarray(x, np.float64), params)
  if kind == "direct":
    expected = np.tanh(cls_only @ p["dense"]["kernel"] + p["dense"]["bias"])
  elif kind == "dense2":
    expected = np.maximum(cls_only @ p["hidden"]["kernel"] + p["hidden"]["bias"], 0)
  else:
    expected = cls_only
  expected = expected @ p["out"]["kernel"] + p["out"]["bias"]
  np.testing.assert_allclose(np.asarray(logits), expected, rtol=1e-4, atol=1e-5)
  dropped = cls(TINY_BERT, 5, classifier_dropout=0.5).build_head().apply(
      {"params": params}, hidden, deterministic=False, rngs={"dropout": jax.random.key(2)})
  assert not np.allclose(np.asarray(dropped), np.asarray(logits))
