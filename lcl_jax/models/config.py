"""Encoder configuration read from a Hugging Face ``config.json``.

`EncoderConfig` holds exactly the fields the Flax encoder needs for the
architectures this package supports: BERT (``model_type == "bert"``, also
multilingual BERT, which differs only in ``vocab_size``), the ELECTRA
discriminator/generator (``"electra"``) and the RoBERTa family (``"roberta"`` --
RoBERTa and BERTweet -- and ``"xlm-roberta"``). The RoBERTa family is BERT's
post-LayerNorm encoder with two differences, both switched on by the model type:
position ids start past the padding index (``pad_token_id + 1``, padding tokens
get position ``pad_token_id``; transformers' ``create_position_ids_from_input_ids``)
and the checkpoints store the base model under ``roberta.``. Everything else in a
``config.json`` is kept verbatim in `EncoderConfig.extra` so that
`save_pretrained` can write it back unchanged.
"""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from collections.abc import Mapping
from typing import Any

SUPPORTED_MODEL_TYPES = ("bert", "electra", "roberta", "xlm-roberta")

# Model types whose position ids are offset past the padding index (RoBERTa family).
ROBERTA_MODEL_TYPES = ("roberta", "xlm-roberta")

# Prefix of the base-model tensors in transformers' headed checkpoints
# (``*PreTrainedModel.base_model_prefix``).
BASE_MODEL_PREFIXES = {"bert": "bert", "electra": "electra", "roberta": "roberta",
                       "xlm-roberta": "roberta"}

# Hugging Face activation names (transformers.activations.ACT2FN) this package
# implements, with the jax function each maps to (see encoder.activation_fn).
SUPPORTED_ACTIVATIONS = (
    "gelu", "gelu_new", "gelu_fast", "gelu_pytorch_tanh", "quick_gelu", "relu",
    "silu", "swish", "tanh",
)

# Keys of a config.json that describe the architecture (read into fields).
_FIELD_KEYS = (
    "model_type", "vocab_size", "hidden_size", "embedding_size", "num_hidden_layers",
    "num_attention_heads", "intermediate_size", "hidden_act", "max_position_embeddings",
    "type_vocab_size", "layer_norm_eps", "hidden_dropout_prob",
    "attention_probs_dropout_prob", "classifier_dropout", "pad_token_id",
    "initializer_range",
)


