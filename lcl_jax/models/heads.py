"""Classification heads on top of the encoder's last hidden states.

* `PaperHead` -- the authors' primary encoder Φ head (class ``primary_encoder``
  in the release's ``model.py``, varsha33/LCL_loss):
  [CLS] -> Dense(H) (``pooler_fc``) -> dropout(0.1) -> ReLU -> Dense(C)
  (``label``) -> dropout(0.1) on the logits (the release applies the same
  dropout module to the logits; kept for fidelity).
* `ElectraClassificationHead` -- transformers' ``ElectraClassificationHead``
  (the weighting network Ψ): [CLS] -> dropout -> dense -> exact GELU ->
  dropout -> out_proj.
* `RobertaClassificationHead` -- transformers' ``RobertaClassificationHead``
  (RoBERTa, BERTweet, XLM-R): the ELECTRA head with tanh instead of GELU.
* `BertClassificationHead` -- ``BertForSequenceClassification``'s head:
  pooler (dense + tanh on [CLS]) -> dropout -> classifier.

`pool_features` gives the contrastive features: the [CLS] hidden state (the
paper) or the mean over non-padding tokens (seed 001's re-implementation).

Every head maps ``[B, T, H]`` hidden states to float32 logits ``[B, C]``;
Dense layers compute in ``dtype`` with float32 parameters.
"""
from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp

from lcl_jax import choices
from lcl_jax.models.config import EncoderConfig
from lcl_jax.models.encoder import BertPooler

Array = jax.Array
DType = Any

HEAD_INITS = ("hf", "torch")
FEATURE_POOLINGS = choices.FEATURE_POOLINGS  # (written once in lcl_jax.choices)


@flax.struct.dataclass
class ClassifierOutput:
  """What every classifier returns.

  Attributes:
    logits: float32 ``[B, C]``.
    features: float32 ``[B, H]``, the last layer's [CLS] hidden state (or its
      masked token mean, see `pool_features`), unnormalised (the contrastive
      losses normalise).
    aux_logits: float32 ``[B, G]`` of the auxiliary head (seed 004's coarse labels;
      the label-attention head's group scores) when the classifier has one
      (``num_aux_classes > 0``), else None.
  """

  logits: Array
  features: Array
  aux_logits: Array | None = None


def pool_features(hidden_states: Array, attention_mask: Array, pooling: str = "cls") -> Array:
  """Sentence features for the contrastive losses from the last hidden states.

  Args:
    hidden_states: ``[B, T, H]`` (any float dtype).
    attention_mask: ``[B, T]``, nonzero on real tokens, 0 on padding.
    pooling: ``"cls"`` -- the first token's state (the LCL paper, the
      release's ``last_hidden_state[:, 0]``); ``"mean"`` -- the mean over the
      non-padding tokens (seed 001's PyTorch re-implementation). An
      all-padding row gives zeros under ``"mean"``.

  Returns:
    float32 ``[B, H]``.

  Raises:
    ValueError: unknown ``pooling`` or mismatched shapes.
  """
  if pooling not in FEATURE_POOLINGS:
    raise ValueError(f"feature pooling {pooling!r}; expected one of {FEATURE_POOLINGS}")
  if hidden_states.ndim != 3 or tuple(attention_mask.shape) != tuple(hidden_states.shape[:2]):
    raise ValueError(f"pool_features: hidden_states {hidden_states.shape} and attention_mask "
                     f"{attention_mask.shape} must be [B, T, H] and [B, T]")
  hidden = hidden_states.astype(jnp.float32)
  if pooling == "cls":
    return hidden[:, 0]
  mask = (jnp.asarray(attention_mask) > 0).astype(jnp.float32)
  total = jnp.einsum("bth,bt->bh", hidden, mask)
  count = jnp.sum(mask, axis=1, keepdims=True)
  return total / jnp.maximum(count, 1.0)


