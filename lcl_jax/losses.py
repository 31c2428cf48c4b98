"""Contrastive and classification losses for Label-aware Contrastive Learning.

Pure functions of arrays: they work under ``jax.jit``, ``jax.grad``, ``jax.vmap``
and with inputs sharded over the batch axis (``jax.sharding.NamedSharding``).

Contrastive losses (``B`` rows, feature width ``D``, ``C`` classes):

* :func:`supcon_loss` -- supervised contrastive loss (Khosla et al., 2020, "Supervised
  Contrastive Learning", Eq. 2 "L_out"), the SCL baseline of Gunel et al. (2021,
  "Supervised Contrastive Learning for Pre-trained Language Model Fine-tuning") and
  Eq. 2 of Suresh & Ong (2021).
* :func:`lcl_loss` -- label-aware contrastive loss (Suresh & Ong, 2021, "Not All
  Negatives are Equal: Label-Aware Contrastive Loss for Fine-grained Text
  Classification", EMNLP, Eq. 3-4) exactly as the authors' released code computes it.
* :func:`multilabel_supcon_loss` and :func:`multilabel_lcl_loss` -- the multi-label
  extension for GoEmotions (report "Incorporating Label-Aware Contrastive Loss into
  BERT-related models", Eq. 1-2): positives share at least one label.

Classification terms: :func:`softmax_cross_entropy` (integer labels) and
:func:`sigmoid_binary_cross_entropy` (multi-hot label sets).

Training objectives, each returning ``(total, components)`` where ``components`` is a
dict of float scalars (keys ``'ce'``, ``'contrastive'``, ``'weighting_ce'``,
``'total'`` as applicable): :func:`ce_objective`, :func:`scl_objective`
(``alpha * CE + (1 - alpha) * SupCon``) and :func:`lcl_objective` (Eq. 6:
``alpha * (L_w + L_e) + (1 - alpha) * L_LCL``).

Common contract of the contrastive losses:

* ``embeddings`` ``[B, D]`` are L2-normalised inside (``h / max(||h||, 1e-12)``, as
  ``torch.nn.functional.normalize`` in the release), so raw ``[CLS]`` vectors may be
  passed; similarities are cosine similarities divided by ``temperature``.
* ``valid`` is an optional ``[B]`` boolean mask. Rows with ``valid=False`` take part
  in nothing: they are not anchors, not positives and not denominator terms, their
  contents (even NaN) do not reach the value, and their gradients are exactly zero.
* Math is float32 for bfloat16/float16/float32 inputs (float64 when the inputs are
  float64 under ``jax.enable_x64``); the result is a scalar of that dtype. The
  denominators are computed with a masked log-sum-exp, stable for temperatures from
  0.05 to 100. The similarity matmul uses ``Precision.HIGHEST`` so that TPU/GPU
  backends do not silently drop to bf16/TF32 passes (its cost is negligible next to
  the encoder).
* Anchor set: an anchor (valid row) with no positive contributes nothing and is left
  out of the mean over anchors. If no anchor has a positive the loss is ``0``.
* Empty batch (``B = 0``, or no valid row): every loss and objective returns ``0``
  (a finite scalar with zero gradients), never an error from inside JAX.
* ``temperature``: a Python/NumPy value that is not finite and > 0 raises
  ``ValueError`` naming ``temperature``; a traced value (under ``jit``/``grad``) cannot
  be checked, so a non-positive traced temperature makes the loss NaN (never a
  silently wrong finite number or inf).
  NOTE: this deviates from the released PyTorch code (and Khosla et al.'s), which
  divides by ``|P_i| = 0`` there and returns NaN; on batches where every anchor has a
  positive (the paired-augmentation batches of the paper) both agree.
* Bad shapes, ranks or dtypes (string or object labels included) raise ``ValueError``
  at trace time naming the argument and the shapes. Label values cannot be checked at trace time: an integer label
  outside ``[0, C)`` on a valid row makes :func:`lcl_loss`,
  :func:`softmax_cross_entropy` and the objectives return NaN rather than a silently
  wrong number (labels on padded rows are ignored).
"""

from __future__ import annotations

import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

