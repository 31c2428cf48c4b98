"""Flax (linen) transformer encoder for BERT, the ELECTRA discriminator and RoBERTa.

RoBERTa, BERTweet and XLM-R are the same encoder; `EncoderConfig.is_roberta`
switches the position ids to transformers' RoBERTa rule (`position_ids`).

The module tree mirrors Hugging Face's PyTorch modules, so that converting a
checkpoint is a rename plus transposes (see `lcl_jax.models.convert`)::

  embeddings/{word_embeddings,position_embeddings,token_type_embeddings}/embedding
  embeddings/LayerNorm/{scale,bias}
  embeddings_project/{kernel,bias}                 # ELECTRA, embedding_size != hidden_size
  encoder/layer/<i>/attention/self/{query,key,value}/{kernel,bias}
  encoder/layer/<i>/attention/output/{dense,LayerNorm}/...
  encoder/layer/<i>/intermediate/dense/{kernel,bias}
  encoder/layer/<i>/output/{dense,LayerNorm}/...

(the layout of transformers 4's FlaxBertModel). HF's ``X.weight`` of a Linear is
``X/kernel`` transposed; of an Embedding ``X/embedding``; of a LayerNorm ``X/scale``.

Numerics (``dtype`` is the compute dtype; parameters are always float32):
  * matmuls run in ``dtype`` (bf16 on accelerators); the embedding sum, every
    residual sum + LayerNorm, the feed-forward activation and the attention
    softmax run in float32 and are cast back to ``dtype``.
  * attention goes through `jax.nn.dot_product_attention` with the padding
    mask; on a GPU with a half-precision ``dtype`` it picks the fused cuDNN
    kernel (``attention_implementation=None`` means this automatic choice).

Attention-probability dropout: `jax.nn.dot_product_attention` has none. When
training (``deterministic=False``) with ``attention_probs_dropout_prob > 0``
(BERT and ELECTRA checkpoints ship 0.1) the layer uses an explicit
einsum/softmax/dropout path that reproduces HF training exactly; otherwise (and
always at evaluation) the fused path. To train with the fused kernel, override
the config: ``config.replace(attention_probs_dropout_prob=0.0)`` (or
``config_overrides={"attention_probs_dropout_prob": 0.0}`` when loading).
"""
from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lcl_jax.models.config import EncoderConfig

Array = jax.Array
DType = Any

ATTENTION_IMPLEMENTATIONS = (None, "xla", "cudnn")

_logger = logging.getLogger(__name__)


def activation_fn(name: str) -> Callable[[Array], Array]:
  """The jax function for a Hugging Face activation name (``hidden_act``)."""
  functions = {
      "gelu": functools.partial(jax.nn.gelu, approximate=False),  # exact erf GELU
      "gelu_new": functools.partial(jax.nn.gelu, approximate=True),
      "gelu_fast": functools.partial(jax.nn.gelu, approximate=True),
      "gelu_pytorch_tanh": functools.partial(jax.nn.gelu, approximate=True),
      "quick_gelu": lambda x: x * jax.nn.sigmoid(1.702 * x),
      "relu": jax.nn.relu,
      "silu": jax.nn.silu,
      "swish": jax.nn.silu,
      "tanh": jnp.tanh,
  }
  if name not in functions:
    raise ValueError(f"unsupported activation {name!r}; expected one of {sorted(functions)}")
  return functions[name]


def _large_negative(dtype: DType) -> Array:
  # NOTE: the same value as jax.nn.dot_product_attention's XLA path, so both
  # attention paths give identical (uniform, finite) weights on all-padding rows.
  return jnp.asarray(-0.7 * float(jnp.finfo(dtype).max), dtype)


