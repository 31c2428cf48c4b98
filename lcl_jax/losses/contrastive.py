"""The dense contrastive losses: supervised contrastive (SupCon / SCL), label-aware
contrastive (LCL) and their multi-label versions, on ``[B, B]`` similarity matrices.

See :mod:`lcl_jax.losses` for the common contract (normalisation, ``valid`` masks,
dtypes, empty batches, temperature checks); :mod:`lcl_jax.losses.tiled` computes the
same values and gradients in ``O(B * tile_size)`` memory.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from lcl_jax.losses._checks import _check_contrastive_args, _compute_dtype

# Same as torch.nn.functional.normalize, used by the release on the [CLS] vector.
_NORMALIZE_EPS = 1e-12
_HIGHEST = jax.lax.Precision.HIGHEST


# --------------------------------------------------------------------------------------
# Shared numerics.
# --------------------------------------------------------------------------------------


def _normalized(embeddings: jax.Array, valid: jax.Array, dtype: np.dtype) -> jax.Array:
  """Row-wise L2 normalisation, zero (and gradient-free) on padded rows."""
  x = jnp.where(valid[:, None], jnp.asarray(embeddings).astype(dtype), 0)
  squared_norm = jnp.sum(x * x, axis=-1, keepdims=True)
  # NOTE: max(|x|^2, eps^2) keeps the all-zero row finite in value and gradient.
  return x * jax.lax.rsqrt(jnp.maximum(squared_norm, _NORMALIZE_EPS**2))


def _replicated(x: jax.Array) -> jax.Array:
  """`x` itself, or a replicated copy if its type carries an explicit sharding.

  The [B, B] pair matrices are built as (anchor rows) x (contrast columns). Under
  explicit sharding (``jax.make_mesh`` defaults to ``AxisType.Explicit``) a batch-
  sharded ``x @ x.T`` or ``y[:, None] == y[None, :]`` would ask for the batch mesh
  axis on both dimensions, which is illegal; replicating the column side keeps the
  result sharded over anchor rows (an all-gather of the [B, ...] column operand).
  With ``AxisType.Auto`` meshes or unsharded inputs this is a no-op and the SPMD
  partitioner decides.
  """
  sharding = getattr(jax.typeof(x), "sharding", None)
  if not isinstance(sharding, jax.sharding.NamedSharding):
    return x
  if all(entry is None for entry in sharding.spec):
    return x
  replicated = jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec())
  return jax.sharding.reshard(x, replicated)


def _scaled_similarity(unit: jax.Array, temperature: ArrayLike) -> jax.Array:
  """[B, B] cosine similarities divided by the temperature."""
  similarity = jnp.matmul(unit, _replicated(unit).T, precision=_HIGHEST)
  return similarity / jnp.asarray(temperature, dtype=unit.dtype)


def _pair_masks(valid: jax.Array) -> jax.Array:
  """[B, B] bool: both rows valid and k != i (the release's `logits_mask`)."""
  batch = valid.shape[0]
  return valid[:, None] & _replicated(valid)[None, :] & ~jnp.eye(batch, dtype=jnp.bool_)


def _same_label(labels: jax.Array) -> jax.Array:
  """[B, B] bool: y_i == y_k."""
  return labels[:, None] == _replicated(labels)[None, :]


def _share_a_label(members: jax.Array) -> jax.Array:
  """[B, B] bool: the multi-hot rows i and k have a class in common."""
  return jnp.matmul(members, _replicated(members).T, precision=_HIGHEST) > 0


def _masked_logsumexp(values: jax.Array, mask: jax.Array) -> jax.Array:
  """Row-wise log(sum_k mask_ik exp(values_ik)); 0 for rows with no term.

  Both the value and the gradient are finite for empty rows (double-`where` trick).
  """
  masked = jnp.where(mask, values, -jnp.inf)
  # `initial`: an empty batch ([0, 0]) has nothing to reduce.
  row_max = jax.lax.stop_gradient(jnp.max(masked, axis=-1, keepdims=True, initial=-jnp.inf))
  row_max = jnp.where(jnp.isfinite(row_max), row_max, 0)
  shifted = jnp.where(mask, values - row_max, 0)
  total = jnp.sum(jnp.where(mask, jnp.exp(shifted), 0), axis=-1)
  has_terms = total > 0
  return jnp.where(has_terms, jnp.log(jnp.where(has_terms, total, 1)), 0) + row_max[:, 0]


def _reduce_anchors(per_anchor: jax.Array, has_positive: jax.Array, reduction: str) -> jax.Array:
  """The loss from the [B] per-anchor terms L_i (zero where `has_positive` is False).

  'mean': sum_i L_i / N with N = the number of anchors with a positive (0 if N = 0);
  'sum': sum_i L_i (seed 001's L = sum_{i=1}^K -1/|P| L_i), i.e. N times the mean.
  """
  total = jnp.sum(per_anchor)
  if reduction == "sum":
    return total
  return total / jnp.maximum(jnp.sum(has_positive), 1).astype(per_anchor.dtype)


def _anchor_contrastive(
    similarity: jax.Array,
    denominator_mask: jax.Array,
    positive_mask: jax.Array,
    log_pair_weights: jax.Array | None,
    anchor_weights: jax.Array | None,
    reduction: str,
) -> jax.Array:
  """Mean (or sum) over anchors with positives of
  -a_i * mean_p [s_ip - log sum_k w_ik e^{s_ik}].

  Args:
    similarity: [B, B] scaled similarities s_ik.
    denominator_mask: [B, B] bool, the terms k of anchor i's denominator.
    positive_mask: [B, B] bool, the positives p of anchor i.
    log_pair_weights: [B, B] log w_ik inside the denominator, or None (all 1).
    anchor_weights: [B] weight a_i outside the log, or None (all 1).
    reduction: 'mean' or 'sum' over the anchors (`_reduce_anchors`).
  """
  denominator_logits = similarity if log_pair_weights is None else similarity + log_pair_weights
  log_denominator = _masked_logsumexp(denominator_logits, denominator_mask)
  num_positives = jnp.sum(positive_mask, axis=-1)
  has_positive = num_positives > 0
  positive_similarity = jnp.sum(jnp.where(positive_mask, similarity, 0), axis=-1)
  mean_positive_similarity = positive_similarity / jnp.where(has_positive, num_positives, 1)
  per_anchor = log_denominator - mean_positive_similarity
  if anchor_weights is not None:
    per_anchor = anchor_weights * per_anchor
  per_anchor = jnp.where(has_positive, per_anchor, 0)
  return _reduce_anchors(per_anchor, has_positive, reduction)


def _class_log_weights(weight_logits: jax.Array, valid: jax.Array, dtype: np.dtype) -> jax.Array:
  """log softmax of the weighting network's logits, [B, C], zero logits on padding."""
  logits = jnp.where(valid[:, None], jnp.asarray(weight_logits).astype(dtype), 0)
  return jax.nn.log_softmax(logits, axis=-1)


def _one_hot_in_range(labels: jax.Array, valid: jax.Array, num_classes: int, dtype: np.dtype):
  """One-hot [B, C] of the labels (0 on padding) and a [B] mask of in-range labels.

  Padded rows count as in range; an out-of-range label on a valid row has an all-zero
  one-hot row, which callers turn into a NaN result with :func:`_nan_unless`.
  """
  labels = jnp.where(valid, jnp.asarray(labels), 0)
  in_range = (labels >= 0) & (labels < num_classes)
  return jax.nn.one_hot(labels, num_classes, dtype=dtype), in_range


def _nan_unless(ok: jax.Array, value: jax.Array) -> jax.Array:
  """`value` if `ok`, else NaN (the gradient is unaffected where `ok`)."""
  return jnp.where(ok, value, jnp.nan)


def _nan_unless_positive(temperature: ArrayLike, loss: jax.Array) -> jax.Array:
  """`loss`, or NaN when a traced temperature is <= 0 (eager values were checked)."""
  return _nan_unless(jnp.asarray(temperature) > 0, loss)


def _mean_over_rows(per_row: jax.Array, valid: jax.Array) -> jax.Array:
  per_row = jnp.where(valid, per_row, 0)
  return jnp.sum(per_row) / jnp.maximum(jnp.sum(valid), 1).astype(per_row.dtype)


# --------------------------------------------------------------------------------------
# Contrastive losses.
# --------------------------------------------------------------------------------------


def supcon_loss(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    temperature: float | ArrayLike,
    valid: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Supervised contrastive loss (Khosla et al., 2020; Suresh & Ong, 2021, Eq. 2).

  With unit vectors h and s_ik = h_i . h_k / temperature, for every valid anchor i
  with positives P_i = {p != i : y_p = y_i} (the augmented view included) and
  denominator set A_i = {k != i}:

    L_i = -1/|P_i| sum_{p in P_i} log( exp(s_ip) / sum_{k in A_i} exp(s_ik) ),

  and the loss is the mean of L_i over anchors with |P_i| > 0 (0 if there is none).
  This is the SCL term of Gunel et al. (2021) and the release's ``SupConLoss``.
  ``reduction='sum'`` gives sum_i L_i instead: Modarres & Raeisi (seed 001), Sec. 3.3,
  L_SCL = sum_{i=1}^K L_i over the K rows of a batch (= N x the mean, N the number of
  anchors with a positive: K when every anchor has one).

  Args:
    embeddings: [B, D] floating features (normalised inside).
    labels: [B] integer class indices.
    temperature: scalar tau > 0. A concrete value that is not finite and > 0 raises
      ValueError (so does a string); a traced value cannot be checked, and one <= 0
      makes the loss NaN.
    valid: optional [B] bool mask; padded rows take part in nothing.
    reduction: over the anchors with |P_i| > 0: 'mean' (the paper, the release) or
      'sum' (seed 001's formula; N times the mean, N = those anchors' count).

  Returns:
    Scalar float32 loss (float64 for float64 inputs).

  Example:
    >>> import jax.numpy as jnp
    >>> from lcl_jax import supcon_loss
    >>> embeddings = jnp.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-0.6, 0.8]])
    >>> labels = jnp.array([0, 0, 1, 1])
    >>> print(f"{supcon_loss(embeddings, labels, temperature=0.5):.4f}")
    0.4302
    >>> valid = jnp.array([True, True, True, False])  # row 3 is padding
    >>> print(f"{supcon_loss(embeddings, labels, temperature=0.5, valid=valid):.4f}")
    0.3485
    >>> print(f"{supcon_loss(embeddings, labels, temperature=0.5, reduction='sum'):.4f}")
    1.7208
  """
  fn = "supcon_loss"
  batch, _, valid = _check_contrastive_args(
      fn, embeddings, labels, multilabel=False, valid=valid, temperature=temperature,
      reduction=reduction)
  dtype = _compute_dtype(embeddings)

  similarity = _scaled_similarity(_normalized(embeddings, valid, dtype), temperature)
  pair = _pair_masks(valid)
  labels = jnp.asarray(labels)
  positive = pair & _same_label(labels)
  loss = _anchor_contrastive(similarity, pair, positive, None, None, reduction)
  return _nan_unless_positive(temperature, loss)


def lcl_loss(
    embeddings: ArrayLike,
    labels: ArrayLike,
    weight_logits: ArrayLike,
    *,
    temperature: float | ArrayLike,
    valid: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Label-aware contrastive loss as the authors' released code computes it.

  Suresh & Ong (2021), Eq. 3-4, in the form of the release (``loss.LCL``): with
  w_i = softmax(weight_logits_i) (the weighting network's class distribution for
  example i), unit vectors h and s_ik = h_i . h_k / temperature,

    D_i = sum_{k != i} w_{i, y_k} exp(s_ik),
    L_i = -1/|P_i| sum_{p in P_i} w_{i, y_i} log( exp(s_ip) / D_i ),

  with P_i = {p != i : y_p = y_i}; the loss is the mean of L_i over anchors with
  |P_i| > 0. ``reduction='sum'`` gives their sum: seed 001's Sec. 3.4 "corrected"
  L_LCL = sum_{i=1}^K -1/|P| L_i (its L_i is the sum over p above, without -1/|P_i|).
  The positive weight w_{i, y_i} multiplies the log (the paper's Eq. 3 puts it inside;
  the authors' README says the results follow the code). The gradient flows into
  ``weight_logits`` (the release does not stop it). Because
  w_{i, y_k} < 1 the denominator can be below the numerator, so the loss can be
  negative. With uniform weights (all logits equal) it equals
  ``(supcon_loss - log C) / C``.

  Args:
    embeddings: [B, D] floating features (normalised inside).
    labels: [B] integer class indices in [0, C).
    weight_logits: [B, C] floating logits of the weighting network.
    temperature: scalar tau > 0. A concrete value that is not finite and > 0 raises
      ValueError (so does a string); a traced value cannot be checked, and one <= 0
      makes the loss NaN.
    valid: optional [B] bool mask; padded rows take part in nothing.
    reduction: over the anchors with |P_i| > 0: 'mean' (the paper, the release) or
      'sum' (seed 001's formula; N times the mean, N = those anchors' count).

  Returns:
    Scalar float32 loss (float64 for float64 inputs); NaN if a valid row's label is
    outside [0, C).

  Example:
    >>> import jax.numpy as jnp
    >>> from lcl_jax import lcl_loss, supcon_loss
    >>> embeddings = jnp.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-0.6, 0.8]])
    >>> labels = jnp.array([0, 0, 1, 1])
    >>> weight_logits = jnp.array([[2.0, 0.0], [1.0, 0.5], [0.0, 3.0], [0.3, 0.2]])
    >>> print(f"{lcl_loss(embeddings, labels, weight_logits, temperature=0.5):.4f}")
    -0.0875
    >>> uniform = jnp.zeros((4, 2))
    >>> lcl = lcl_loss(embeddings, labels, uniform, temperature=0.5)
    >>> scl = supcon_loss(embeddings, labels, temperature=0.5)
    >>> print(f"{lcl:.4f} {(scl - jnp.log(2.0)) / 2:.4f}")
    -0.1315 -0.1315
  """
  fn = "lcl_loss"
  batch, num_classes, valid = _check_contrastive_args(
      fn, embeddings, labels, multilabel=False, weight_logits=weight_logits, valid=valid,
      temperature=temperature, reduction=reduction)
  dtype = _compute_dtype(embeddings, weight_logits)

  similarity = _scaled_similarity(_normalized(embeddings, valid, dtype), temperature)
  pair = _pair_masks(valid)
  labels = jnp.asarray(labels)
  positive = pair & _same_label(labels)

  log_w = _class_log_weights(weight_logits, valid, dtype)  # [B, C]
  one_hot, in_range = _one_hot_in_range(labels, valid, num_classes, dtype)
  # log w_{i, y_k} for every pair via a one-hot matmul (exact: one non-zero term);
  # its transpose-free backward is a matmul too, unlike a [B, B] gather's scatter-add.
  log_pair_weights = jnp.matmul(log_w, _replicated(one_hot).T, precision=_HIGHEST)  # [B, B]
  anchor_weights = jnp.exp(jnp.sum(log_w * one_hot, axis=-1))
  loss = _anchor_contrastive(similarity, pair, positive, log_pair_weights, anchor_weights,
                             reduction)
  return _nan_unless_positive(temperature, _nan_unless(jnp.all(in_range), loss))