__all__ = [
    "supcon_loss",
    "lcl_loss",
    "multilabel_supcon_loss",
    "multilabel_lcl_loss",
    "softmax_cross_entropy",
    "sigmoid_binary_cross_entropy",
    "ce_objective",
    "scl_objective",
    "lcl_objective",
]

# Same as torch.nn.functional.normalize, used by the release on the [CLS] vector.
_NORMALIZE_EPS = 1e-12
_HIGHEST = jax.lax.Precision.HIGHEST


# --------------------------------------------------------------------------------------
# Validation (trace time: shapes and dtypes only).
# --------------------------------------------------------------------------------------


def _shape(x: Any) -> tuple[int, ...]:
  return tuple(np.shape(x))


def _dtype(fn: str, name: str, x: Any) -> np.dtype:
  """The dtype JAX would give `x`; a ValueError naming `name` if it has none (strings,
  objects)."""
  try:
    return jnp.result_type(x)
  except TypeError:
    kind = getattr(np.asarray(x), "dtype", type(x))
    raise ValueError(
        f"{fn}: `{name}` must be a numeric array; got {type(x).__name__} of dtype {kind} "
        f"with shape {_shape(x)}"
    ) from None


def _check_floating(fn: str, name: str, x: Any) -> None:
  if not jnp.issubdtype(_dtype(fn, name, x), jnp.floating):
    raise ValueError(
        f"{fn}: `{name}` must be a floating-point array; got dtype {_dtype(fn, name, x)} with "
        f"shape {_shape(x)}"
    )


def _check_embeddings(fn: str, embeddings: Any) -> int:
  shape = _shape(embeddings)
  if len(shape) != 2:
    raise ValueError(
        f"{fn}: `embeddings` must have rank 2, shape [B, D]; got shape {shape}"
    )
  if shape[1] == 0:
    raise ValueError(f"{fn}: `embeddings` must have a non-empty feature axis; got {shape}")
  _check_floating(fn, "embeddings", embeddings)
  return shape[0]


def _check_logits(fn: str, name: str, logits: Any) -> tuple[int, int]:
  shape = _shape(logits)
  if len(shape) != 2:
    raise ValueError(f"{fn}: `{name}` must have rank 2, shape [B, C]; got shape {shape}")
  if shape[1] == 0:
    raise ValueError(f"{fn}: `{name}` must have at least one class column; got {shape}")
  _check_floating(fn, name, logits)
  return shape


def _check_int_labels(fn: str, labels: Any, batch: int, batch_from: str) -> None:
  shape = _shape(labels)
  if len(shape) != 1 or shape[0] != batch:
    hint = ""
    if len(shape) == 2 and shape[0] == batch:
      hint = " (multi-hot label sets need the multi-label variant / multilabel=True)"
    raise ValueError(
        f"{fn}: `labels` must have shape [B] = ({batch},) to match {batch_from}; got "
        f"shape {shape}{hint}"
    )
  if not jnp.issubdtype(_dtype(fn, "labels", labels), jnp.integer):
    raise ValueError(
        f"{fn}: `labels` must be an integer class-index array; got dtype "
        f"{_dtype(fn, 'labels', labels)} with shape {shape}"
    )


def _check_label_sets(
    fn: str, label_sets: Any, batch: int, batch_from: str, num_classes: int | None
) -> None:
  shape = _shape(label_sets)
  if len(shape) != 2 or shape[0] != batch:
    raise ValueError(
        f"{fn}: `label_sets` must be multi-hot with shape [B, C], B = {batch} to match "
        f"{batch_from}; got shape {shape}"
    )
  if num_classes is not None and shape[1] != num_classes:
    raise ValueError(
        f"{fn}: `label_sets` has {shape[1]} classes but the logits have "
        f"{num_classes} (shape {shape} vs [B, {num_classes}])"
    )
  dtype = _dtype(fn, "label_sets", label_sets)
  if not (jnp.issubdtype(dtype, jnp.integer) or dtype == jnp.bool_):
    raise ValueError(
        f"{fn}: `label_sets` must be an integer or boolean multi-hot array; got dtype "
        f"{dtype} with shape {shape}"
    )