def dense_initializers(init: str, *, fan_in: int, std: float) -> dict[str, Any]:
  """Kernel/bias initialisers of a new head layer.

  Args:
    init: ``"hf"`` -- transformers' ``_init_weights``: kernel ~ normal(std),
      bias 0; ``"torch"`` -- ``torch.nn.Linear.reset_parameters``, as the
      authors' release leaves its own head layers (``pooler_fc``, ``label``):
      kernel ~ kaiming_uniform(a=sqrt(5)) = U(±1/sqrt(fan_in)), bias ~
      U(±1/sqrt(fan_in)). (`TrainConfig.head_init` names them 'normal_0.02'
      and 'torch_default'.)
    fan_in: input width of the layer.
    std: the normal's standard deviation (``config.initializer_range``).
  """
  if init == "hf":
    return {"kernel_init": nn.initializers.normal(std), "bias_init": nn.initializers.zeros}
  if init == "torch":
    bound = 1.0 / math.sqrt(fan_in)

    def bias_init(key: Array, shape: tuple[int, ...], dtype: DType = jnp.float32) -> Array:
      return jax.random.uniform(key, shape, dtype, -bound, bound)

    # variance_scaling(1/3, fan_in, uniform) is U(±sqrt(3 * (1/3) / fan_in)).
    return {"kernel_init": nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform"),
            "bias_init": bias_init}
  raise ValueError(f"head init {init!r}; expected one of {HEAD_INITS}")


def resolve_classifier_dropout(config: EncoderConfig, classifier_dropout: float | None) -> float:
  """transformers' rule: the explicit value, else config.classifier_dropout, else hidden dropout."""
  if classifier_dropout is not None:
    rate = classifier_dropout
  elif config.classifier_dropout is not None:
    rate = config.classifier_dropout
  else:
    rate = config.hidden_dropout_prob
  if not 0.0 <= rate < 1.0:
    raise ValueError(f"classifier_dropout must be in [0, 1), got {rate}")
  return rate


def _check_hidden(hidden_states: Array, config: EncoderConfig) -> None:
  if hidden_states.ndim != 3 or hidden_states.shape[-1] != config.hidden_size:
    raise ValueError(f"head input must be [batch, length, {config.hidden_size}] hidden "
                     f"states, got shape {hidden_states.shape}")


class PaperHead(nn.Module):
  """The release's primary-encoder head (params ``pooler_fc``, ``label``).

  Attributes:
    config: encoder configuration (hidden size, initializer_range).
    num_classes: C.
    dropout_rate: the release's 0.1, used after ``pooler_fc`` and on the logits.
    init_scheme: ``"hf"`` or ``"torch"`` (see `dense_initializers`).
    dtype: compute dtype.
  """

  config: EncoderConfig
  num_classes: int
  dropout_rate: float = 0.1
  init_scheme: str = "hf"
  dtype: DType = jnp.float32

  @nn.compact
  def __call__(self, hidden_states: Array, *, deterministic: bool = True) -> Array:
    _check_hidden(hidden_states, self.config)
    inits = dense_initializers(self.init_scheme, fan_in=self.config.hidden_size,
                               std=self.config.initializer_range)
    x = hidden_states[:, 0]
    x = nn.Dense(self.config.hidden_size, dtype=self.dtype, name="pooler_fc", **inits)(x)
    x = nn.Dropout(self.dropout_rate)(x, deterministic=deterministic)
    x = jax.nn.relu(x)
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name="label", **inits)(x)
    logits = nn.Dropout(self.dropout_rate)(logits, deterministic=deterministic)
    return logits.astype(jnp.float32)


class ElectraClassificationHead(nn.Module):
  """transformers' ``ElectraClassificationHead`` (params ``dense``, ``out_proj``).

  [CLS] -> dropout -> dense -> `activation` -> dropout -> out_proj.
  """

  config: EncoderConfig
  num_classes: int
  dropout_rate: float = 0.1
  init_scheme: str = "hf"
  dtype: DType = jnp.float32

  @staticmethod
  def activation(x: Array) -> Array:
    # transformers uses get_activation("gelu") here whatever hidden_act says: exact GELU.
    return jax.nn.gelu(x, approximate=False)

  @nn.compact
  def __call__(self, hidden_states: Array, *, deterministic: bool = True) -> Array:
    _check_hidden(hidden_states, self.config)
    inits = dense_initializers(self.init_scheme, fan_in=self.config.hidden_size,
                               std=self.config.initializer_range)
    x = hidden_states[:, 0]
    x = nn.Dropout(self.dropout_rate)(x, deterministic=deterministic)
    x = nn.Dense(self.config.hidden_size, dtype=self.dtype, name="dense", **inits)(x)
    x = self.activation(x.astype(jnp.float32)).astype(self.dtype)
    x = nn.Dropout(self.dropout_rate)(x, deterministic=deterministic)
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name="out_proj", **inits)(x)
    return logits.astype(jnp.float32)


