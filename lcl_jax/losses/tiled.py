"""Tiled and ring (multi-device) versions of the contrastive losses, for huge batches.

The dense losses of :mod:`lcl_jax.losses.contrastive` build ``[B, B]`` similarity, mask
and weight matrices: at a global batch of 65,536 the similarity matrix alone is 17 GB
(float32).
The functions here compute the *same values and gradients* with memory
``O(B * tile_size)``:

* every anchor row's denominator ``log sum_k w_ik exp(s_ik)`` is accumulated over
  column tiles of ``tile_size`` rows with an online (running-max) log-sum-exp, and the
  positives' sum ``sum_p s_ip`` and count ``|P_i|`` are accumulated alongside;
* on one device the similarity is symmetric (s_ik = s_ki), so the row tiles are
  visited in unordered pairs I <= J: each [T, T] block is computed once and serves
  both the rows of I against J and (transposed) the rows of J against I; its backward
  forms G = dS_IJ + dS_JI^T and needs two more [T, T] x [T, D] products: ~4 B^2 D
  FLOP for fwd+bwd, against 6 B^2 D for the dense loss and 8 B^2 D for a column-tile
  scan that recomputes every tile;
* a :func:`jax.custom_vjp` stores only these per-row statistics (``[B]`` vectors) and
  recomputes each tile in the backward pass, so autodiff never keeps a ``[B, B]``
  array alive;
* across devices (``mesh`` given, the batch sharded over ``axis_name``) the column
  blocks -- unit features, labels, class codes, masks -- travel around a ring of
  devices with :func:`jax.lax.ppermute` inside :func:`jax.shard_map`; in the backward
  pass each block's feature gradient travels with it and arrives home after a full
  turn. No device ever holds more than ``(B / n) x tile_size`` pair terms. This is
  the scheme of Inf-CL (Cheng et al., 2024, "Breaking the Memory Barrier: Near
  Infinite Batch Size Scaling for Contrastive Loss"), applied to SupCon/LCL.

Functions (same signatures, semantics and argument checks as the dense ones, plus
``tile_size``, ``mesh`` and ``axis_name``): :func:`supcon_loss`, :func:`lcl_loss`,
:func:`multilabel_supcon_loss`, :func:`multilabel_lcl_loss`. The public losses
(``lcl_jax.lcl_loss`` etc., :mod:`lcl_jax.losses.api`) call these when their
``impl`` is 'tiled' or 'ring' (or 'auto' picks them); ``Contrastive`` (the trainer's
choice, ``TrainConfig.contrastive_impl``) lives in :mod:`lcl_jax.losses.api`.

Numerics: float32 (float64 under x64 for float64 inputs), matmuls at
``Precision.HIGHEST``; values agree with the dense losses to ~1e-6 relative (the only
difference is the order of summation inside the log-sum-exp).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from lcl_jax.losses import contrastive as dense
from lcl_jax.losses._checks import _check_contrastive_args, _compute_dtype, _shape
from lcl_jax.losses.contrastive import (_class_log_weights, _nan_unless, _nan_unless_positive,
                                        _normalized, _one_hot_in_range, _reduce_anchors)

__all__ = ["supcon_loss", "lcl_loss", "multilabel_supcon_loss", "multilabel_lcl_loss",
           "DEFAULT_TILE_SIZE", "IMPLEMENTATIONS"]

DEFAULT_TILE_SIZE = 512
IMPLEMENTATIONS = ("auto", "dense", "tiled", "ring")
_HIGHEST = jax.lax.Precision.HIGHEST


@dataclasses.dataclass(frozen=True)
class _Spec:
  """Static description of one contrastive loss for the tile kernels."""
  multilabel: bool  # positives: shared label (multi-hot) vs equal integer label
  weighting: str | None  # None (SupCon) | 'log' (LCL: z = s + Q.E) | 'linear' (ML-LCL: z = s + log Q.E)
  tile_size: int
  axis_name: str | None = None  # ring over this shard_map axis
  num_shards: int = 1


# --------------------------------------------------------------------------------------
# Tile kernels. rows = (A [R,D] = unit/tau, Q [R,C] or None, valid [R], index [R],
# labels [R] int | members [R,C]); cols = (K [T,D] = unit, E [T,C] or None, valid [T],
# index [T], labels | members).
# --------------------------------------------------------------------------------------


def _tile_terms(rows, cols, spec: _Spec, s=None, active=True):
  """Pair terms of `rows` x `cols`: s, z, denominator mask, positive mask, weights.

  `s` ([R, T] scaled similarities) is computed from the rows' A and the columns' K
  unless given; `active=False` (traced bool) masks every pair out.
  """
  a, q, row_valid, row_index, row_labels = rows
  k, e, col_valid, col_index, col_labels = cols
  if s is None:
    s = jnp.matmul(a, k.T, precision=_HIGHEST)  # [R, T] scaled similarities
  pair = (row_valid[:, None] & col_valid[None, :] & (row_index[:, None] != col_index[None, :])
          & active)
  if spec.multilabel:
    positive = pair & (jnp.matmul(row_labels, col_labels.T, precision=_HIGHEST) > 0)
  else:
    positive = pair & (row_labels[:, None] == col_labels[None, :])
  weights = None
  if spec.weighting is None:
    z, denominator = s, pair
  elif spec.weighting == "log":
    z, denominator = s + jnp.matmul(q, e.T, precision=_HIGHEST), pair
  else:
    weights = jnp.matmul(q, e.T, precision=_HIGHEST)  # W_ik >= 0
    has_weight = weights > 0
    z = s + jnp.where(has_weight, jnp.log(jnp.where(has_weight, weights, 1)), 0)
    denominator = pair & has_weight
  return s, z, denominator, positive, weights


def _split_tiles(cols, tile: int):
  """Pads the column arrays to a multiple of `tile` (padding invalid) -> [n, tile, ...]."""
  size = cols[0].shape[0]
  num_tiles = -(-size // tile)
  pad = num_tiles * tile - size

  def split(x, fill):
    if x is None:
      return None
    if pad:
      x = jnp.concatenate([x, jnp.full((pad,) + x.shape[1:], fill, x.dtype)])
    return x.reshape((num_tiles, tile) + x.shape[1:])

  k, e, valid, index, labels = cols
  return (split(k, 0), split(e, 0), split(valid, False), split(index, -1),
          split(labels, 0)), pad


def _block_forward(carry, rows, cols, spec: _Spec):
  """Online log-sum-exp and positive sums of `rows` over one column block, tile by tile."""
  tiles, _ = _split_tiles(cols, min(spec.tile_size, cols[0].shape[0]))

  def body(carry, tile_cols):
    return _accumulate(carry, *_tile_terms(rows, tile_cols, spec)[:4]), None

  carry, _ = jax.lax.scan(body, carry, tiles)
  return carry


def _accumulate(stats, s, z, denominator, positive):
  """Online log-sum-exp and positive sums: `stats` of some rows, one more tile of terms."""
  running_max, total, positive_sum, positive_count = stats
  tile_max = jnp.max(jnp.where(denominator, z, -jnp.inf), axis=-1)
  new_max = jnp.maximum(running_max, tile_max)
  safe_max = jnp.where(jnp.isfinite(new_max), new_max, 0)
  total = (total * jnp.exp(running_max - safe_max)
           + jnp.sum(jnp.exp(jnp.where(denominator, z - safe_max[:, None], -jnp.inf)), -1))
  positive_sum = positive_sum + jnp.sum(jnp.where(positive, s, 0), axis=-1)
  positive_count = positive_count + jnp.sum(positive, axis=-1, dtype=jnp.int32)
  return new_max, total, positive_sum, positive_count


def _block_backward(rows, cols, log_denominator, g_log_denominator, g_positive_sum,
                    spec: _Spec):
  """(dA, dQ, dK) of one column block, recomputing its tiles."""
  a, q = rows[0], rows[1]
  tiles, pad = _split_tiles(cols, min(spec.tile_size, cols[0].shape[0]))

  def body(carry, tile_cols):
    d_a, d_q = carry
    _, d_z, d_s, d_w = _tile_cotangents(rows, tile_cols, log_denominator, g_log_denominator,
                                        g_positive_sum, spec)
    k, e = tile_cols[0], tile_cols[1]
    d_a = d_a + jnp.matmul(d_s, k, precision=_HIGHEST)
    d_k = jnp.matmul(d_s.T, a, precision=_HIGHEST)
    if d_w is not None:
      d_q = d_q + jnp.matmul(d_w, e, precision=_HIGHEST)
    return (d_a, d_q), d_k

  init = (jnp.zeros_like(a), None if q is None else jnp.zeros_like(q))
  (d_a, d_q), d_k = jax.lax.scan(body, init, tiles)
  d_k = d_k.reshape((-1,) + d_k.shape[2:])
  return d_a, d_q, d_k[:d_k.shape[0] - pad]


def _tile_cotangents(rows, cols, log_denominator, g_log_denominator, g_positive_sum,
                     spec: _Spec, s=None, active=True):
  """(s, dL/dz, dL/ds, dL/dq-side factor) of one tile: the softmax of the denominator
  terms times the rows' cotangent, plus the positives' cotangent; `d_w` is the
  [R, T] factor that multiplies the columns' class codes into dL/dQ (None for SupCon)."""
  s, z, denominator, positive, weights = _tile_terms(rows, cols, spec, s, active)
  p = jnp.exp(jnp.where(denominator, z - log_denominator[:, None], -jnp.inf))  # softmax
  d_z = g_log_denominator[:, None] * p
  d_s = d_z + jnp.where(positive, g_positive_sum[:, None], 0)
  d_w = None
  if spec.weighting == "log":
    d_w = d_z
  elif spec.weighting == "linear":
    has_weight = weights > 0
    d_w = jnp.where(has_weight, d_z / jnp.where(has_weight, weights, 1), 0)
  return s, d_z, d_s, d_w


