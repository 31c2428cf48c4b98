"""The paper's optimiser: AdamW + linear decay to 0 + per-network gradient clipping.

Matches the authors' release (`transformers.AdamW` with the grouped parameters
`no_decay = ['bias', 'LayerNorm.weight']`, `get_linear_schedule_with_warmup` with 0
warm-up steps, and `clip_grad_norm_(max_norm=1.0)` called once per network).
"""
from __future__ import annotations

from typing import Any

import jax
import optax


def _path_names(path) -> list[str]:
  names = []
  for entry in path:
    for attr in ("key", "name", "idx"):
      if hasattr(entry, attr):
        names.append(str(getattr(entry, attr)))
        break
  return names


def decay_mask(params: Any) -> Any:
  """True for parameters that get weight decay: not biases, not LayerNorm."""

  def decays(path, _):
    names = _path_names(path)
    if names and names[-1] == "bias":
      return False
    return not any("layernorm" in n.lower() or "layer_norm" in n.lower() for n in names)

  return jax.tree_util.tree_map_with_path(decays, params)


def learning_rate_schedule(learning_rate: float, total_steps: int) -> optax.Schedule:
  """The paper's schedule: linear decay from `learning_rate` to 0 over `total_steps`, no
  warm-up. `schedule(n)` is the rate of the (n+1)-th update (optax counts from 0).

  Raises:
    ValueError: total_steps < 1.
  """
  if total_steps < 1:
    raise ValueError(f"total_steps={total_steps} must be >= 1")
  return optax.linear_schedule(learning_rate, 0.0, total_steps)


def make_optimizer(
    params: dict[str, Any],
    *,
    learning_rate: float,
    total_steps: int,
    weight_decay: float = 0.01,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-6,
    clip_norm: float = 1.0,
) -> optax.GradientTransformation:
  """AdamW over `params = {network_name: network_params, ...}`.

  Each top-level network (e.g. 'primary', 'weighting') is clipped to `clip_norm`
  by its own global norm, as the release clips each model separately; the
  learning rate decays linearly from `learning_rate` to 0 over `total_steps`.
  """
  schedule = learning_rate_schedule(learning_rate, total_steps)

  def network_optimizer(network_params):
    return optax.chain(
        optax.clip_by_global_norm(clip_norm),
        optax.adamw(schedule, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay,
                    mask=decay_mask(network_params)),
    )

  return per_network({name: network_optimizer(p) for name, p in params.items()})


def per_network(
    transforms: dict[str, optax.GradientTransformation],
) -> optax.GradientTransformation:
  """Applies `transforms[name]` to `params[name]`, each with its own state.

  Unlike `optax.multi_transform`, each inner transformation sees exactly its own
  network's sub-tree, so global-norm clipping and the weight-decay mask are per
  network.
  """

  def init_fn(params):
    _check_names(params)
    return {name: tx.init(params[name]) for name, tx in transforms.items()}

  def update_fn(updates, state, params=None):
    _check_names(updates)
    new_updates, new_state = {}, {}
    for name, tx in transforms.items():
      new_updates[name], new_state[name] = tx.update(
          updates[name], state[name], None if params is None else params[name])
    return new_updates, new_state

  def _check_names(tree):
    if set(tree) != set(transforms):
      raise ValueError(f"per_network optimiser built for networks {sorted(transforms)}, "
                       f"got {sorted(tree)}")

  return optax.GradientTransformation(init_fn, update_fn)