def multilabel_supcon_loss(
    embeddings: ArrayLike,
    label_sets: ArrayLike,
    *,
    temperature: float | ArrayLike,
    valid: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Multi-label supervised contrastive loss (SCL baseline for GoEmotions).

  As :func:`supcon_loss` with positives P_i = {p != i : labels(p) and labels(i)
  share at least one class}; the denominator runs over every valid k != i.

  Args:
    embeddings: [B, D] floating features (normalised inside).
    label_sets: [B, C] multi-hot (integer or bool; non-zero means "has the label").
    temperature: scalar tau > 0. A concrete value that is not finite and > 0 raises
      ValueError (so does a string); a traced value cannot be checked, and one <= 0
      makes the loss NaN.
    valid: optional [B] bool mask; padded rows take part in nothing.
    reduction: over the anchors with |P_i| > 0: 'mean' (the paper, the release) or
      'sum' (seed 001's formula; N times the mean, N = those anchors' count).

  Returns:
    Scalar float32 loss (float64 for float64 inputs).

  Example:
    >>> import jax.numpy as jnp
    >>> from lcl_jax import multilabel_supcon_loss
    >>> embeddings = jnp.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-0.6, 0.8]])
    >>> label_sets = jnp.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1]])
    >>> print(f"{multilabel_supcon_loss(embeddings, label_sets, temperature=0.5):.4f}")
    0.6958
  """
  fn = "multilabel_supcon_loss"
  batch, _, valid = _check_contrastive_args(
      fn, embeddings, label_sets, multilabel=True, valid=valid, temperature=temperature,
      reduction=reduction)
  dtype = _compute_dtype(embeddings)

  similarity = _scaled_similarity(_normalized(embeddings, valid, dtype), temperature)
  pair = _pair_masks(valid)
  members = (jnp.asarray(label_sets) != 0).astype(dtype)
  shared = _share_a_label(members)
  loss = _anchor_contrastive(similarity, pair, pair & shared, None, None, reduction)
  return _nan_unless_positive(temperature, loss)


def multilabel_lcl_loss(
    embeddings: ArrayLike,
    label_sets: ArrayLike,
    weight_logits: ArrayLike,
    *,
    temperature: float | ArrayLike,
    valid: ArrayLike | None = None,
    reduction: str = "mean",
) -> jax.Array:
  r"""Multi-label label-aware contrastive loss (GoEmotions report, Eq. 1-2).

  With w_i = softmax(weight_logits_i) (softmax, not sigmoid, as in the report, also
  for multi-label data), the weight of row j for anchor i is
  W_ij = sum_{c in labels(j)} w_{i,c} and the positive weight of anchor i is
  W_ii = sum_{c in labels(i)} w_{i,c}:

    D_i = sum_{k != i} W_ik exp(s_ik),
    L_i = -1/|P_i| sum_{p in P_i} W_ii log( exp(s_ip) / D_i ),

  with P_i = {p != i : labels(p) and labels(i) share at least one class}, averaged
  over the anchors with |P_i| > 0 (all 2K rows of a paired batch). With one-hot
  label sets this equals :func:`lcl_loss`. A row whose weight is exactly 0 for an
  anchor (empty label set, or weights underflowing float32) drops out of that
  anchor's denominator instead of producing log(0).

  Args:
    embeddings: [B, D] floating features (normalised inside).
    label_sets: [B, C] multi-hot (integer or bool; non-zero means "has the label").
    weight_logits: [B, C] floating logits of the weighting network.
    temperature: scalar tau > 0. A concrete value that is not finite and > 0 raises
      ValueError (so does a string); a traced value cannot be checked, and one <= 0
      makes the loss NaN.
    valid: optional [B] bool mask; padded rows take part in nothing.
    reduction: over the anchors with |P_i| > 0: 'mean' (the paper, the release) or
      'sum' (seed 001's formula; N times the mean, N = those anchors' count).

  Returns:
    Scalar float32 loss (float64 for float64 inputs).

  Example:
    >>> import jax.numpy as jnp
    >>> from lcl_jax import multilabel_lcl_loss
    >>> embeddings = jnp.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-0.6, 0.8]])
    >>> label_sets = jnp.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1]])
    >>> weight_logits = jnp.array([[2.0, 0.0, 0.0], [1.0, 0.5, 0.0],
    ...                            [0.0, 3.0, 0.0], [0.3, 0.2, 1.0]])
    >>> loss = multilabel_lcl_loss(embeddings, label_sets, weight_logits, temperature=0.5)
    >>> print(f"{loss:.4f}")
    -0.0345
  """
  fn = "multilabel_lcl_loss"
  batch, _, valid = _check_contrastive_args(
      fn, embeddings, label_sets, multilabel=True, weight_logits=weight_logits, valid=valid,
      temperature=temperature, reduction=reduction)
  dtype = _compute_dtype(embeddings, weight_logits)

  similarity = _scaled_similarity(_normalized(embeddings, valid, dtype), temperature)
  pair = _pair_masks(valid)
  members = (jnp.asarray(label_sets) != 0).astype(dtype)
  shared = _share_a_label(members)

  class_weights = jnp.exp(_class_log_weights(weight_logits, valid, dtype))  # [B, C]
  row_weights = jnp.matmul(class_weights, _replicated(members).T, precision=_HIGHEST)  # W_ij, [B, B]
  has_weight = row_weights > 0
  log_row_weights = jnp.where(has_weight, jnp.log(jnp.where(has_weight, row_weights, 1)), 0)
  anchor_weights = jnp.sum(class_weights * members, axis=-1)  # W_ii
  loss = _anchor_contrastive(
      similarity, pair & has_weight, pair & shared, log_row_weights, anchor_weights, reduction
  )
  return _nan_unless_positive(temperature, loss)