def _initial_stats(rows):
  size, dtype = rows[0].shape[0], rows[0].dtype
  return (jnp.full((size,), -jnp.inf, dtype), jnp.zeros((size,), dtype),
          jnp.zeros((size,), dtype), jnp.zeros((size,), jnp.int32))


def _finish_stats(stats):
  running_max, total, positive_sum, positive_count = stats
  safe_max = jnp.where(jnp.isfinite(running_max), running_max, 0)
  has_terms = total > 0
  log_denominator = jnp.where(has_terms, jnp.log(jnp.where(has_terms, total, 1)), 0) + safe_max
  return log_denominator, positive_sum, positive_count


def _ring_shift(tree, spec: _Spec):
  perm = [(j, (j + 1) % spec.num_shards) for j in range(spec.num_shards)]
  return jax.tree.map(lambda x: jax.lax.ppermute(x, spec.axis_name, perm), tree)


def _row_stats_impl(spec: _Spec, rows, cols):
  if spec.axis_name is None:
    return _finish_stats(_block_forward(_initial_stats(rows), rows, cols, spec))

  def body(carry, _):
    stats, block = carry
    stats = _block_forward(stats, rows, block, spec)
    return (stats, _ring_shift(block, spec)), None

  (stats, _), _ = jax.lax.scan(body, (_initial_stats(rows), cols), None,
                               length=spec.num_shards)
  return _finish_stats(stats)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _row_stats(spec: _Spec, rows, cols):
  """Per anchor row: (log denominator, sum of positive similarities, |P_i|), [R] each."""
  return _row_stats_impl(spec, rows, cols)