def softmax_attention(query: Array, key: Array, value: Array, key_mask: Array, *,
                      dropout_rate: float = 0.0,
                      dropout_rng: Array | None = None,
                      return_probs: bool = False) -> Array | tuple[Array, Array]:
  """Explicit scaled dot-product attention with dropout on the probabilities.

  The reference path used for training with attention dropout (the fused
  `jax.nn.dot_product_attention` has no dropout), and for returning the attention
  probabilities (seed 004's Figures 6-8).

  Args:
    query, key, value: ``[B, T, N, D]`` (same dtype).
    key_mask: bool ``[B, T]``, True where a key position may be attended to.
    dropout_rate: probability of zeroing an attention probability (the kept
      ones are scaled by 1 / (1 - rate), as torch.nn.Dropout).
    dropout_rng: PRNG key; required when ``dropout_rate > 0``.
    return_probs: also return the attention probabilities before dropout, float32
      ``[B, N, T, S]`` (query t, key s); each row sums to 1 over the unmasked keys
      and masked keys get exactly 0 (exp underflows).

  Returns:
    ``[B, T, N, D]`` in the dtype of ``query`` (with ``return_probs``: and the
    probabilities).
  """
  head_dim = query.shape[-1]
  logits = jnp.einsum("btnd,bsnd->bnts", query, key, preferred_element_type=jnp.float32)
  logits = logits * jnp.float32(1.0 / math.sqrt(head_dim))
  logits = jnp.where(key_mask[:, None, None, :], logits, _large_negative(jnp.float32))
  probs = jax.nn.softmax(logits, axis=-1)  # NOTE: float32 softmax.
  attention = probs
  if dropout_rate > 0.0:
    if dropout_rng is None:
      raise ValueError("softmax_attention: dropout_rate > 0 needs a dropout_rng")
    keep = jax.random.bernoulli(dropout_rng, 1.0 - dropout_rate, probs.shape)
    probs = jnp.where(keep, probs / (1.0 - dropout_rate), 0.0)
  context = jnp.einsum("bnts,bsnd->btnd", probs.astype(value.dtype), value)
  return (context, attention) if return_probs else context


def resolve_attention_implementation(requested: str | None, dtype: DType,
                                     head_dim: int) -> str:
  """'xla' or 'cudnn': the explicit choice, or (None) cuDNN on GPU in fp16/bf16."""
  if requested not in ATTENTION_IMPLEMENTATIONS:
    raise ValueError(f"attention_implementation={requested!r}; expected one of "
                     f"{ATTENTION_IMPLEMENTATIONS}")
  if requested is not None:
    return requested
  half = jnp.dtype(dtype) in (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))
  # cuDNN's fused kernel wants head_dim a multiple of 8 and at most 128.
  if jax.default_backend() == "gpu" and half and head_dim % 8 == 0 and head_dim <= 128:
    return "cudnn"
  return "xla"


def fused_attention(query: Array, key: Array, value: Array, key_mask: Array, *,
                    implementation: str | None = None) -> Array:
  """`jax.nn.dot_product_attention` with a padding mask (no dropout).

  Args:
    query, key, value: ``[B, T, N, D]``.
    key_mask: bool ``[B, T]``.
    implementation: None (automatic: cuDNN on GPU in half precision, else XLA),
      ``"xla"`` or ``"cudnn"``.
  """
  batch, length = key_mask.shape
  chosen = resolve_attention_implementation(implementation, query.dtype, query.shape[-1])
  if chosen == "cudnn":
    # cuDNN takes the mask as a [B, 1, T, S] bias: broadcast the key mask over queries.
    mask = jnp.broadcast_to(key_mask[:, None, None, :], (batch, 1, length, length))
    try:
      return jax.nn.dot_product_attention(query, key, value, mask=mask,
                                          implementation="cudnn")
    except (NotImplementedError, RuntimeError, ValueError) as error:
      if implementation == "cudnn":
        raise
      _logger.warning("cuDNN attention unavailable (%s); using the XLA path", error)
  return jax.nn.dot_product_attention(query, key, value,
                                      mask=key_mask[:, None, None, :],
                                      implementation="xla")


def _dense(features: int, config: EncoderConfig, dtype: DType, name: str) -> nn.Dense:
  return nn.Dense(features, dtype=dtype, param_dtype=jnp.float32,
                  kernel_init=nn.initializers.normal(config.initializer_range), name=name)


def _layer_norm(config: EncoderConfig, name: str) -> nn.LayerNorm:
  # NOTE: float32 statistics with the two-pass variance, as torch.nn.LayerNorm.
  return nn.LayerNorm(epsilon=config.layer_norm_eps, dtype=jnp.float32,
                      param_dtype=jnp.float32, use_fast_variance=False, name=name)