class RobertaClassificationHead(ElectraClassificationHead):
  """transformers' ``RobertaClassificationHead``: the ELECTRA head with tanh."""

  @staticmethod
  def activation(x: Array) -> Array:
    return jnp.tanh(x)


class BertClassificationHead(nn.Module):
  """``BertForSequenceClassification``'s head (params ``pooler/dense``, ``classifier``)."""

  config: EncoderConfig
  num_classes: int
  dropout_rate: float = 0.1
  init_scheme: str = "hf"
  dtype: DType = jnp.float32

  @nn.compact
  def __call__(self, hidden_states: Array, *, deterministic: bool = True) -> Array:
    _check_hidden(hidden_states, self.config)
    pooled = BertPooler(self.config, self.dtype, name="pooler")(hidden_states)
    pooled = nn.Dropout(self.dropout_rate)(pooled, deterministic=deterministic)
    inits = dense_initializers(self.init_scheme, fan_in=self.config.hidden_size,
                               std=self.config.initializer_range)
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name="classifier", **inits)(pooled)
    return logits.astype(jnp.float32)


class _MultiLabelStudyHead(nn.Module):
  """Fields and input handling shared by the issue-9 heads (same fields as the heads above)."""

  config: EncoderConfig
  num_classes: int
  dropout_rate: float = 0.0
  init_scheme: str = "hf"
  dtype: DType = jnp.float32

  @nn.nowrap
  def cls_and_initializers(self, hidden_states: Array) -> tuple[Array, dict[str, Any]]:
    """The [CLS] vectors [B, H] and the Dense initialisers of `init_scheme`."""
    _check_hidden(hidden_states, self.config)
    return hidden_states[:, 0], dense_initializers(
        self.init_scheme, fan_in=self.config.hidden_size, std=self.config.initializer_range)


class DirectHead(_MultiLabelStudyHead):
  """Seed 000's direct-implementation head (params ``dense``, ``out``).

  [CLS] -> Dense(H) + tanh -> dropout(p) -> Dense(C) (Huang & Wen, Sec. 5.2.1: "a
  linear layer with Tanh activation ... connected to our output layers ... a dropout
  layer ... 0.3"; sigmoid + BCE on the logits). Default p = 0.3.
  """

  dropout_rate: float = 0.3

  @nn.compact
  def __call__(self, hidden_states: Array, *, deterministic: bool = True) -> Array:
    x, inits = self.cls_and_initializers(hidden_states)
    x = nn.Dense(self.config.hidden_size, dtype=self.dtype, name="dense", **inits)(x)
    x = jnp.tanh(x)
    x = nn.Dropout(self.dropout_rate)(x, deterministic=deterministic)
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name="out", **inits)(x)
    return logits.astype(jnp.float32)


class DenseStackHead(_MultiLabelStudyHead):
  """Seed 003's "DenseLayer(1)" / "DenseLayer(2)" heads (params ``hidden``, ``out``).

  The poster names only the number of dense layers and the dropout; lcl_jax reads
  DenseLayer(1) as [CLS] -> dropout(p) -> Dense(C) and DenseLayer(2) as [CLS] ->
  dropout(p) -> Dense(H) -> ReLU -> dropout(p) -> Dense(C). Default p = 0 (the rows
  without "Dropout(...)").

  Attributes:
    num_layers: 1 or 2.
  """

  num_layers: int = 1

  @nn.compact
  def __call__(self, hidden_states: Array, *, deterministic: bool = True) -> Array:
    if self.num_layers not in (1, 2):
      raise ValueError(f"DenseStackHead.num_layers={self.num_layers}; expected 1 or 2")
    x, inits = self.cls_and_initializers(hidden_states)
    x = nn.Dropout(self.dropout_rate)(x, deterministic=deterministic)
    if self.num_layers == 2:
      x = jax.nn.relu(nn.Dense(self.config.hidden_size, dtype=self.dtype, name="hidden",
                               **inits)(x))
      x = nn.Dropout(self.dropout_rate)(x, deterministic=deterministic)
    logits = nn.Dense(self.num_classes, dtype=self.dtype, name="out", **inits)(x)
    return logits.astype(jnp.float32)


class DenseLayer1Head(DenseStackHead):
  """Seed 003's DenseLayer(1): [CLS] -> dropout(p) -> Dense(C)."""
  num_layers: int = 1


class DenseLayer2Head(DenseStackHead):
  """Seed 003's DenseLayer(2): [CLS] -> dropout(p) -> Dense(H) -> ReLU -> dropout(p) -> Dense(C)."""
  num_layers: int = 2