def _row_stats_fwd(spec, rows, cols):
  out = _row_stats_impl(spec, rows, cols)
  return out, (rows, cols, out[0])


def _zero_cotangent(x):
  if x is None:
    return None
  if jnp.issubdtype(x.dtype, jnp.inexact):
    return jnp.zeros_like(x)
  return np.zeros(x.shape, dtype=jax.dtypes.float0)


def _row_stats_bwd(spec, residuals, cotangents):
  rows, cols, log_denominator = residuals
  g_log_denominator, g_positive_sum, _ = cotangents
  if spec.axis_name is None:
    d_a, d_q, d_k = _block_backward(rows, cols, log_denominator, g_log_denominator,
                                    g_positive_sum, spec)
  else:
    def body(carry, _):
      d_a, d_q, block, d_block = carry
      block_d_a, block_d_q, block_d_k = _block_backward(
          rows, block, log_denominator, g_log_denominator, g_positive_sum, spec)
      d_a = d_a + block_d_a
      d_q = None if d_q is None else d_q + block_d_q
      # The block's feature gradient travels with it; after num_shards shifts both are home.
      block, d_block = _ring_shift((block, d_block + block_d_k), spec)
      return (d_a, d_q, block, d_block), None

    init = (jnp.zeros_like(rows[0]), None if rows[1] is None else jnp.zeros_like(rows[1]),
            cols, jnp.zeros_like(cols[0]))
    (d_a, d_q, _, d_k), _ = jax.lax.scan(body, init, None, length=spec.num_shards)
  d_rows = (d_a, d_q) + tuple(_zero_cotangent(x) for x in rows[2:])
  d_cols = (d_k,) + tuple(_zero_cotangent(x) for x in cols[1:])
  return d_rows, d_cols


