"""Argument checks of the losses (trace time: shapes, ranks and dtypes only), shared by
the dense (`contrastive`, `combined`) and tiled (`tiled`) losses; each error names the
function and the argument. Also the compute-dtype rule of every loss."""
from __future__ import annotations

import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lcl_jax.choices import CONTRASTIVE_REDUCTIONS


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
  if isinstance(value, (str, bytes)) or isinstance(getattr(value, "dtype", None), np.dtype) and (
      not np.issubdtype(value.dtype, np.number)):
    raise ValueError(f"{fn}: `{name}` must be a real number, not {type(value).__name__}; "
                     f"got {value!r}")
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


# 'mean' or 'sum' over the anchors with |P_i| > 0 (see lcl_jax.choices).
REDUCTIONS = CONTRASTIVE_REDUCTIONS


def _check_reduction(fn: str, reduction: Any) -> str:
  """`reduction` if it is one of `REDUCTIONS`; else a ValueError naming `fn`."""
  if not isinstance(reduction, str) or reduction not in REDUCTIONS:
    raise ValueError(f"{fn}: `reduction` must be one of {REDUCTIONS}; got {reduction!r}")
  return reduction


def _compute_dtype(*arrays: Any) -> np.dtype:
  """float32 for (b)f16/f32 inputs, float64 only when an input is float64."""
  return jnp.promote_types(jnp.result_type(*arrays), jnp.float32)


# What every loss's docstring and the error of a concrete temperature say (issue 18 item 13).
TEMPERATURE_RULE = ("a concrete temperature that is not finite and > 0 raises ValueError; a "
                    "traced one (under jit/grad) cannot be checked, and one <= 0 makes the "
                    "loss NaN")


def _check_temperature(fn: str, temperature: Any) -> None:
  """`temperature`: a real scalar, finite and > 0 (traced values pass unchecked; the losses
  return NaN for a traced value <= 0). Raises ValueError naming `temperature`."""
  try:
    _check_scalar_option(fn, "temperature", temperature, low=0.0, high=None,
                         low_inclusive=False)
  except ValueError as e:
    raise ValueError(f"{e} ({TEMPERATURE_RULE})") from e.__cause__


def _check_alpha(fn: str, alpha: Any) -> None:
  _check_scalar_option(fn, "alpha", alpha, low=0.0, high=1.0, low_inclusive=True)


def _check_same_batch(fn: str, logits: Any, embeddings: Any) -> None:
  if _shape(logits)[0] != _shape(embeddings)[0]:
    raise ValueError(
        f"{fn}: `logits` {_shape(logits)} and `embeddings` {_shape(embeddings)} must have "
        "the same batch size"
    )


def _check_contrastive_args(fn: str, embeddings: Any, labels: Any, *, multilabel: bool,
                            weight_logits: Any = None, valid: Any, temperature: Any,
                            reduction: Any) -> tuple[int, int | None, jax.Array]:
  """The checks every contrastive loss (dense, tiled, ring) makes, in one order:
  embeddings [B, D]; integer labels [B] or multi-hot label sets [B, C]; Ψ's weight logits
  [B, C] (LCL only, else None); valid; temperature; reduction. Each error names `fn`.

  Returns:
    ``(B, C of weight_logits or None, valid as a [B] bool array)``.
  """
  batch = _check_embeddings(fn, embeddings)
  batch_from = f"`embeddings` {_shape(embeddings)}"
  num_classes = None
  if multilabel:
    _check_label_sets(fn, labels, batch, batch_from, None)
    if weight_logits is not None:
      num_classes = _check_weight_logits(fn, weight_logits, batch, _shape(labels)[1])
  else:
    _check_int_labels(fn, labels, batch, batch_from)
    if weight_logits is not None:
      num_classes = _check_weight_logits(fn, weight_logits, batch, None)
  valid = _check_valid(fn, valid, batch)
  _check_temperature(fn, temperature)
  _check_reduction(fn, reduction)
  return batch, num_classes, valid