def _check_valid(fn: str, valid: Any, batch: int) -> jax.Array:
  if valid is None:
    return jnp.ones((batch,), dtype=jnp.bool_)
  shape = _shape(valid)
  if shape != (batch,):
    raise ValueError(f"{fn}: `valid` must have shape [B] = ({batch},); got shape {shape}")
  if _dtype(fn, "valid", valid) != jnp.bool_:
    raise ValueError(
        f"{fn}: `valid` must be a boolean mask; got dtype {_dtype(fn, 'valid', valid)} with shape "
        f"{shape}"
    )
  return jnp.asarray(valid)


def _check_weight_logits(fn: str, weight_logits: Any, batch: int, num_classes: int | None) -> int:
  shape = _shape(weight_logits)
  if len(shape) != 2 or shape[0] != batch:
    raise ValueError(
        f"{fn}: `weight_logits` must have shape [B, C] with B = {batch} (the batch of "
        f"`embeddings`); got shape {shape}"
    )
  if num_classes is not None and shape[1] != num_classes:
    raise ValueError(
        f"{fn}: `weight_logits` must have width C = {num_classes} (the number of "
        f"classes of the label sets / logits); got shape {shape}"
    )
  if shape[1] == 0:
    raise ValueError(f"{fn}: `weight_logits` must have at least one class; got {shape}")
  _check_floating(fn, "weight_logits", weight_logits)
  return shape[1]


def _check_scalar_option(fn: str, name: str, value: Any, *, low: float, high: float | None,
                         low_inclusive: bool) -> None:
  """Range-checks a Python/NumPy number; traced values are accepted unchecked."""
  if isinstance(value, jax.core.Tracer):
    return
  if isinstance(value, (numbers.Number, np.ndarray, jax.Array)) and np.ndim(value) != 0:
    raise ValueError(f"{fn}: `{name}` must be a scalar; got shape {_shape(value)}")
  try:
    number = float(value)
  except (TypeError, ValueError) as error:
    raise ValueError(f"{fn}: `{name}` must be a real scalar; got {value!r}") from error
  bad_low = number < low if low_inclusive else number <= low
  if not np.isfinite(number) or bad_low or (high is not None and number > high):
    bound = f"{'>=' if low_inclusive else '>'} {low}"
    if high is not None:
      bound += f" and <= {high}"
    raise ValueError(f"{fn}: `{name}` must be finite and {bound}; got {number}")


def _compute_dtype(*arrays: Any) -> np.dtype:
  """float32 for (b)f16/f32 inputs, float64 only when an input is float64."""
  return jnp.promote_types(jnp.result_type(*arrays), jnp.float32)


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