_row_stats.defvjp(_row_stats_fwd, _row_stats_bwd)


# --------------------------------------------------------------------------------------
# One device: symmetric blocks. s_ik = u_i . u_k / tau = s_ki, so each unordered pair of
# row tiles (I <= J) computes its [T, T] similarity block once and uses it for the rows
# of I against the columns of J and (transposed) for the rows of J against I. Forward:
# ~B^2 D / 2 matmul FLOP x 2 = B^2 D; backward: the block again plus
# G = dS_IJ + dS_JI^T, dU_I += G U_J / tau, dU_J += G^T U_I / tau: 3 B^2 D. In all
# ~4 B^2 D, half of the column-tile scan's 8 B^2 D (and below the dense loss's 6 B^2 D).
# --------------------------------------------------------------------------------------


def _pair_blocks(spec: _Spec, unit, rest):
  """Tiles [n, T, ...] of unit and the other row arrays, and the pair list I <= J."""
  tile = min(spec.tile_size, unit.shape[0])
  q, e, valid, index, labels = rest
  (u_t, e_t, valid_t, index_t, labels_t), _ = _split_tiles((unit, e, valid, index, labels), tile)
  q_t = None if q is None else _split_tiles((q, None, valid, index, labels), tile)[0][0]
  num_tiles = u_t.shape[0]
  first, second = np.triu_indices(num_tiles)
  pairs = (jnp.asarray(first, jnp.int32), jnp.asarray(second, jnp.int32))
  return (u_t, q_t, e_t, valid_t, index_t, labels_t), pairs


def _tile_rows(blocks, i, tau):
  """(rows, cols) of tile i: rows hold A = U / tau and Q, cols hold U and E."""
  u, q, e, valid, index, labels = (None if x is None else x[i] for x in blocks)
  return (u / tau, q, valid, index, labels), (u, e, valid, index, labels)


def _symmetric_stats_impl(spec: _Spec, unit, tau, rest):
  blocks, pairs = _pair_blocks(spec, unit, rest)
  u_t = blocks[0]
  num_tiles, tile = u_t.shape[:2]
  stats = (jnp.full((num_tiles, tile), -jnp.inf, unit.dtype),
           jnp.zeros((num_tiles, tile), unit.dtype), jnp.zeros((num_tiles, tile), unit.dtype),
           jnp.zeros((num_tiles, tile), jnp.int32))

  def body(stats, pair):
    i, j = pair
    rows_i, cols_i = _tile_rows(blocks, i, tau)
    rows_j, cols_j = _tile_rows(blocks, j, tau)
    s = jnp.matmul(rows_i[0], cols_j[0].T, precision=_HIGHEST)  # [T, T] = s_IJ
    for rows, cols, block, at, active in ((rows_i, cols_j, s, i, True),
                                          (rows_j, cols_i, s.T, j, i != j)):
      terms = _tile_terms(rows, cols, spec, block, active)[:4]
      row_stats = _accumulate(tuple(x[at] for x in stats), *terms)
      stats = tuple(x.at[at].set(y) for x, y in zip(stats, row_stats))
    return stats, None

  stats, _ = jax.lax.scan(body, stats, pairs)
  batch = unit.shape[0]
  return _finish_stats(tuple(x.reshape(-1)[:batch] for x in stats))


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _symmetric_stats(spec: _Spec, unit, tau, rest):
  """Per row (one device): (log denominator, sum of positive similarities, |P_i|)."""
  return _symmetric_stats_impl(spec, unit, tau, rest)