class ConfigError(ValueError):
  """A config.json that this package cannot build an encoder from."""


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
  """Architecture of a BERT, ELECTRA or RoBERTa-family encoder (HF field names).

  Attributes:
    model_type: one of `SUPPORTED_MODEL_TYPES`.
    vocab_size: rows of the word-embedding table.
    hidden_size: width H of the transformer layers.
    embedding_size: width E of the embedding tables; ELECTRA projects E -> H
      with ``embeddings_project`` when E != H (electra-small). Equals
      ``hidden_size`` for BERT.
    num_hidden_layers: number of transformer layers.
    num_attention_heads: attention heads per layer (must divide H).
    intermediate_size: width of the feed-forward layer.
    hidden_act: Hugging Face activation name of the feed-forward layer
      (``"gelu"`` is the exact erf GELU, ``"gelu_new"`` the tanh approximation).
    max_position_embeddings: rows of the absolute position table; the longest
      input is this minus `position_offset` (RoBERTa's 514 rows give 512).
    type_vocab_size: rows of the token-type (segment) table.
    layer_norm_eps: LayerNorm epsilon.
    hidden_dropout_prob: dropout on embeddings and on every sub-layer output.
    attention_probs_dropout_prob: dropout on the attention probabilities.
    classifier_dropout: dropout of the sequence-classification heads; ``None``
      means `hidden_dropout_prob` (as transformers does).
    pad_token_id: id of the padding token.
    initializer_range: standard deviation of the normal initialiser for new
      weights (heads), as transformers' ``_init_weights``.
    extra: every other key of the source config.json, kept for round trips.
  """

  model_type: str
  vocab_size: int
  hidden_size: int
  num_hidden_layers: int
  num_attention_heads: int
  intermediate_size: int
  embedding_size: int | None = None
  hidden_act: str = "gelu"
  max_position_embeddings: int = 512
  type_vocab_size: int = 2
  layer_norm_eps: float = 1e-12
  hidden_dropout_prob: float = 0.1
  attention_probs_dropout_prob: float = 0.1
  classifier_dropout: float | None = None
  pad_token_id: int = 0
  initializer_range: float = 0.02
  extra: Mapping[str, Any] = dataclasses.field(default_factory=dict, compare=False,
                                               repr=False)

  def __post_init__(self):
    if self.embedding_size is None:
      object.__setattr__(self, "embedding_size", self.hidden_size)
    self.validate()

  @property
  def head_dim(self) -> int:
    """Width of one attention head, H / num_attention_heads."""
    return self.hidden_size // self.num_attention_heads

  @property
  def has_embeddings_project(self) -> bool:
    """Whether ELECTRA's E -> H projection exists (embedding_size != hidden_size)."""
    return self.embedding_size != self.hidden_size

  @property
  def is_roberta(self) -> bool:
    """RoBERTa family: positions offset past the padding index, ``roberta.`` prefix."""
    return self.model_type in ROBERTA_MODEL_TYPES

  @property
  def position_offset(self) -> int:
    """Rows of the position table before the first real position (0 or pad_token_id + 1)."""
    return self.pad_token_id + 1 if self.is_roberta else 0

  @property
  def max_length(self) -> int:
    """The longest input in tokens (`max_position_embeddings` - `position_offset`)."""
    return self.max_position_embeddings - self.position_offset

  @property
  def base_model_prefix(self) -> str:
    """``"bert"``, ``"electra"`` or ``"roberta"``: the base model's name in headed checkpoints."""
    return BASE_MODEL_PREFIXES[self.model_type]

  def validate(self) -> None:
    """Raises `ConfigError` naming the offending field."""
    if self.model_type not in SUPPORTED_MODEL_TYPES:
      raise ConfigError(
          f"model_type={self.model_type!r} is not supported; this encoder implements "
          f"{SUPPORTED_MODEL_TYPES} (BERT, the ELECTRA discriminator, RoBERTa family)")
    if self.model_type != "electra" and self.embedding_size != self.hidden_size:
      raise ConfigError(
          f"{self.model_type} has no embedding projection: embedding_size={self.embedding_size} must "
          f"equal hidden_size={self.hidden_size}")
    for name in ("vocab_size", "hidden_size", "embedding_size", "num_hidden_layers",
                 "num_attention_heads", "intermediate_size", "max_position_embeddings",
                 "type_vocab_size"):
      value = getattr(self, name)
      if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    if self.hidden_size % self.num_attention_heads:
      raise ConfigError(
          f"hidden_size={self.hidden_size} is not a multiple of "
          f"num_attention_heads={self.num_attention_heads}")
    if self.hidden_act not in SUPPORTED_ACTIVATIONS:
      raise ConfigError(
          f"hidden_act={self.hidden_act!r} is not supported; expected one of "
          f"{SUPPORTED_ACTIVATIONS}")
    for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout"):
      value = getattr(self, name)
      if value is not None and not 0.0 <= value < 1.0:
        raise ConfigError(f"{name} must be in [0, 1), got {value!r}")
    if self.max_length < 1:
      raise ConfigError(
          f"max_position_embeddings={self.max_position_embeddings} leaves no position "
          f"after the RoBERTa padding offset pad_token_id + 1 = {self.position_offset}")
    if not self.layer_norm_eps > 0:
      raise ConfigError(f"layer_norm_eps must be positive, got {self.layer_norm_eps!r}")

  def replace(self, **overrides: Any) -> EncoderConfig:
    """A copy with some fields changed (validated), e.g. to switch off dropout."""
    unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(self)})
    if unknown:
      raise ConfigError(f"unknown EncoderConfig field(s) {unknown}")
    return dataclasses.replace(self, **overrides)

  @classmethod
  def from_dict(cls, raw: Mapping[str, Any], *, source: str = "config") -> EncoderConfig:
    """Builds a config from the parsed JSON of a Hugging Face config.json.

    Args:
      raw: the parsed config.json.
      source: where it came from, used in error messages.

    Raises:
      ConfigError: unsupported model type, position embedding type, decoder
        configuration or a missing/invalid field (the message names `source`).
    """
    model_type = raw.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
      raise ConfigError(
          f"{source}: model_type={model_type!r} is not supported; this encoder implements "
          f"{SUPPORTED_MODEL_TYPES} (BERT, the ELECTRA discriminator, RoBERTa family)")
    position_type = raw.get("position_embedding_type", "absolute")
    if position_type != "absolute":
      raise ConfigError(
          f"{source}: position_embedding_type={position_type!r} is not supported; only "
          "'absolute' position embeddings are implemented")
    for flag in ("is_decoder", "add_cross_attention"):
      if raw.get(flag):
        raise ConfigError(f"{source}: {flag}=true is not supported (encoder only)")
    required = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                "intermediate_size")
    missing = [key for key in required if key not in raw]
    if missing:
      raise ConfigError(f"{source}: missing required key(s) {missing}")
    # A null value means "the default" (e.g. classifier_dropout, embedding_size).
    fields = {key: raw[key] for key in _FIELD_KEYS if raw.get(key) is not None}
    extra = {key: value for key, value in raw.items() if key not in _FIELD_KEYS}
    try:
      return cls(**fields, extra=extra)
    except ConfigError as error:
      raise ConfigError(f"{source}: {error}") from None

  @classmethod
  def from_json_file(cls, path: str | os.PathLike[str]) -> EncoderConfig:
    """Reads a Hugging Face config.json file."""
    path = pathlib.Path(path)
    try:
      raw = json.loads(path.read_text())
    except FileNotFoundError:
      raise FileNotFoundError(f"no config.json at {path}") from None
    except json.JSONDecodeError as error:
      raise ConfigError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(raw, dict):
      raise ConfigError(f"{path}: expected a JSON object, got {type(raw).__name__}")
    return cls.from_dict(raw, source=str(path))

  def to_dict(self) -> dict[str, Any]:
    """The Hugging Face config.json content (extra keys kept, fields updated)."""
    out = dict(self.extra)
    for key in _FIELD_KEYS:
      out[key] = getattr(self, key)
    if self.model_type != "electra":
      del out["embedding_size"]
    out["position_embedding_type"] = "absolute"
    return out
