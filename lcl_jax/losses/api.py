"""The public contrastive losses: one function per loss, choosing an implementation.

:func:`supcon_loss`, :func:`lcl_loss`, :func:`multilabel_supcon_loss` and
:func:`multilabel_lcl_loss` take the arguments of the dense losses
(:mod:`lcl_jax.losses.contrastive`) plus four keyword-only options:

* ``impl``: ``'auto'`` (default), ``'dense'``, ``'tiled'`` or ``'ring'``;
* ``tile_size``: columns per tile (tiled / ring; default :data:`DEFAULT_TILE_SIZE`);
* ``mesh``: a :class:`jax.sharding.Mesh` whose ``axis_name`` axis holds the batch (ring);
* ``axis_name``: that axis (default ``'data'``; only with ``mesh``).

All implementations give the same value and gradient (to float32 rounding, ~1e-6
relative: only the order of summation inside the log-sum-exp differs). For ``B`` rows
of width ``D`` (``C`` classes, ``n`` devices of the mesh axis, ``T = tile_size``), a
jitted forward + backward costs:

========  ============================  ==============================  ===================
impl      time (FLOP)                   memory of the pair terms         when
========  ============================  ==============================  ===================
dense     ~6 B^2 D (S = U U^T, dS U,    O(B^2): several [B, B] float32   small batches
          dS^T U)                       arrays (56 GB at B = 65,536)
tiled     ~4 B^2 D (symmetric [T, T]    O(T^2 + B D): [T, T] blocks      one device, large B
          blocks: each pair I <= J      (1 MiB at T = 512) beside the
          once forward, once again in   [B, D] features and gradient
          the backward)
ring      ~8 B^2 D / n per device (the  O(B T / n) per device, plus n    a mesh with n > 1
          backward recomputes S)        ppermutes of [B / n, D] blocks   devices, large B
========  ============================  ==============================  ===================

(LCL adds O(B^2 C) FLOP for the class weights of every pair; every impl also holds
the ``[B, D]`` inputs, unit features and their gradient: O(B D) bytes, O(B D / n) per
device for the ring. Measured on one CPU core, BUILD_NOTES "Large contrastive
batches": at B = 65,536, D = 768 the tiled fwd+bwd takes 240 s in 1.2 GB; the dense
one would need 56 GB.)

``impl='auto'`` decides at trace time from the static batch size: the dense loss
below :data:`AUTO_THRESHOLD` rows, at or above it the ring if ``mesh`` is given with
more than one device on ``axis_name`` (and ``B`` is a multiple of it), else the tiled
loss. :func:`choose_impl` is that rule; the trainer's ``--contrastive_impl`` goes
through it too (:class:`Contrastive`), so one place decides.

Options that do not apply raise ``ValueError`` naming the option: ``tile_size`` or
``mesh`` with ``impl='dense'``, ``mesh`` with ``impl='tiled'``, ``impl='ring'``
without ``mesh``, ``axis_name`` without ``mesh``, an unknown ``impl``.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
from jax.typing import ArrayLike

from lcl_jax.losses import contrastive as dense
from lcl_jax.losses import tiled
from lcl_jax.losses._checks import _check_embeddings, _shape

__all__ = ["supcon_loss", "lcl_loss", "multilabel_supcon_loss", "multilabel_lcl_loss",
           "choose_impl", "Contrastive", "AUTO_THRESHOLD", "DEFAULT_TILE_SIZE",
           "IMPLEMENTATIONS"]

IMPLEMENTATIONS = tiled.IMPLEMENTATIONS  # ('auto', 'dense', 'tiled', 'ring')
DEFAULT_TILE_SIZE = tiled.DEFAULT_TILE_SIZE
# Rows from which 'auto' leaves the dense loss: the measured crossover (BUILD_NOTES,
# "Large contrastive batches"; LCL fwd+bwd, one core of the 2-core EPYC box): at
# B = 2,048 the tiled loss takes 0.38 s vs dense 0.64 s (D = 768) and 0.11 vs 0.14 s
# (D = 64); at B = 1,024 the dense loss is faster (0.11 vs 0.16 s at D = 768: the
# tiled one is a single 512-tile pair scan with its fixed costs), and its [B, B]
# arrays are 4 MiB each. Every training batch of the paper's recipes (<= 128 rows)
# stays dense; from 2,048 rows the tiled loss is faster and O(B * tile) in memory.
AUTO_THRESHOLD = 2048
DEFAULT_AXIS_NAME = "data"


def _num_shards(mesh: Any, axis_name: str) -> int:
  return 1 if mesh is None else int(dict(mesh.shape).get(axis_name, 1))


def choose_impl(impl: str, batch: int, *, mesh: Any = None,
                axis_name: str = DEFAULT_AXIS_NAME,
                auto_threshold: int = AUTO_THRESHOLD) -> str:
  """The implementation ('dense' | 'tiled' | 'ring') that runs for `batch` rows.

  Args:
    impl: 'auto', 'dense', 'tiled' or 'ring'.
    batch: the global batch B (a static Python int: the array's leading dimension).
    mesh: the device mesh, or None (one device / jit's own partitioning).
    axis_name: the batch axis of `mesh`.
    auto_threshold: rows from which 'auto' stops using the dense loss.

  Returns:
    'dense' / 'tiled' for those; 'ring' only if `mesh` has more than one device on
    `axis_name` (a one-device ring is the tiled loss, so 'ring' gives 'tiled' there).
    'auto': 'dense' if batch < auto_threshold, else 'ring' if the mesh axis has n > 1
    devices and n divides the batch, else 'tiled'.

  Raises:
    ValueError: `impl` is not one of IMPLEMENTATIONS.

  Example:
    >>> from lcl_jax.losses import choose_impl
    >>> [choose_impl("auto", b) for b in (64, 2048, 65536)]
    ['dense', 'tiled', 'tiled']
    >>> choose_impl("ring", 4096)  # no mesh: a one-device ring is the tiled loss
    'tiled'
  """
  if impl not in IMPLEMENTATIONS:
    raise ValueError(f"`impl` must be one of {IMPLEMENTATIONS}; got {impl!r}")
  shards = _num_shards(mesh, axis_name)
  if impl == "auto":
    if batch < auto_threshold:
      return "dense"
    return "ring" if shards > 1 and batch % shards == 0 else "tiled"
  if impl == "ring" and shards == 1:
    return "tiled"
  return impl


def _check_options(fn: str, impl: Any, tile_size: Any, mesh: Any, axis_name: Any) -> None:
  """Options that do not apply to `impl` raise, naming the option."""
  if impl not in IMPLEMENTATIONS:
    raise ValueError(f"{fn}: `impl` must be one of {IMPLEMENTATIONS}; got {impl!r}")
  if impl == "dense" and tile_size is not None:
    raise ValueError(f"{fn}: `tile_size` does not apply to impl='dense' (it sizes the "
                     "column tiles of impl='tiled' / 'ring' / 'auto')")
  if impl in ("dense", "tiled") and mesh is not None:
    raise ValueError(f"{fn}: `mesh` does not apply to impl={impl!r} (only 'ring' and "
                     "'auto' pass blocks around the mesh; the dense loss follows the "
                     "inputs' sharding under jit)")
  if impl == "ring" and mesh is None:
    raise ValueError(f"{fn}: impl='ring' needs `mesh` (a jax.sharding.Mesh with the batch "
                     "axis `axis_name`)")
  if axis_name is not None and mesh is None:
    raise ValueError(f"{fn}: `axis_name` applies only with `mesh` (impl='ring' or 'auto')")
  if mesh is not None:
    name = DEFAULT_AXIS_NAME if axis_name is None else axis_name
    if name not in dict(mesh.shape):
      raise ValueError(f"{fn}: `axis_name` {name!r} is not an axis of the mesh "
                       f"{dict(mesh.shape)}")


def _dispatch(fn: str, embeddings, args, kwargs, impl, tile_size, mesh, axis_name):
  """Checks the options, chooses the implementation and calls the loss `fn` of it."""
  _check_options(fn, impl, tile_size, mesh, axis_name)
  axis_name = DEFAULT_AXIS_NAME if axis_name is None else axis_name
  batch = _check_embeddings(fn, embeddings)
  chosen = choose_impl(impl, batch, mesh=mesh, axis_name=axis_name)
  if chosen == "dense":
    return getattr(dense, fn)(embeddings, *args, **kwargs)
  tile_size = DEFAULT_TILE_SIZE if tile_size is None else tile_size
  return getattr(tiled, fn)(embeddings, *args, tile_size=tile_size,
                              mesh=mesh if chosen == "ring" else None,
                              axis_name=axis_name, **kwargs)


def supcon_loss(embeddings: ArrayLike, labels: ArrayLike, *, temperature: float | ArrayLike,
                valid: ArrayLike | None = None, reduction: str = "mean", impl: str = "auto",
                tile_size: int | None = None, mesh: jax.sharding.Mesh | None = None,
                axis_name: str | None = None) -> jax.Array:
  return _dispatch("supcon_loss", embeddings, (labels,),
                   dict(temperature=temperature, valid=valid, reduction=reduction),
                   impl, tile_size, mesh, axis_name)


def lcl_loss(embeddings: ArrayLike, labels: ArrayLike, weight_logits: ArrayLike, *,
             temperature: float | ArrayLike, valid: ArrayLike | None = None,
             reduction: str = "mean", impl: str = "auto", tile_size: int | None = None,
             mesh: jax.sharding.Mesh | None = None, axis_name: str | None = None) -> jax.Array:
  return _dispatch("lcl_loss", embeddings, (labels, weight_logits),
                   dict(temperature=temperature, valid=valid, reduction=reduction),
                   impl, tile_size, mesh, axis_name)


def multilabel_supcon_loss(embeddings: ArrayLike, label_sets: ArrayLike, *,
                           temperature: float | ArrayLike, valid: ArrayLike | None = None,
                           reduction: str = "mean", impl: str = "auto",
                           tile_size: int | None = None,
                           mesh: jax.sharding.Mesh | None = None,
                           axis_name: str | None = None) -> jax.Array:
  return _dispatch("multilabel_supcon_loss", embeddings,
                   (label_sets,), dict(temperature=temperature, valid=valid,
                                       reduction=reduction),
                   impl, tile_size, mesh, axis_name)


def multilabel_lcl_loss(embeddings: ArrayLike, label_sets: ArrayLike, weight_logits: ArrayLike,
                        *, temperature: float | ArrayLike, valid: ArrayLike | None = None,
                        reduction: str = "mean", impl: str = "auto",
                        tile_size: int | None = None, mesh: jax.sharding.Mesh | None = None,
                        axis_name: str | None = None) -> jax.Array:
  return _dispatch("multilabel_lcl_loss", embeddings,
                   (label_sets, weight_logits),
                   dict(temperature=temperature, valid=valid, reduction=reduction),
                   impl, tile_size, mesh, axis_name)


_OPTIONS_DOC = """
  Implementation (keyword-only; see :mod:`lcl_jax.losses.api` for the rule and costs):
    impl: 'auto' (default: dense below AUTO_THRESHOLD = 2,048 rows, decided at trace
      time from the static batch size; at or above it the ring if `mesh` has > 1
      devices on `axis_name`, else tiled), 'dense', 'tiled' or 'ring'.
      Cost of a jitted fwd+bwd for B rows of width D (T = tile_size, n devices):
      dense ~6 B^2 D FLOP, O(B^2) memory (several [B, B] float32 arrays: 4 B^2 bytes
      each); tiled ~4 B^2 D FLOP (symmetric [T, T] blocks, recomputed in the
      backward), O(T^2 + B D) memory; ring ~8 B^2 D / n FLOP and O(B T / n + B D / n)
      memory per device, plus n ppermutes of [B / n, D] blocks each way.
    tile_size: columns per tile for tiled / ring (default 512); B need not be a
      multiple of it.
    mesh: a jax.sharding.Mesh for the ring (B must be a multiple of its `axis_name`
      size; inputs are resharded over that axis if they are not already).
    axis_name: the batch axis of `mesh` (default 'data').
  Raises (beyond the dense loss's ValueErrors): ValueError naming `impl`,
  `tile_size`, `mesh` or `axis_name` when the option is unknown or does not apply
  (`tile_size`/`mesh` with impl='dense', `mesh` with impl='tiled', impl='ring' without
  `mesh`, `axis_name` without `mesh`), and for a bad tile size or a batch the ring
  cannot split.
"""

for _public, _dense in ((supcon_loss, dense.supcon_loss), (lcl_loss, dense.lcl_loss),
                        (multilabel_supcon_loss, dense.multilabel_supcon_loss),
                        (multilabel_lcl_loss, dense.multilabel_lcl_loss)):
  _doc = _dense.__doc__ or ""
  _cut = _doc.find("\n  Example:")
  _cut = len(_doc) if _cut < 0 else _cut
  _public.__doc__ = _doc[:_cut] + "\n" + _OPTIONS_DOC + _doc[_cut:]

lcl_loss.__doc__ += """
  Every implementation gives the same value:
    >>> for impl in ("dense", "tiled"):
    ...   print(impl, f"{lcl_loss(embeddings, labels, weight_logits, temperature=0.5, impl=impl):.4f}")
    dense -0.0875
    tiled -0.0875
    >>> lcl_loss(embeddings, labels, weight_logits, temperature=0.5, impl="dense", tile_size=2)
    Traceback (most recent call last):
    ...
    ValueError: lcl_loss: `tile_size` does not apply to impl='dense' (it sizes the column tiles of impl='tiled' / 'ring' / 'auto')
"""


@dataclasses.dataclass(frozen=True)
class Contrastive:
  """A choice of implementation for the objectives' contrastive term (and the trainer).

  Has the four loss functions as methods with the dense signatures, so
  ``lcl_jax.losses.lcl_objective(..., contrastive=Contrastive('tiled'))`` works; each
  call decides with :func:`choose_impl` (the same rule as the public losses).

  Attributes:
    impl: 'auto' | 'dense' | 'tiled' | 'ring' (see :func:`choose_impl`; 'ring' on a
      one-device mesh, or without one, runs the tiled loss).
    tile_size: columns per tile.
    auto_threshold: global batch rows from which 'auto' leaves the dense loss.
    mesh, axis_name: the data-parallel mesh and its batch axis (ring only).
  """
  impl: str = "auto"
  tile_size: int = DEFAULT_TILE_SIZE
  auto_threshold: int = AUTO_THRESHOLD
  mesh: Any = None
  axis_name: str = DEFAULT_AXIS_NAME

  def __post_init__(self):
    if self.impl not in IMPLEMENTATIONS:
      raise ValueError(f"Contrastive.impl={self.impl!r}: must be one of {IMPLEMENTATIONS}")

  def choose(self, batch: int) -> str:
    """'dense', 'tiled' or 'ring' for a global batch of `batch` rows."""
    return choose_impl(self.impl, batch, mesh=self.mesh, axis_name=self.axis_name,
                       auto_threshold=self.auto_threshold)

  def _call(self, name: str, embeddings, *args, **kwargs):
    chosen = self.choose(_shape(embeddings)[0])
    if chosen == "dense":
      return globals()[name](embeddings, *args, impl="dense", **kwargs)
    ring = chosen == "ring"
    return globals()[name](embeddings, *args, impl=chosen, tile_size=self.tile_size,
                           mesh=self.mesh if ring else None,
                           axis_name=self.axis_name if ring else None, **kwargs)

  def supcon_loss(self, embeddings, labels, **kwargs):
    return self._call("supcon_loss", embeddings, labels, **kwargs)

  def lcl_loss(self, embeddings, labels, weight_logits, **kwargs):
    return self._call("lcl_loss", embeddings, labels, weight_logits, **kwargs)

  def multilabel_supcon_loss(self, embeddings, label_sets, **kwargs):
    return self._call("multilabel_supcon_loss", embeddings, label_sets, **kwargs)

  def multilabel_lcl_loss(self, embeddings, label_sets, weight_logits, **kwargs):
    return self._call("multilabel_lcl_loss", embeddings, label_sets, weight_logits, **kwargs)