def _symmetric_stats_fwd(spec, unit, tau, rest):
  out = _symmetric_stats_impl(spec, unit, tau, rest)
  return out, (unit, tau, rest, out[0])


def _symmetric_stats_bwd(spec, residuals, cotangents):
  unit, tau, rest, log_denominator = residuals
  g_log_denominator, g_positive_sum, _ = cotangents
  blocks, pairs = _pair_blocks(spec, unit, rest)
  num_tiles, tile = blocks[0].shape[:2]
  pad = num_tiles * tile - unit.shape[0]
  per_row = tuple(jnp.pad(x, (0, pad)).reshape(num_tiles, tile)
                  for x in (log_denominator, g_log_denominator, g_positive_sum))
  q_t, e_t = blocks[1], blocks[2]
  init = (jnp.zeros_like(blocks[0]), None if q_t is None else jnp.zeros_like(q_t),
          jnp.zeros((), unit.dtype))

  def body(carry, pair):
    d_u, d_q, d_tau = carry
    i, j = pair
    rows_i, cols_i = _tile_rows(blocks, i, tau)
    rows_j, cols_j = _tile_rows(blocks, j, tau)
    s = jnp.matmul(rows_i[0], cols_j[0].T, precision=_HIGHEST)
    _, _, d_s_ij, d_w_ij = _tile_cotangents(rows_i, cols_j, *(x[i] for x in per_row), spec,
                                            s, True)
    _, _, d_s_ji, d_w_ji = _tile_cotangents(rows_j, cols_i, *(x[j] for x in per_row), spec,
                                            s.T, i != j)
    g = d_s_ij + d_s_ji.T  # dL/ds for the pairs (I, J), both directions
    d_u = d_u.at[i].add(jnp.matmul(g, cols_j[0], precision=_HIGHEST) / tau)
    d_u = d_u.at[j].add(jnp.matmul(g.T, cols_i[0], precision=_HIGHEST) / tau)
    d_tau = d_tau - jnp.sum(g * s) / tau
    if d_q is not None:
      d_q = d_q.at[i].add(jnp.matmul(d_w_ij, e_t[j], precision=_HIGHEST))
      d_q = d_q.at[j].add(jnp.matmul(d_w_ji, e_t[i], precision=_HIGHEST))
    return (d_u, d_q, d_tau), None

  (d_u, d_q, d_tau), _ = jax.lax.scan(body, init, pairs)
  batch = unit.shape[0]
  d_u = d_u.reshape((-1,) + d_u.shape[2:])[:batch]
  d_rest = tuple(_zero_cotangent(x) for x in rest)
  if d_q is not None:
    d_rest = (d_q.reshape((-1,) + d_q.shape[2:])[:batch],) + d_rest[1:]
  return d_u, d_tau.astype(jnp.result_type(tau)), d_rest


_symmetric_stats.defvjp(_symmetric_stats_fwd, _symmetric_stats_bwd)


# --------------------------------------------------------------------------------------
# The losses.
# --------------------------------------------------------------------------------------


def _check_tiling(fn: str, batch: int, tile_size: int, mesh, axis_name: str) -> int:
  if isinstance(tile_size, bool) or not isinstance(tile_size, (int, np.integer)) or tile_size < 1:
    raise ValueError(f"{fn}: `tile_size` must be a positive integer; got {tile_size!r}")
  if mesh is None:
    return 1
  if axis_name not in mesh.shape:
    raise ValueError(f"{fn}: `axis_name` {axis_name!r} is not an axis of the mesh "
                     f"{dict(mesh.shape)}")
  shards = int(mesh.shape[axis_name])
  if batch % shards:
    raise ValueError(f"{fn}: the ring needs the batch ({batch} rows of `embeddings`) to be a "
                     f"multiple of the {shards} devices of mesh axis {axis_name!r}")
  return shards