def _anchor_mean_contrastive(
    similarity: jax.Array,
    denominator_mask: jax.Array,
    positive_mask: jax.Array,
    log_pair_weights: jax.Array | None,
    anchor_weights: jax.Array | None,
) -> jax.Array:
  """Mean over anchors with positives of -a_i * mean_p [s_ip - log sum_k w_ik e^{s_ik}].

  Args:
    similarity: [B, B] scaled similarities s_ik.
    denominator_mask: [B, B] bool, the terms k of anchor i's denominator.
    positive_mask: [B, B] bool, the positives p of anchor i.
    log_pair_weights: [B, B] log w_ik inside the denominator, or None (all 1).
    anchor_weights: [B] weight a_i outside the log, or None (all 1).
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
  num_anchors = jnp.sum(has_positive)
  return jnp.sum(per_anchor) / jnp.maximum(num_anchors, 1).astype(per_anchor.dtype)


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
) -> jax.Array:
  r"""Supervised contrastive loss (Khosla et al., 2020; Suresh & Ong, 2021, Eq. 2).

  With unit vectors h and s_ik = h_i . h_k / temperature, for every valid anchor i
  with positives P_i = {p != i : y_p = y_i} (the augmented view included) and
  denominator set A_i = {k != i}:

    L_i = -1/|P_i| sum_{p in P_i} log( exp(s_ip) / sum_{k in A_i} exp(s_ik) ),

  and the loss is the mean of L_i over anchors with |P_i| > 0 (0 if there is none).
  This is the SCL term of Gunel et al. (2021) and the release's ``SupConLoss``.

  Args:
    embeddings: [B, D] floating features (normalised inside).
    labels: [B] integer class indices.
    temperature: positive scalar tau.
    valid: optional [B] bool mask; padded rows take part in nothing.

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
  """
  fn = "supcon_loss"
  batch = _check_embeddings(fn, embeddings)
  _check_int_labels(fn, labels, batch, f"`embeddings` {_shape(embeddings)}")
  valid = _check_valid(fn, valid, batch)
  _check_scalar_option(fn, "temperature", temperature, low=0.0, high=None, low_inclusive=False)
  dtype = _compute_dtype(embeddings)

  similarity = _scaled_similarity(_normalized(embeddings, valid, dtype), temperature)
  pair = _pair_masks(valid)
  labels = jnp.asarray(labels)
  positive = pair & _same_label(labels)
  loss = _anchor_mean_contrastive(similarity, pair, positive, None, None)
  return _nan_unless_positive(temperature, loss)


def lcl_loss(
    embeddings: ArrayLike,
    labels: ArrayLike,
    weight_logits: ArrayLike,
    *,
    temperature: float | ArrayLike,
    valid: ArrayLike | None = None,
) -> jax.Array:
  r"""Label-aware contrastive loss as the authors' released code computes it.

  Suresh & Ong (2021), Eq. 3-4, in the form of the release (``loss.LCL``): with
  w_i = softmax(weight_logits_i) (the weighting network's class distribution for
  example i), unit vectors h and s_ik = h_i . h_k / temperature,

    D_i = sum_{k != i} w_{i, y_k} exp(s_ik),
    L_i = -1/|P_i| sum_{p in P_i} w_{i, y_i} log( exp(s_ip) / D_i ),

  with P_i = {p != i : y_p = y_i}; the loss is the mean of L_i over anchors with
  |P_i| > 0. The positive weight w_{i, y_i} multiplies the log (the paper's Eq. 3
  puts it inside; the authors' README says the results follow the code). The
  gradient flows into ``weight_logits`` (the release does not stop it). Because
  w_{i, y_k} < 1 the denominator can be below the numerator, so the loss can be
  negative. With uniform weights (all logits equal) it equals
  ``(supcon_loss - log C) / C``.

  Args:
    embeddings: [B, D] floating features (normalised inside).
    labels: [B] integer class indices in [0, C).
    weight_logits: [B, C] floating logits of the weighting network.
    temperature: positive scalar tau.
    valid: optional [B] bool mask; padded rows take part in nothing.

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
  batch = _check_embeddings(fn, embeddings)
  _check_int_labels(fn, labels, batch, f"`embeddings` {_shape(embeddings)}")
  num_classes = _check_weight_logits(fn, weight_logits, batch, None)
  valid = _check_valid(fn, valid, batch)
  _check_scalar_option(fn, "temperature", temperature, low=0.0, high=None, low_inclusive=False)
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
  loss = _anchor_mean_contrastive(similarity, pair, positive, log_pair_weights, anchor_weights)
  return _nan_unless_positive(temperature, _nan_unless(jnp.all(in_range), loss))


def multilabel_supcon_loss(
    embeddings: ArrayLike,
    label_sets: ArrayLike,
    *,
    temperature: float | ArrayLike,
    valid: ArrayLike | None = None,
) -> jax.Array:
  r"""Multi-label supervised contrastive loss (SCL baseline for GoEmotions).

  As :func:`supcon_loss` with positives P_i = {p != i : labels(p) and labels(i)
  share at least one class}; the denominator runs over every valid k != i.

  Args:
    embeddings: [B, D] floating features (normalised inside).
    label_sets: [B, C] multi-hot (integer or bool; non-zero means "has the label").
    temperature: positive scalar tau.
    valid: optional [B] bool mask; padded rows take part in nothing.

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
  batch = _check_embeddings(fn, embeddings)
  _check_label_sets(fn, label_sets, batch, f"`embeddings` {_shape(embeddings)}", None)
  valid = _check_valid(fn, valid, batch)
  _check_scalar_option(fn, "temperature", temperature, low=0.0, high=None, low_inclusive=False)
  dtype = _compute_dtype(embeddings)

  similarity = _scaled_similarity(_normalized(embeddings, valid, dtype), temperature)
  pair = _pair_masks(valid)
  members = (jnp.asarray(label_sets) != 0).astype(dtype)
  shared = _share_a_label(members)
  loss = _anchor_mean_contrastive(similarity, pair, pair & shared, None, None)
  return _nan_unless_positive(temperature, loss)


def multilabel_lcl_loss(
    embeddings: ArrayLike,
    label_sets: ArrayLike,
    weight_logits: ArrayLike,
    *,
    temperature: float | ArrayLike,
    valid: ArrayLike | None = None,
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
    temperature: positive scalar tau.
    valid: optional [B] bool mask; padded rows take part in nothing.

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
  batch = _check_embeddings(fn, embeddings)
  _check_label_sets(fn, label_sets, batch, f"`embeddings` {_shape(embeddings)}", None)
  _check_weight_logits(fn, weight_logits, batch, _shape(label_sets)[1])
  valid = _check_valid(fn, valid, batch)
  _check_scalar_option(fn, "temperature", temperature, low=0.0, high=None, low_inclusive=False)
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
  loss = _anchor_mean_contrastive(
      similarity, pair & has_weight, pair & shared, log_row_weights, anchor_weights
  )
  return _nan_unless_positive(temperature, loss)


# --------------------------------------------------------------------------------------
# Classification terms.
# --------------------------------------------------------------------------------------


def softmax_cross_entropy(
    logits: ArrayLike, labels: ArrayLike, *, valid: ArrayLike | None = None
) -> jax.Array:
  """Softmax cross-entropy with integer labels, mean over valid rows.

  Args:
    logits: [B, C] floating logits.
    labels: [B] integer class indices in [0, C).
    valid: optional [B] bool mask; padded rows are ignored (0 if none is valid).

  Returns:
    Scalar float32 loss (float64 for float64 inputs); NaN if a valid row's label is
    outside [0, C).

  Example:
    >>> import jax.numpy as jnp
    >>> from lcl_jax import softmax_cross_entropy
    >>> logits = jnp.array([[2.0, 0.0], [0.0, 0.0]])
    >>> print(f"{softmax_cross_entropy(logits, jnp.array([0, 1])):.4f}")
    0.4100
  """
  fn = "softmax_cross_entropy"
  batch, num_classes = _check_logits(fn, "logits", logits)
  _check_int_labels(fn, labels, batch, f"`logits` {_shape(logits)}")
  valid = _check_valid(fn, valid, batch)
  dtype = _compute_dtype(logits)

  log_probs = jax.nn.log_softmax(jnp.where(valid[:, None], jnp.asarray(logits).astype(dtype), 0))
  one_hot, in_range = _one_hot_in_range(labels, valid, num_classes, dtype)
  per_row = -jnp.sum(log_probs * one_hot, axis=-1)
  return _nan_unless(jnp.all(in_range), _mean_over_rows(per_row, valid))


def sigmoid_binary_cross_entropy(
    logits: ArrayLike, label_sets: ArrayLike, *, valid: ArrayLike | None = None
) -> jax.Array:
  """Sigmoid binary cross-entropy for multi-hot targets, mean over valid rows and classes.

  Args:
    logits: [B, C] floating logits.
    label_sets: [B, C] multi-hot (integer or bool; non-zero means "has the label").
    valid: optional [B] bool mask; padded rows are ignored (0 if none is valid).

  Returns:
    Scalar float32 loss (float64 for float64 inputs).

  Example:
    >>> import jax.numpy as jnp
    >>> from lcl_jax import sigmoid_binary_cross_entropy
    >>> logits = jnp.array([[2.0, -1.0], [0.0, 3.0]])
    >>> print(f"{sigmoid_binary_cross_entropy(logits, jnp.array([[1, 0], [1, 1]])):.4f}")
    0.2955
  """
  fn = "sigmoid_binary_cross_entropy"
  batch, num_classes = _check_logits(fn, "logits", logits)
  _check_label_sets(fn, label_sets, batch, f"`logits` {_shape(logits)}", num_classes)
  valid = _check_valid(fn, valid, batch)
  dtype = _compute_dtype(logits)

  x = jnp.where(valid[:, None], jnp.asarray(logits).astype(dtype), 0)
  targets = jnp.asarray(label_sets) != 0
  per_element = -jnp.where(targets, jax.nn.log_sigmoid(x), jax.nn.log_sigmoid(-x))
  return _mean_over_rows(jnp.mean(per_element, axis=-1), valid)


# --------------------------------------------------------------------------------------
# Objectives.
# --------------------------------------------------------------------------------------


def _classification_term(fn: str, logits: Any, labels: Any, valid: Any, multilabel: bool):
  """CE for integer labels or BCE for multi-hot, with argument checks naming `fn`."""
  batch, num_classes = _check_logits(fn, "logits", logits)
  if multilabel:
    _check_label_sets(fn, labels, batch, f"`logits` {_shape(logits)}", num_classes)
    return sigmoid_binary_cross_entropy(logits, labels, valid=valid)
  _check_int_labels(fn, labels, batch, f"`logits` {_shape(logits)}")
  return softmax_cross_entropy(logits, labels, valid=valid)


def _check_alpha(fn: str, alpha: Any) -> None:
  _check_scalar_option(fn, "alpha", alpha, low=0.0, high=1.0, low_inclusive=True)


def _check_same_batch(fn: str, logits: Any, embeddings: Any) -> None:
  if _shape(logits)[0] != _shape(embeddings)[0]:
    raise ValueError(
        f"{fn}: `logits` {_shape(logits)} and `embeddings` {_shape(embeddings)} must have "
        "the same batch size"
    )


def ce_objective(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    valid: ArrayLike | None = None,
    multilabel: bool = False,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Cross-entropy fine-tuning objective (the paper's "CE" baseline).

  Args:
    logits: [B, C] classifier logits.
    labels: [B] integer labels, or [B, C] multi-hot label sets if ``multilabel``.
    valid: optional [B] bool mask of real rows.
    multilabel: sigmoid BCE on multi-hot targets instead of softmax CE.

  Returns:
    ``(total, {'ce': ce, 'total': total})`` of float32 scalars.

  Example:
    >>> import jax.numpy as jnp
    >>> from lcl_jax import ce_objective
    >>> total, parts = ce_objective(jnp.array([[2.0, 0.0], [0.0, 0.0]]), jnp.array([0, 1]))
    >>> print(sorted(parts), f"{total:.4f}")
    ['ce', 'total'] 0.4100
  """
  ce = _classification_term("ce_objective", logits, labels, valid, multilabel)
  return ce, {"ce": ce, "total": ce}


def scl_objective(
    logits: ArrayLike,
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    alpha: float | ArrayLike,
    temperature: float | ArrayLike,
    valid: ArrayLike | None = None,
    multilabel: bool = False,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """SCL objective of Gunel et al. (2021): ``alpha * CE + (1 - alpha) * SupCon``.

  Args:
    logits: [B, C] classifier logits.
    embeddings: [B, D] features for the contrastive term (normalised inside).
    labels: [B] integer labels, or [B, C] multi-hot label sets if ``multilabel``
      (then BCE and :func:`multilabel_supcon_loss`).
    alpha: weight of the classification term, in [0, 1] (the LCL paper's alpha, the
      release's ``lambda_loss``). Gunel et al. (2021) write ``(1 - lambda) CE + lambda
      SCL``: their lambda weights the contrastive term, lambda = 1 - alpha.
    temperature: positive scalar tau.
    valid: optional [B] bool mask of real rows.
    multilabel: use the multi-label terms.

  Returns:
    ``(total, {'ce', 'contrastive', 'total'})`` of float32 scalars.

  Example:
    >>> import jax.numpy as jnp
    >>> from lcl_jax import scl_objective
    >>> embeddings = jnp.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-0.6, 0.8]])
    >>> logits = jnp.array([[2.0, 0.0], [1.0, 0.5], [0.0, 3.0], [0.3, 0.2]])
    >>> total, parts = scl_objective(logits, embeddings, jnp.array([0, 0, 1, 1]),
    ...                              alpha=0.5, temperature=0.5)
    >>> print({k: round(float(v), 4) for k, v in sorted(parts.items())})
    {'ce': 0.3485, 'contrastive': 0.4302, 'total': 0.3893}
  """
  fn = "scl_objective"
  _check_alpha(fn, alpha)
  _check_logits(fn, "logits", logits)
  _check_embeddings(fn, embeddings)
  _check_same_batch(fn, logits, embeddings)
  ce = _classification_term(fn, logits, labels, valid, multilabel)
  if multilabel:
    contrastive = multilabel_supcon_loss(embeddings, labels, temperature=temperature, valid=valid)
  else:
    contrastive = supcon_loss(embeddings, labels, temperature=temperature, valid=valid)
  total = alpha * ce + (1 - alpha) * contrastive
  return total, {"ce": ce, "contrastive": contrastive, "total": total}


def lcl_objective(
    logits: ArrayLike,
    weight_logits: ArrayLike,
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    alpha: float | ArrayLike,
    temperature: float | ArrayLike,
    valid: ArrayLike | None = None,
    multilabel: bool = False,
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """LCL objective (Suresh & Ong, 2021, Eq. 6): ``alpha (L_w + L_e) + (1 - alpha) L_LCL``.

  L_e is the classification loss of the primary encoder's ``logits``, L_w that of the
  weighting network's ``weight_logits``, and L_LCL is :func:`lcl_loss` (or
  :func:`multilabel_lcl_loss`) with class weights softmax(``weight_logits``). As in
  the release (``loss_1 + loss_2`` in ``train.py``) gradients of L_LCL flow into the
  weighting network too. In the multi-label case L_e and L_w are sigmoid BCE while
  the contrastive weights stay softmax(``weight_logits``), as in the GoEmotions
  report.

  Args:
    logits: [B, C] primary-encoder classifier logits.
    weight_logits: [B, C] weighting-network logits (same C).
    embeddings: [B, D] primary-encoder features (normalised inside).
    labels: [B] integer labels, or [B, C] multi-hot label sets if ``multilabel``.
    alpha: weight of the classification terms, in [0, 1] (the paper's alpha in Eq. 6,
      the release's ``lambda_loss``).
    temperature: positive scalar tau.
    valid: optional [B] bool mask of real rows.
    multilabel: use the multi-label terms.

  Returns:
    ``(total, {'ce', 'weighting_ce', 'contrastive', 'total'})`` of float32 scalars.

  Example:
    >>> import jax.numpy as jnp
    >>> from lcl_jax import lcl_objective
    >>> embeddings = jnp.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-0.6, 0.8]])
    >>> logits = jnp.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    >>> weight_logits = jnp.array([[2.0, 0.0], [1.0, 0.5], [0.0, 3.0], [0.3, 0.2]])
    >>> total, parts = lcl_objective(logits, weight_logits, embeddings,
    ...                              jnp.array([0, 0, 1, 1]), alpha=0.5, temperature=0.5)
    >>> print({k: round(float(v), 4) for k, v in sorted(parts.items())})
    {'ce': 0.3133, 'contrastive': -0.0875, 'total': 0.2871, 'weighting_ce': 0.3485}
  """
  fn = "lcl_objective"
  _check_alpha(fn, alpha)
  batch, num_classes = _check_logits(fn, "logits", logits)
  _check_embeddings(fn, embeddings)
  _check_same_batch(fn, logits, embeddings)
  _check_weight_logits(fn, weight_logits, batch, num_classes)
  ce = _classification_term(fn, logits, labels, valid, multilabel)
  weighting_ce = _classification_term(fn, weight_logits, labels, valid, multilabel)
  if multilabel:
    contrastive = multilabel_lcl_loss(
        embeddings, labels, weight_logits, temperature=temperature, valid=valid
    )
  else:
    contrastive = lcl_loss(embeddings, labels, weight_logits, temperature=temperature, valid=valid)
  total = alpha * (weighting_ce + ce) + (1 - alpha) * contrastive
  return total, {"ce": ce, "weighting_ce": weighting_ce, "contrastive": contrastive, "total": total}
