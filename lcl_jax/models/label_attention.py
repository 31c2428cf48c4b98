"""Label-embedding attention head (seed 004, Wang & Feng, Section 3.3; SpanEmo).

The input rows carry the label names as a fixed prefix (``[CLS] E_1 .. E_m [SEP] text
[SEP]``, built by `lcl_jax.data.label_inputs`); the encoder's self-attention lets each
label token attend to the text. This head reads the last hidden states at the label
positions:

1. **One vector per label.** A label whose name is several word pieces
   (BERT-uncased: ``nervous ##ness``) gets the *mean* of its pieces' last hidden states;
   a one-piece name its piece's state (then this is exactly SpanEmo's / the document's
   per-token score). Why the mean rather than the first piece: the first piece alone
   drops part of the name (``nervous`` without ``##ness``), the mean keeps every piece,
   does not depend on how a tokenizer orders a name's pieces, and has the same scale as a
   single piece's state.
2. **Score.** A feed-forward layer shared by all labels maps each label vector to that
   label's score: Dense(H) -> tanh -> dropout -> Dense(1) (SpanEmo's ``ffn``, 0.1
   dropout; the document says only "a feed forward layer"). Sharing it across labels
   makes a score a function of the label's own attended state: permuting the label
   block permutes the scores (up to what the position embeddings add).
3. **Auxiliary scores** (Section 3.5.1, optional): a *second* feed-forward layer of the
   same shape on the mean of the label vectors of each coarse group (e.g. Ekman's
   ``joy`` = the GoEmotions labels mapped to joy), one score per group.

Logits are float32 ``[B, C]`` (and ``[B, G]``); sigmoid + BCE (multi-label) or softmax
CE (single-label) are applied by the objective, as for every head. Parameters:
``scorer/{dense,out}`` (the auxiliary head, a second instance: the classifier's
``aux_head/scorer/{dense,out}``).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lcl_jax.models.config import EncoderConfig
from lcl_jax.models.heads import dense_initializers

Array = jax.Array
DType = Any


@dataclasses.dataclass(frozen=True)
class LabelLayout:
  """Where the label pieces sit in every input row (hashable: a Flax module attribute).

  Attributes:
    piece_positions: P row positions of the label pieces.
    piece_labels: the class id (0 .. C-1) of each piece; every class has >= 1 piece.
    num_labels: C.
    aux_groups: optional coarse groups for the auxiliary scores: for each of G groups,
      the class ids it pools (``()`` = no auxiliary head).
  """

  piece_positions: tuple[int, ...]
  piece_labels: tuple[int, ...]
  num_labels: int
  aux_groups: tuple[tuple[int, ...], ...] = ()

  def __post_init__(self):
    if len(self.piece_positions) != len(self.piece_labels) or not self.piece_positions:
      raise ValueError("LabelLayout: piece_positions and piece_labels must be non-empty "
                       "and of equal length")
    if sorted(set(self.piece_labels)) != list(range(self.num_labels)):
      raise ValueError(f"LabelLayout: piece_labels must cover every class 0..{self.num_labels - 1}"
                       f" (got {sorted(set(self.piece_labels))})")
    for g, group in enumerate(self.aux_groups):
      if not group or any(not 0 <= c < self.num_labels for c in group):
        raise ValueError(f"LabelLayout: auxiliary group {g} = {group} must hold class ids "
                         f"in [0, {self.num_labels})")

  @property
  def min_length(self) -> int:
    """The shortest row that holds every label piece."""
    return max(self.piece_positions) + 1

  def pooling_matrix(self) -> np.ndarray:
    """float32 [C, P]: row c averages class c's pieces (1 / #pieces on them)."""
    matrix = np.zeros((self.num_labels, len(self.piece_labels)), np.float32)
    for p, c in enumerate(self.piece_labels):
      matrix[c, p] = 1.0
    return matrix / matrix.sum(axis=1, keepdims=True)

  def aux_matrix(self) -> np.ndarray:
    """float32 [G, C]: row g averages the label vectors of group g."""
    matrix = np.zeros((len(self.aux_groups), self.num_labels), np.float32)
    for g, group in enumerate(self.aux_groups):
      matrix[g, list(group)] = 1.0
    return matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1.0)

  @classmethod
  def from_block(cls, block: Any, *, aux_groups: Sequence[Sequence[int]] = ()) -> "LabelLayout":
    """From a `lcl_jax.data.label_inputs.LabelBlock` (duck-typed: no data import here)."""
    return cls(piece_positions=tuple(block.piece_positions),
               piece_labels=tuple(block.piece_labels), num_labels=block.num_labels,
               aux_groups=tuple(tuple(int(c) for c in g) for g in aux_groups))