def _contrastive(embeddings, valid, temperature, row_labels, q, e, anchor_weights_fn, *,
                 multilabel: bool, weighting: str | None, tile_size: int, mesh, axis_name: str,
                 dtype, reduction: str):
  """The shared body: row statistics (tiled or ring) and the mean (or sum) over anchors."""
  batch = _shape(embeddings)[0]
  unit = _normalized(embeddings, valid, dtype)
  anchors = unit / jnp.asarray(temperature, dtype=dtype)
  index = jnp.arange(batch, dtype=jnp.int32)
  shards = 1 if mesh is None else int(mesh.shape[axis_name])
  if shards == 1:
    spec = _Spec(multilabel, weighting, int(tile_size))
    tau = jnp.asarray(temperature, dtype=dtype)
    log_denominator, positive_sum, positive_count = _symmetric_stats(
        spec, unit, tau, (q, e, valid, index, row_labels))
  else:
    spec = _Spec(multilabel, weighting, int(tile_size), axis_name, shards)
    sharded = jax.sharding.PartitionSpec(axis_name)

    def local(anchors, unit, q, e, valid, index, labels):
      rows = (anchors, q, valid, index, labels)
      cols = (unit, e, valid, index, labels)
      return _row_stats(spec, rows, cols)

    mapped = jax.shard_map(local, mesh=mesh, in_specs=sharded, out_specs=sharded,
                           check_vma=False)
    args = (anchors, unit, q, e, valid, index, row_labels)
    if jax.sharding.AxisType.Explicit in tuple(getattr(mesh, "axis_types", ())):
      # An Explicit mesh (jax.make_mesh's default) types each array's sharding: every
      # input, the internally built ones (valid, index, labels) included, is resharded
      # over the batch axis, as shard_map's in_specs require.
      target = jax.sharding.NamedSharding(mesh, sharded)
      args = tuple(jax.reshard(x, target) for x in args)
    log_denominator, positive_sum, positive_count = mapped(*args)
  has_positive = positive_count > 0
  mean_positive = positive_sum / jnp.where(has_positive, positive_count, 1).astype(dtype)
  per_anchor = log_denominator - mean_positive
  if anchor_weights_fn is not None:
    per_anchor = anchor_weights_fn() * per_anchor
  per_anchor = jnp.where(has_positive, per_anchor, 0)
  # As the dense losses: a traced temperature <= 0 gives NaN, not a wrong finite value.
  return _nan_unless_positive(temperature, _reduce_anchors(per_anchor, has_positive, reduction))


_TILING_DOC = """
  Tiling arguments (beyond the dense loss's):
    tile_size: columns per tile (memory ~ rows x tile_size per pair matrix); B need not
      be a multiple of it.
    mesh: a `jax.sharding.Mesh`; if given and its `axis_name` axis has n > 1 devices,
      the ring over those devices is used (B must be a multiple of n; the inputs, and
      the arrays built inside, are resharded over that axis if they are not already,
      for Auto and Explicit mesh axes alike: `jax.make_mesh`'s default is Explicit;
      JAX differentiates an Explicit mesh's program only under `jax.set_mesh(mesh)`).
    axis_name: the mesh axis of the batch.
  Raises ValueError as the dense loss, and for a bad `tile_size` / `axis_name` or a
  batch the ring cannot split.
"""


def supcon_loss(embeddings: ArrayLike, labels: ArrayLike, *, temperature: float | ArrayLike,
                valid: ArrayLike | None = None, reduction: str = "mean",
                tile_size: int = DEFAULT_TILE_SIZE, mesh: jax.sharding.Mesh | None = None,
                axis_name: str = "data") -> jax.Array:
  fn = "tiled supcon_loss"
  batch, _, valid = _check_contrastive_args(
      fn, embeddings, labels, multilabel=False, valid=valid, temperature=temperature,
      reduction=reduction)
  _check_tiling(fn, batch, tile_size, mesh, axis_name)
  dtype = _compute_dtype(embeddings)
  return _contrastive(embeddings, valid, temperature, jnp.asarray(labels), None, None, None,
                      multilabel=False, weighting=None, tile_size=tile_size, mesh=mesh,
                      axis_name=axis_name, dtype=dtype, reduction=reduction)