def position_ids(input_ids: Array, config: EncoderConfig) -> Array:
  """Absolute position ids ``[B, T]`` (int32) of a batch of token ids.

  BERT / ELECTRA: ``0 .. T-1`` on every row. RoBERTa family
  (transformers' ``create_position_ids_from_input_ids``): non-padding tokens
  count from ``pad_token_id + 1`` in order, padding tokens (``input_ids ==
  pad_token_id``) get ``pad_token_id``; so a sentence has the same positions
  whether its batch is left- or right-padded.
  """
  batch, length = input_ids.shape
  if not config.is_roberta:
    return jnp.broadcast_to(jnp.arange(length, dtype=jnp.int32)[None, :], (batch, length))
  real = (input_ids != config.pad_token_id).astype(jnp.int32)
  return jnp.cumsum(real, axis=1) * real + config.pad_token_id


class Embeddings(nn.Module):
  """Word + absolute position + token-type embeddings, LayerNorm, dropout."""

  config: EncoderConfig
  dtype: DType = jnp.float32

  @nn.compact
  def __call__(self, input_ids: Array, token_type_ids: Array, *,
               deterministic: bool = True) -> Array:
    """[B, T] int ids -> [B, T, embedding_size] in ``dtype``."""
    config = self.config

    def embed(rows: int, name: str) -> nn.Embed:
      return nn.Embed(rows, config.embedding_size, dtype=jnp.float32, param_dtype=jnp.float32,
                      embedding_init=nn.initializers.normal(config.initializer_range),
                      name=name)

    words = embed(config.vocab_size, "word_embeddings")(input_ids)
    token_types = embed(config.type_vocab_size, "token_type_embeddings")(token_type_ids)
    positions = embed(config.max_position_embeddings, "position_embeddings")(
        position_ids(input_ids, config))
    # Same summation order as transformers: (words + token types) + positions.
    embeddings = _layer_norm(config, "LayerNorm")((words + token_types) + positions)
    embeddings = nn.Dropout(config.hidden_dropout_prob)(embeddings,
                                                        deterministic=deterministic)
    return embeddings.astype(self.dtype)


class SelfAttention(nn.Module):
  """Multi-head self-attention projections and attention (HF ``attention.self``).

  With ``output_attentions`` the explicit-softmax path runs (also at evaluation) and
  its probabilities ``[B, N, T, S]`` float32 are sown into the ``intermediates``
  collection as ``attention_probs`` (apply with ``mutable=['intermediates']``).
  """

  config: EncoderConfig
  dtype: DType = jnp.float32
  attention_implementation: str | None = None
  output_attentions: bool = False

  @nn.compact
  def __call__(self, hidden: Array, key_mask: Array, deterministic: bool) -> Array:
    config = self.config
    batch, length, _ = hidden.shape
    heads, head_dim = config.num_attention_heads, config.head_dim

    def project(name: str) -> Array:
      out = _dense(config.hidden_size, config, self.dtype, name)(hidden)
      return out.reshape(batch, length, heads, head_dim)

    query, key, value = project("query"), project("key"), project("value")
    rate = config.attention_probs_dropout_prob
    if self.output_attentions:
      dropout = not deterministic and rate > 0.0
      context, probs = softmax_attention(
          query, key, value, key_mask, dropout_rate=rate if dropout else 0.0,
          dropout_rng=self.make_rng("dropout") if dropout else None, return_probs=True)
      self.sow("intermediates", "attention_probs", probs)
    elif not deterministic and rate > 0.0:
      context = softmax_attention(query, key, value, key_mask, dropout_rate=rate,
                                  dropout_rng=self.make_rng("dropout"))
    else:
      context = fused_attention(query, key, value, key_mask,
                                implementation=self.attention_implementation)
    return context.reshape(batch, length, config.hidden_size)


class ResidualOutput(nn.Module):
  """Dense -> dropout -> LayerNorm(x + residual) (HF ``*Output`` modules)."""

  config: EncoderConfig
  dtype: DType = jnp.float32

  @nn.compact
  def __call__(self, hidden: Array, residual: Array, deterministic: bool) -> Array:
    config = self.config
    out = _dense(config.hidden_size, config, self.dtype, "dense")(hidden)
    out = nn.Dropout(config.hidden_dropout_prob)(out, deterministic=deterministic)
    out = out.astype(jnp.float32) + residual.astype(jnp.float32)
    return _layer_norm(config, "LayerNorm")(out).astype(self.dtype)


