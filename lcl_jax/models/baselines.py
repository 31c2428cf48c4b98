"""Non-transformer baselines of seeds 000 and 001: biLSTM, RNN, GRU and the character CNN.

Every module has the transformer classifiers' call signature and output, so the one
trainer (`lcl_jax.train`) trains them with CE/BCE (and, their ``features`` being a
sentence vector, SCL/LCL too)::

  module.apply({'params': params}, input_ids, attention_mask, token_type_ids=None,
               deterministic=True, rngs={'dropout': key})
  -> ClassifierOutput(logits [B, C] float32, features [B, F] float32)

* `RecurrentClassifier` -- word embeddings -> ``num_layers`` recurrent layers
  (``flax.linen.RNN`` over an LSTM / GRU / Elman cell; bidirectional or not) ->
  [optional hidden dense + ReLU] -> dropout -> linear. Padding is handled by
  ``seq_lengths`` (the scan stops updating the carry past a row's length; the
  backward direction starts at each row's last real token), so a padded row gives
  exactly what the row alone gives. ``features`` = the last layer's final states
  (forward at the last real token, backward at the first) concatenated.
  - ``bilstm`` (seed 000 §5.1): 200-d embeddings (GloVe Twitter 200-d when a file
    is given), 2 bidirectional LSTM layers of 256, dropout 0.7, linear.
  - ``rnn`` / ``gru`` (seed 001 §3.1, the Made With ML lesson it cites): 100-d
    embeddings, one unidirectional Elman RNN / GRU layer of 128, dense 100 + ReLU,
    dropout 0.1, linear.
* `CharCNN` -- Zhang, Zhao & LeCun (2015), the small model (seed 000 §2.1):
  one-hot characters of the 70-character alphabet (``lcl_jax.data.text_tokenizers``;
  id 0 -- padding or a character outside the alphabet -- is the all-zero vector),
  input length 1014, six 1-D convolutions of 256 features (kernels 7, 7, 3, 3, 3, 3;
  max-pooling 3 after the 1st, 2nd and 6th), then dense 1024 -> dropout 0.5 ->
  dense 1024 -> dropout 0.5 -> linear; weights ~ normal(0, 0.05) as the paper's
  small model. ``features`` = the second 1024-d layer.

Recurrences run as `flax.linen.scan` (no Python loop over time steps); parameters and
the recurrent state are float32.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lcl_jax import choices
from lcl_jax.models.heads import ClassifierOutput

Array = jax.Array

CELLS = ("lstm", "gru", "rnn")


@dataclasses.dataclass(frozen=True)
class BaselineSpec:
  """A baseline's module class and its document's hyper-parameters."""

  kind: str  # "recurrent" | "charcnn"
  options: Mapping[str, Any]
  source: str


BASELINES: dict[str, BaselineSpec] = {
    "bilstm": BaselineSpec("recurrent", dict(cell="lstm", embedding_dim=200, hidden_size=256,
                                             num_layers=2, bidirectional=True,
                                             dense_size=None, dropout_rate=0.7),
                           "seed 000 §5.1 (GoEmotions biLSTM)"),
    "gru": BaselineSpec("recurrent", dict(cell="gru", embedding_dim=100, hidden_size=128,
                                          num_layers=1, bidirectional=False, dense_size=100,
                                          dropout_rate=0.1),
                        "seed 001 §3.1 (Made With ML RNN lesson)"),
    "rnn": BaselineSpec("recurrent", dict(cell="rnn", embedding_dim=100, hidden_size=128,
                                          num_layers=1, bidirectional=False, dense_size=100,
                                          dropout_rate=0.1),
                        "seed 001 §3.1 (Made With ML RNN lesson)"),
    "charcnn": BaselineSpec("charcnn", dict(), "Zhang et al. 2015 small model (seed 000 §2.1)"),
}
# The names are written once in lcl_jax.choices (TrainConfig reads them at --help time).
if tuple(BASELINES) != choices.BASELINE_ENCODERS:
  raise AssertionError(f"BASELINES {tuple(BASELINES)} != lcl_jax.choices.BASELINE_ENCODERS "
                       f"{choices.BASELINE_ENCODERS}")


def is_baseline(name: str | None) -> bool:
  """Whether an ``--encoder`` name is one of the non-transformer baselines."""
  return name in BASELINES


def _make_cell(cell: str, features: int, name: str | None = None) -> nn.RNNCellBase:
  """The recurrent cell (its parameters live under ``name`` in the caller's scope)."""
  if cell == "lstm":
    return nn.LSTMCell(features, param_dtype=jnp.float32, name=name)
  if cell == "gru":
    return nn.GRUCell(features, param_dtype=jnp.float32, name=name)
  if cell == "rnn":
    return nn.SimpleCell(features, param_dtype=jnp.float32, name=name)
  raise ValueError(f"cell={cell!r}; expected one of {CELLS}")


def _final_hidden(carry: Any, cell: str) -> Array:
  # LSTMCell's carry is (c, h); GRU and Elman cells carry h itself.
  return carry[1] if cell == "lstm" else carry


def _lengths(attention_mask: Array) -> Array:
  return jnp.sum(jnp.asarray(attention_mask) > 0, axis=-1).astype(jnp.int32)


class RecurrentClassifier(nn.Module):
  """Embedding -> stacked (bi)RNN -> [dense + ReLU] -> dropout -> linear.

  Attributes:
    vocab_size: rows of the embedding table (the word tokenizer's vocabulary).
    num_classes: C.
    cell: ``"lstm"``, ``"gru"`` or ``"rnn"`` (Elman, tanh).
    embedding_dim, hidden_size, num_layers, bidirectional: the architecture.
    dense_size: width of a hidden ReLU layer before the output (None: none).
    dropout_rate: dropout before the output layer (and after the hidden dense).
  """

  vocab_size: int
  num_classes: int
  cell: str = "lstm"
  embedding_dim: int = 200
  hidden_size: int = 256
  num_layers: int = 2
  bidirectional: bool = True
  dense_size: int | None = None
  dropout_rate: float = 0.7

  @nn.compact
  def __call__(self, input_ids: Array, attention_mask: Array,
               token_type_ids: Array | None = None, *,
               deterministic: bool = True) -> ClassifierOutput:
    """Logits ``[B, C]`` and the final states ``[B, H * directions]`` of a padded batch.

    Rows are right-padded; ``attention_mask`` gives each row's length (>= 1).
    """
    del token_type_ids
    if self.cell not in CELLS:
      raise ValueError(f"cell={self.cell!r}; expected one of {CELLS}")
    lengths = _lengths(attention_mask)
    x = nn.Embed(self.vocab_size, self.embedding_dim, param_dtype=jnp.float32,
                 name="embedding")(input_ids)
    finals = []
    for layer in range(self.num_layers):
      forward = nn.RNN(_make_cell(self.cell, self.hidden_size, f"forward_{layer}"),
                       return_carry=True)
      carry, out = forward(x, seq_lengths=lengths)
      finals = [_final_hidden(carry, self.cell)]
      if self.bidirectional:
        backward = nn.RNN(_make_cell(self.cell, self.hidden_size, f"backward_{layer}"),
                          return_carry=True, reverse=True, keep_order=True)
        back_carry, back_out = backward(x, seq_lengths=lengths)
        finals.append(_final_hidden(back_carry, self.cell))
        out = jnp.concatenate([out, back_out], axis=-1)
      x = out
    features = jnp.concatenate(finals, axis=-1).astype(jnp.float32)
    h = features
    if self.dense_size is not None:
      h = jax.nn.relu(nn.Dense(self.dense_size, name="dense")(h))
    h = nn.Dropout(self.dropout_rate)(h, deterministic=deterministic)
    logits = nn.Dense(self.num_classes, name="output")(h)
    return ClassifierOutput(logits=logits.astype(jnp.float32), features=features)


# Zhang et al. (2015), Table 1 (small model): (kernel, max-pool) per convolution.
CHARCNN_CONVOLUTIONS = ((7, 3), (7, 3), (3, None), (3, None), (3, None), (3, 3))


def charcnn_frames(sequence_length: int) -> int:
  """Time steps left after the six convolutions and three poolings (1014 -> 34)."""
  frames = sequence_length
  for kernel, pool in CHARCNN_CONVOLUTIONS:
    frames = frames - kernel + 1
    if pool:
      frames //= pool
  return frames


class CharCNN(nn.Module):
  """Zhang et al. (2015)'s character-level CNN (small: 256 / 1024 features).

  Attributes:
    num_classes: C.
    alphabet_size: one-hot width (70; ids 1..70, 0 = zero vector).
    sequence_length: characters per input (1014); longer rows are cut, shorter
      ones padded with zero vectors.
    conv_features, dense_size, dropout_rate, init_std: the small model's 256,
      1024, 0.5 and normal(0, 0.05) initialisation.
  """

  num_classes: int
  alphabet_size: int = 70
  sequence_length: int = 1014
  conv_features: int = 256
  dense_size: int = 1024
  dropout_rate: float = 0.5
  init_std: float = 0.05

  @nn.compact
  def __call__(self, input_ids: Array, attention_mask: Array,
               token_type_ids: Array | None = None, *,
               deterministic: bool = True) -> ClassifierOutput:
    """Logits ``[B, C]`` and the last hidden dense layer ``[B, dense_size]``."""
    del token_type_ids
    if charcnn_frames(self.sequence_length) < 1:
      raise ValueError(f"sequence_length={self.sequence_length} is too short for the six "
                       "convolutions (needs at least 96)")
    ids = jnp.where(jnp.asarray(attention_mask) > 0, input_ids, 0)
    width = ids.shape[1]
    if width >= self.sequence_length:
      ids = ids[:, :self.sequence_length]
    else:
      ids = jnp.pad(ids, ((0, 0), (0, self.sequence_length - width)))
    # jax.nn.one_hot gives the zero vector for the out-of-range index -1 (id 0).
    x = jax.nn.one_hot(ids - 1, self.alphabet_size, dtype=jnp.float32)
    init = nn.initializers.normal(self.init_std)
    for index, (kernel, pool) in enumerate(CHARCNN_CONVOLUTIONS):
      x = nn.Conv(self.conv_features, (kernel,), padding="VALID", kernel_init=init,
                  name=f"conv_{index}")(x)
      x = jax.nn.relu(x)
      if pool:
        x = nn.max_pool(x, (pool,), strides=(pool,))
    x = x.reshape(x.shape[0], -1)
    x = jax.nn.relu(nn.Dense(self.dense_size, kernel_init=init, name="dense_0")(x))
    x = nn.Dropout(self.dropout_rate)(x, deterministic=deterministic)
    x = jax.nn.relu(nn.Dense(self.dense_size, kernel_init=init, name="dense_1")(x))
    features = x
    x = nn.Dropout(self.dropout_rate)(x, deterministic=deterministic)
    logits = nn.Dense(self.num_classes, kernel_init=init, name="output")(x)
    return ClassifierOutput(logits=logits.astype(jnp.float32),
                            features=features.astype(jnp.float32))


def build_baseline(name: str, *, vocab_size: int, num_classes: int, rng: Array,
                   embedding_matrix: np.ndarray | None = None,
                   **overrides: Any) -> tuple[nn.Module, dict[str, Any]]:
  """A baseline module and freshly initialised parameters.

  Args:
    name: a key of `BASELINES` (``bilstm``, ``gru``, ``rnn``, ``charcnn``).
    vocab_size: the word tokenizer's vocabulary size (recurrent baselines;
      ignored by ``charcnn``, whose input is the fixed alphabet).
    num_classes: C.
    rng: PRNG key of the initialisation.
    embedding_matrix: float ``[vocab_size, D]`` initial word embeddings (GloVe,
      `lcl_jax.data.glove.embedding_matrix`); D replaces ``embedding_dim``.
    **overrides: module fields to change (e.g. ``hidden_size`` in tests).

  Raises:
    ValueError: unknown name, or an embedding matrix of the wrong shape.
  """
  if name not in BASELINES:
    raise ValueError(f"unknown baseline {name!r}; expected one of {sorted(BASELINES)}")
  spec = BASELINES[name]
  options = {**spec.options, **overrides}
  if spec.kind == "charcnn":
    if embedding_matrix is not None:
      raise ValueError("charcnn reads one-hot characters; it takes no word embeddings")
    module = CharCNN(num_classes, **options)
    ids = jnp.zeros((1, 1), jnp.int32)
  else:
    if embedding_matrix is not None:
      embedding_matrix = np.asarray(embedding_matrix, np.float32)
      if embedding_matrix.ndim != 2 or embedding_matrix.shape[0] != vocab_size:
        raise ValueError(f"embedding_matrix has shape {embedding_matrix.shape}; expected "
                         f"[vocab_size={vocab_size}, dim]")
      options["embedding_dim"] = int(embedding_matrix.shape[1])
    module = RecurrentClassifier(vocab_size, num_classes, **options)
    ids = jnp.zeros((1, 2), jnp.int32)
  params = jax.jit(module.init)(rng, ids, jnp.ones_like(ids))["params"]
  if embedding_matrix is not None:
    params = dict(params)
    params["embedding"] = {"embedding": jnp.asarray(embedding_matrix)}
  return module, params