def lcl_loss(embeddings: ArrayLike, labels: ArrayLike, weight_logits: ArrayLike, *,
             temperature: float | ArrayLike, valid: ArrayLike | None = None,
             reduction: str = "mean", tile_size: int = DEFAULT_TILE_SIZE,
             mesh: jax.sharding.Mesh | None = None, axis_name: str = "data") -> jax.Array:
  fn = "tiled lcl_loss"
  batch, num_classes, valid = _check_contrastive_args(
      fn, embeddings, labels, multilabel=False, weight_logits=weight_logits, valid=valid,
      temperature=temperature, reduction=reduction)
  _check_tiling(fn, batch, tile_size, mesh, axis_name)
  dtype = _compute_dtype(embeddings, weight_logits)
  labels = jnp.asarray(labels)
  log_w = _class_log_weights(weight_logits, valid, dtype)  # [B, C]
  one_hot, in_range = _one_hot_in_range(labels, valid, num_classes, dtype)
  anchor_weights = lambda: jnp.exp(jnp.sum(log_w * one_hot, axis=-1))  # w_{i, y_i}
  loss = _contrastive(embeddings, valid, temperature, labels, log_w, one_hot, anchor_weights,
                      multilabel=False, weighting="log", tile_size=tile_size, mesh=mesh,
                      axis_name=axis_name, dtype=dtype, reduction=reduction)
  return _nan_unless(jnp.all(in_range), loss)


def multilabel_supcon_loss(embeddings: ArrayLike, label_sets: ArrayLike, *,
                           temperature: float | ArrayLike, valid: ArrayLike | None = None,
                           reduction: str = "mean", tile_size: int = DEFAULT_TILE_SIZE,
                           mesh: jax.sharding.Mesh | None = None,
                           axis_name: str = "data") -> jax.Array:
  fn = "tiled multilabel_supcon_loss"
  batch, _, valid = _check_contrastive_args(
      fn, embeddings, label_sets, multilabel=True, valid=valid, temperature=temperature,
      reduction=reduction)
  _check_tiling(fn, batch, tile_size, mesh, axis_name)
  dtype = _compute_dtype(embeddings)
  members = (jnp.asarray(label_sets) != 0).astype(dtype)
  return _contrastive(embeddings, valid, temperature, members, None, None, None,
                      multilabel=True, weighting=None, tile_size=tile_size, mesh=mesh,
                      axis_name=axis_name, dtype=dtype, reduction=reduction)


def multilabel_lcl_loss(embeddings: ArrayLike, label_sets: ArrayLike, weight_logits: ArrayLike,
                        *, temperature: float | ArrayLike, valid: ArrayLike | None = None,
                        reduction: str = "mean", tile_size: int = DEFAULT_TILE_SIZE,
                        mesh: jax.sharding.Mesh | None = None,
                        axis_name: str = "data") -> jax.Array:
  fn = "tiled multilabel_lcl_loss"
  batch, _, valid = _check_contrastive_args(
      fn, embeddings, label_sets, multilabel=True, weight_logits=weight_logits, valid=valid,
      temperature=temperature, reduction=reduction)
  _check_tiling(fn, batch, tile_size, mesh, axis_name)
  dtype = _compute_dtype(embeddings, weight_logits)
  members = (jnp.asarray(label_sets) != 0).astype(dtype)
  class_weights = jnp.exp(_class_log_weights(weight_logits, valid, dtype))  # [B, C]
  anchor_weights = lambda: jnp.sum(class_weights * members, axis=-1)  # W_ii
  return _contrastive(embeddings, valid, temperature, members, class_weights, members,
                      anchor_weights, multilabel=True, weighting="linear",
                      tile_size=tile_size, mesh=mesh, axis_name=axis_name, dtype=dtype,
                      reduction=reduction)


for _tiled, _dense in ((supcon_loss, dense.supcon_loss), (lcl_loss, dense.lcl_loss),
                       (multilabel_supcon_loss, dense.multilabel_supcon_loss),
                       (multilabel_lcl_loss, dense.multilabel_lcl_loss)):
  _tiled.__doc__ = (f"Tiled / ring version of :func:`lcl_jax.losses.{_dense.__name__}` "
                    "(same value and gradient, memory O(B * tile_size)).\n\n  The dense "
                    "docstring follows.\n" + _TILING_DOC + "\n  " + (_dense.__doc__ or ""))