class Attention(nn.Module):
  """Self-attention plus its output block (HF ``attention``)."""

  config: EncoderConfig
  dtype: DType = jnp.float32
  attention_implementation: str | None = None
  output_attentions: bool = False

  @nn.compact
  def __call__(self, hidden: Array, key_mask: Array, deterministic: bool) -> Array:
    context = SelfAttention(self.config, self.dtype, self.attention_implementation,
                            self.output_attentions, name="self")(hidden, key_mask,
                                                                 deterministic)
    return ResidualOutput(self.config, self.dtype, name="output")(context, hidden,
                                                                   deterministic)


class Intermediate(nn.Module):
  """Feed-forward expansion with the configured activation (HF ``intermediate``)."""

  config: EncoderConfig
  dtype: DType = jnp.float32

  @nn.compact
  def __call__(self, hidden: Array) -> Array:
    out = _dense(self.config.intermediate_size, self.config, self.dtype, "dense")(hidden)
    return activation_fn(self.config.hidden_act)(out.astype(jnp.float32)).astype(self.dtype)


class TransformerLayer(nn.Module):
  """One post-LayerNorm transformer layer (HF ``BertLayer`` / ``ElectraLayer``)."""

  config: EncoderConfig
  dtype: DType = jnp.float32
  attention_implementation: str | None = None
  output_attentions: bool = False

  @nn.compact
  def __call__(self, hidden: Array, key_mask: Array, deterministic: bool) -> Array:
    attended = Attention(self.config, self.dtype, self.attention_implementation,
                         self.output_attentions, name="attention")(hidden, key_mask,
                                                                   deterministic)
    expanded = Intermediate(self.config, self.dtype, name="intermediate")(attended)
    return ResidualOutput(self.config, self.dtype, name="output")(expanded, attended,
                                                                   deterministic)


class LayerStack(nn.Module):
  """The layers ``0 .. num_hidden_layers-1`` (HF ``encoder.layer``)."""

  config: EncoderConfig
  dtype: DType = jnp.float32
  remat: bool = False
  attention_implementation: str | None = None
  output_attentions: bool = False

  @nn.compact
  def __call__(self, hidden: Array, key_mask: Array, deterministic: bool) -> Array:
    # static_argnums counts `self` as 0: argument 3 is `deterministic`.
    layer_cls = (nn.remat(TransformerLayer, static_argnums=(3,)) if self.remat
                 else TransformerLayer)
    for index in range(self.config.num_hidden_layers):
      hidden = layer_cls(self.config, self.dtype, self.attention_implementation,
                         self.output_attentions, name=str(index))(hidden, key_mask,
                                                                  deterministic)
    return hidden


class LayerGroup(nn.Module):
  """Holds the layer stack under the name ``layer`` (HF ``encoder``)."""

  config: EncoderConfig
  dtype: DType = jnp.float32
  remat: bool = False
  attention_implementation: str | None = None
  output_attentions: bool = False

  @nn.compact
  def __call__(self, hidden: Array, key_mask: Array, deterministic: bool) -> Array:
    return LayerStack(self.config, self.dtype, self.remat, self.attention_implementation,
                      self.output_attentions, name="layer")(hidden, key_mask, deterministic)


def check_inputs(input_ids: Any, attention_mask: Any, token_type_ids: Any, *,
                 max_length: int) -> None:
  """Trace-time checks of ranks, shapes and dtypes; raises ValueError naming the argument."""
  ids_shape = np.shape(input_ids)
  if len(ids_shape) != 2:
    raise ValueError(f"input_ids must be [batch, length], got shape {ids_shape}")
  ids_dtype = getattr(input_ids, "dtype", None) or np.asarray(input_ids).dtype
  if not jnp.issubdtype(ids_dtype, jnp.integer):
    raise ValueError(f"input_ids must be integer token ids, got dtype {ids_dtype}")
  for name, value in (("attention_mask", attention_mask), ("token_type_ids", token_type_ids)):
    if value is not None and np.shape(value) != ids_shape:
      raise ValueError(f"{name} has shape {np.shape(value)}; expected input_ids' shape "
                       f"{ids_shape}")
  if ids_shape[1] > max_length:
    raise ValueError(f"input length {ids_shape[1]} exceeds the encoder's maximum {max_length} "
                     "(max_position_embeddings minus the RoBERTa padding offset)")