class _LabelScorer(nn.Module):
  """Dense(H) -> tanh -> dropout -> Dense(1) on [B, N, H] -> float32 [B, N]."""

  config: EncoderConfig
  dropout_rate: float
  init_scheme: str
  dtype: DType

  @nn.compact
  def __call__(self, vectors: Array, *, deterministic: bool) -> Array:
    inits = dense_initializers(self.init_scheme, fan_in=self.config.hidden_size,
                               std=self.config.initializer_range)
    x = nn.Dense(self.config.hidden_size, dtype=self.dtype, name="dense", **inits)(vectors)
    x = jnp.tanh(x.astype(jnp.float32)).astype(self.dtype)
    x = nn.Dropout(self.dropout_rate)(x, deterministic=deterministic)
    return nn.Dense(1, dtype=self.dtype, name="out", **inits)(x)[..., 0].astype(jnp.float32)


class LabelAttentionHead(nn.Module):
  """Label-position scores (see the module docstring).

  Attributes:
    config: encoder configuration.
    num_classes: C (``layout.num_labels``), or G (``len(groups)``) for the auxiliary head.
    dropout_rate: the scorer's dropout (SpanEmo's 0.1 by default).
    init_scheme: ``"hf"`` or ``"torch"`` (`heads.dense_initializers`).
    dtype: compute dtype.
    layout: the label pieces' positions and classes (`LabelLayout`).
    groups: ``()`` -- one score per label (the main head); else the auxiliary head
      (Section 3.5.1): one score per group, from the mean of its labels' vectors.
  """

  config: EncoderConfig
  num_classes: int
  dropout_rate: float = 0.1
  init_scheme: str = "hf"
  dtype: DType = jnp.float32
  layout: LabelLayout | None = None
  groups: tuple[tuple[int, ...], ...] = ()

  @nn.nowrap
  def label_vectors(self, hidden_states: Array) -> Array:
    """float32 [B, C, H]: each label's mean piece state."""
    layout = self.layout
    if layout is None:
      raise ValueError("LabelAttentionHead needs a LabelLayout")
    expected = len(self.groups) if self.groups else layout.num_labels
    if expected != self.num_classes:
      raise ValueError(f"the label layout gives {expected} scores, the head has "
                       f"{self.num_classes} classes")
    if hidden_states.ndim != 3 or hidden_states.shape[-1] != self.config.hidden_size:
      raise ValueError(f"head input must be [batch, length, {self.config.hidden_size}], got "
                       f"{hidden_states.shape}")
    if hidden_states.shape[1] < layout.min_length:
      raise ValueError(f"rows of {hidden_states.shape[1]} tokens cannot hold the label block "
                       f"(its pieces reach position {layout.min_length - 1})")
    pieces = hidden_states[:, np.asarray(layout.piece_positions)].astype(jnp.float32)
    return jnp.einsum("bph,cp->bch", pieces, jnp.asarray(layout.pooling_matrix()))

  @nn.compact
  def __call__(self, hidden_states: Array, *, deterministic: bool = True) -> Array:
    """[B, T, H] -> float32 logits [B, C] (auxiliary head: [B, G])."""
    vectors = self.label_vectors(hidden_states)
    if self.groups:
      pooling = dataclasses.replace(self.layout, aux_groups=self.groups).aux_matrix()
      vectors = jnp.einsum("bch,gc->bgh", vectors, jnp.asarray(pooling))
    return _LabelScorer(self.config, self.dropout_rate, self.init_scheme, self.dtype,
                        name="scorer")(vectors.astype(self.dtype), deterministic=deterministic)
