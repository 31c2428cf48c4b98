"""The classification terms (softmax / sigmoid binary cross-entropy) and the training
objectives that combine them with a contrastive loss: :func:`ce_objective`,
:func:`scl_objective` (``alpha * CE + (1 - alpha) * SupCon``) and :func:`lcl_objective`
(Eq. 6: ``alpha * (L_w + L_e) + (1 - alpha) * L_LCL``). (The trainer's wiring of these
objectives to networks and batches is :mod:`lcl_jax.train.objectives`.)
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from lcl_jax.losses import api as _public
from lcl_jax.losses._checks import (_check_alpha, _check_embeddings, _check_int_labels,
                                    _check_label_sets, _check_logits, _check_reduction,
                                    _check_same_batch, _check_valid, _check_weight_logits,
                                    _compute_dtype, _shape)
from lcl_jax.losses.contrastive import _mean_over_rows, _nan_unless, _one_hot_in_range


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


def _contrastive_source(contrastive: Any) -> Any:
  """The object the objectives take their contrastive loss from (None: the public losses,
  impl='auto')."""
  if contrastive is None:
    return _public
  return contrastive


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
    contrastive: Any = None,
    reduction: str = "mean",
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
    temperature: scalar tau > 0 (checked as in `supcon_loss`: a concrete value that is
      not finite and > 0 raises ValueError; a traced one <= 0 makes the loss NaN).
    valid: optional [B] bool mask of real rows.
    multilabel: use the multi-label terms.
    contrastive: where the contrastive loss comes from: None (the public losses with
      impl='auto': dense below 2,048 rows, tiled from there) or an object with the
      same-named loss methods, e.g. ``lcl_jax.losses.Contrastive('tiled')``.
    reduction: the contrastive term over its anchors: 'mean' (the paper) or 'sum'
      (seed 001, Sec. 3.3: N x the mean for N anchors with a positive, so the
      contrastive term weighs as if (1 - alpha) were N times larger).

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
  _check_reduction(fn, reduction)
  _check_logits(fn, "logits", logits)
  _check_embeddings(fn, embeddings)
  _check_same_batch(fn, logits, embeddings)
  ce = _classification_term(fn, logits, labels, valid, multilabel)
  source = _contrastive_source(contrastive)
  if multilabel:
    contrastive = source.multilabel_supcon_loss(embeddings, labels, temperature=temperature,
                                                valid=valid, reduction=reduction)
  else:
    contrastive = source.supcon_loss(embeddings, labels, temperature=temperature, valid=valid,
                                     reduction=reduction)
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
    contrastive: Any = None,
    reduction: str = "mean",
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
    temperature: scalar tau > 0 (checked as in `supcon_loss`: a concrete value that is
      not finite and > 0 raises ValueError; a traced one <= 0 makes the loss NaN).
    valid: optional [B] bool mask of real rows.
    multilabel: use the multi-label terms.
    contrastive: None (the public losses, impl='auto') or an object with the
      same-named loss methods (``lcl_jax.losses.Contrastive``), as in
      :func:`scl_objective`.
    reduction: L_LCL over its anchors: 'mean' (the paper's Eq. 4, the release) or
      'sum' (seed 001, Sec. 3.4), as in :func:`scl_objective`.

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
  _check_reduction(fn, reduction)
  batch, num_classes = _check_logits(fn, "logits", logits)
  _check_embeddings(fn, embeddings)
  _check_same_batch(fn, logits, embeddings)
  _check_weight_logits(fn, weight_logits, batch, num_classes)
  ce = _classification_term(fn, logits, labels, valid, multilabel)
  weighting_ce = _classification_term(fn, weight_logits, labels, valid, multilabel)
  source = _contrastive_source(contrastive)
  if multilabel:
    contrastive = source.multilabel_lcl_loss(
        embeddings, labels, weight_logits, temperature=temperature, valid=valid,
        reduction=reduction)
  else:
    contrastive = source.lcl_loss(embeddings, labels, weight_logits, temperature=temperature,
                                  valid=valid, reduction=reduction)
  total = alpha * (weighting_ce + ce) + (1 - alpha) * contrastive
  return total, {"ce": ce, "weighting_ce": weighting_ce, "contrastive": contrastive, "total": total}