class TransformerEncoder(nn.Module):
  """BERT / ELECTRA / RoBERTa-family encoder returning the last hidden states.

  Attributes:
    config: the architecture (`EncoderConfig.from_json_file`).
    dtype: compute dtype (parameters stay float32); ``jnp.bfloat16`` on GPU/TPU.
    remat: rematerialise each layer in the backward pass (`flax.linen.remat`),
      trading compute for activation memory (the release's gradient
      checkpointing).
    attention_implementation: None (cuDNN on GPU in half precision, else XLA),
      ``"xla"`` or ``"cudnn"``.
    output_attentions: run every layer's attention through the explicit softmax
      (`softmax_attention`) and sow its probabilities, float32 ``[B, heads, T, T]``
      per layer, into the ``intermediates`` collection (`attention_probabilities`
      collects them). Off by default: the fused path.
  """

  config: EncoderConfig
  dtype: DType = jnp.float32
  remat: bool = False
  attention_implementation: str | None = None
  output_attentions: bool = False

  @nn.compact
  def __call__(self, input_ids: Array, attention_mask: Array,
               token_type_ids: Array | None = None, *, deterministic: bool = True) -> Array:
    """Encodes a batch.

    Args:
      input_ids: int ``[B, T]`` token ids.
      attention_mask: ``[B, T]``, nonzero/True on real tokens, 0 on padding.
      token_type_ids: int ``[B, T]`` segment ids; zeros when None.
      deterministic: False enables dropout (needs ``rngs={'dropout': key}``).

    Returns:
      The last hidden states ``[B, T, hidden_size]`` in ``dtype``. Rows at
      padding positions are finite but meaningless.
    """
    config = self.config
    check_inputs(input_ids, attention_mask, token_type_ids, max_length=config.max_length)
    if token_type_ids is None:
      token_type_ids = jnp.zeros_like(input_ids)
    key_mask = jnp.asarray(attention_mask) > 0
    hidden = Embeddings(config, self.dtype, name="embeddings")(
        input_ids, token_type_ids, deterministic=deterministic)
    if config.has_embeddings_project:
      hidden = _dense(config.hidden_size, config, self.dtype, "embeddings_project")(hidden)
    return LayerGroup(config, self.dtype, self.remat, self.attention_implementation,
                      self.output_attentions, name="encoder")(hidden, key_mask, deterministic)


def attention_probabilities(encoder: TransformerEncoder, params: Any, input_ids: Array,
                            attention_mask: Array, token_type_ids: Array | None = None
                            ) -> tuple[Array, Array]:
  """Last hidden states and every layer's attention probabilities of a batch.

  Args:
    encoder: a `TransformerEncoder` (its ``output_attentions`` is switched on here).
    params: its params (a classifier's ``params['encoder']``).
    input_ids, attention_mask, token_type_ids: as `TransformerEncoder.__call__`.

  Returns:
    ``(hidden [B, T, H] in the encoder's dtype, probs float32 [L, B, heads, T, T])``
    (layer l, query t, key s; evaluation mode, no dropout).
  """
  encoder = encoder.clone(output_attentions=True)
  hidden, state = encoder.apply({"params": params}, input_ids, attention_mask, token_type_ids,
                                deterministic=True, mutable=["intermediates"])
  layers = state["intermediates"]["encoder"]["layer"]
  probs = [layers[str(i)]["attention"]["self"]["attention_probs"][0]
           for i in range(encoder.config.num_hidden_layers)]
  return hidden, jnp.stack(probs)


class BertPooler(nn.Module):
  """BERT's pooler: tanh(Dense(hidden[:, 0])) (HF ``pooler``; params ``{'dense': ...}``)."""

  config: EncoderConfig
  dtype: DType = jnp.float32

  @nn.compact
  def __call__(self, hidden_states: Array) -> Array:
    """[B, T, H] last hidden states -> [B, H] pooled output (float32)."""
    dense = _dense(self.config.hidden_size, self.config, self.dtype, "dense")
    return jnp.tanh(dense(hidden_states[:, 0]).astype(jnp.float32))
