"""The paper's optimiser: AdamW + linear decay to 0 + per-network gradient clipping.

Matches the authors' release (`transformers.AdamW` with the grouped parameters
`no_decay = ['bias', 'LayerNorm.weight']`, `get_linear_schedule_with_warmup` with 0
warm-up steps, and `clip_grad_norm_(max_norm=1.0)` called once per network).

Two AdamW update rules (`epsilon_mode`):

* ``"optax"`` -- `optax.adamw` (= `torch.optim.AdamW`): ε is added to the
  bias-corrected √v̂, and the decay term uses the parameters before the step:
  ``p ← p − lr·(m̂/(√v̂ + ε) + wd·p)``.
* ``"legacy_hf"`` -- transformers' legacy ``transformers.AdamW`` (``correct_bias=True``;
  the release pins transformers 3.1.0): ε is added to the *uncorrected* √v and the
  bias correction is folded into the step size, then the decay multiplies the
  already-updated parameters:
  ``p' = p − lr·(√(1−β₂ᵗ)/(1−β₁ᵗ))·m/(√v + ε)``, ``p ← p' − lr·wd·p'``
  (`legacy_hf_adamw`). The two differ most in the first steps, where √v is tiny and
  ε = 1e-6 is not negligible next to it.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from lcl_jax import choices

EPSILON_MODES = choices.ADAM_EPSILON_MODES  # (written once in lcl_jax.choices)


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


def learning_rate_schedule(learning_rate: float, total_steps: int,
                           schedule: str = "linear") -> optax.Schedule:
  """The rate of each update: 'linear' (the paper: decay from `learning_rate` to 0 over
  `total_steps`, no warm-up) or 'constant'. `rate(n)` is the rate of the (n+1)-th update
  (optax counts from 0); the trainer logs it with each step.

  Raises:
    ValueError: total_steps < 1 or an unknown schedule.
  """
  if total_steps < 1:
    raise ValueError(f"total_steps={total_steps} must be >= 1")
  schedules = {"linear": lambda: optax.linear_schedule(learning_rate, 0.0, total_steps),
               "constant": lambda: optax.constant_schedule(learning_rate)}
  if schedule not in schedules:
    raise ValueError(f"schedule={schedule!r}; expected one of {sorted(schedules)}")
  return schedules[schedule]()


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
    schedule: str = "linear",
    freeze_encoders: bool = False,
    epsilon_mode: str = "optax",
) -> optax.GradientTransformation:
  """AdamW over `params = {network_name: network_params, ...}`.

  Each top-level network (e.g. 'primary', 'weighting') is clipped to `clip_norm`
  by its own global norm, as the release clips each model separately.

  Args:
    schedule: 'linear' -- the rate decays linearly from `learning_rate` to 0 over
      `total_steps` (the paper); 'constant' -- `learning_rate` at every step (seeds
      000 and 003's "fixed lr").
    freeze_encoders: stage 2 of two-stage training: every network's 'encoder'
      sub-tree gets zero updates (and no optimiser state); clipping and AdamW see
      the 'head' sub-tree alone.
    epsilon_mode: the AdamW rule: ``"optax"`` (`optax.adamw`) or ``"legacy_hf"``
      (`legacy_hf_adamw`, the release's ``transformers.AdamW``); see the module
      docstring.

  Raises:
    ValueError: total_steps < 1, an unknown schedule or epsilon mode.
  """
  if epsilon_mode not in EPSILON_MODES:
    raise ValueError(f"adam_epsilon_mode={epsilon_mode!r}: must be one of {EPSILON_MODES}")
  rate = learning_rate_schedule(learning_rate, total_steps, schedule)

  def trainable_optimizer():
    # `decay_mask` is given as a function of the params it sees (under `freeze_encoders`
    # the head sub-tree alone).
    if epsilon_mode == "legacy_hf":
      adamw = legacy_hf_adamw(rate, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay,
                              mask=decay_mask)
    else:
      adamw = optax.adamw(rate, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay,
                          mask=decay_mask)
    return optax.chain(optax.clip_by_global_norm(clip_norm), adamw)

  def network_optimizer(network_params):
    if not freeze_encoders:
      return trainable_optimizer()
    if "encoder" not in network_params:
      raise ValueError(f"freeze_encoders: network params have no 'encoder' "
                       f"(keys {sorted(network_params)})")
    labels = {part: ("frozen" if part == "encoder" else "trainable") for part in network_params}
    return optax.multi_transform(
        {"trainable": trainable_optimizer(), "frozen": optax.set_to_zero()}, labels)

  return per_network({name: network_optimizer(p) for name, p in params.items()})


class Stages:
  """The optimisers of a run's two stages and the learning rate of each update.

  Stage 1 trains everything for `cfg.epochs` epochs; stage 2 (`cfg.head_epochs` > 0,
  two-stage training) trains the heads only, encoders frozen, at `head_learning_rate`
  (default: `learning_rate`), with its own schedule. `cfg` is a `TrainConfig`.
  """

  def __init__(self, params: Any, cfg: Any, steps_per_epoch: int):
    self.stage1_steps = steps_per_epoch * cfg.epochs
    self._stage1_rate = learning_rate_schedule(cfg.learning_rate, self.stage1_steps,
                                               cfg.lr_schedule)
    self._stage2_rate = (learning_rate_schedule(
        cfg.head_learning_rate or cfg.learning_rate, steps_per_epoch * cfg.head_epochs,
        cfg.lr_schedule) if cfg.head_epochs else None)
    options = dict(weight_decay=cfg.weight_decay, b1=cfg.adam_b1, b2=cfg.adam_b2,
                   eps=cfg.adam_eps, clip_norm=cfg.clip_norm, schedule=cfg.lr_schedule,
                   epsilon_mode=cfg.adam_epsilon_mode)
    self.optimizer = make_optimizer(params, learning_rate=cfg.learning_rate,
                                    total_steps=self.stage1_steps, **options)
    self.stage2_optimizer = None
    if cfg.head_epochs:
      self.stage2_optimizer = make_optimizer(
          params, learning_rate=cfg.head_learning_rate or cfg.learning_rate,
          total_steps=steps_per_epoch * cfg.head_epochs, freeze_encoders=True, **options)

  def learning_rate(self, s: int) -> float:
    """The rate of update number s (1-based), as the optimiser (stage 1 or 2) used it."""
    if self._stage2_rate is None or s <= self.stage1_steps:
      return float(self._stage1_rate(s - 1))
    return float(self._stage2_rate(s - 1 - self.stage1_steps))


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


class LegacyAdamWState(NamedTuple):
  """State of `legacy_hf_adamw`: step count (int32 scalar), first and second moments."""
  count: jax.Array
  mu: Any
  nu: Any


def legacy_hf_adamw(
    learning_rate: float | optax.Schedule,
    *,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-6,
    weight_decay: float = 0.0,
    mask: Any = None,
) -> optax.GradientTransformation:
  """transformers' legacy ``AdamW.step`` (``correct_bias=True``) as an optax transformation.

  For step t = 1, 2, ... with lr = `learning_rate(t − 1)` (the schedule is read before
  the step, like ``LambdaLR`` followed by ``optimizer.step()``)::

      m ← β₁ m + (1 − β₁) g;   v ← β₂ v + (1 − β₂) g²
      p' = p − lr · √(1 − β₂ᵗ)/(1 − β₁ᵗ) · m / (√v + ε)
      p_new = p' − lr · wd · p'          (only where `mask` is True)

  Source: ``transformers/optimization.py`` ``AdamW.step`` up to v4 (the release's
  ``from transformers import AdamW``, transformers 3.1.0). Returns updates
  ``p_new − p``; moments are kept in the gradients' dtype. Requires `params` in
  `update` when `weight_decay` is non-zero (ValueError otherwise).
  """
  schedule = learning_rate if callable(learning_rate) else (lambda _: learning_rate)

  def init_fn(params):
    zeros = lambda p: jnp.zeros_like(p)
    return LegacyAdamWState(count=jnp.zeros([], jnp.int32),
                            mu=jax.tree.map(zeros, params), nu=jax.tree.map(zeros, params))

  def update_fn(updates, state, params=None):
    count = state.count + 1
    mu = jax.tree.map(lambda m, g: b1 * m + (1.0 - b1) * g, state.mu, updates)
    nu = jax.tree.map(lambda v, g: b2 * v + (1.0 - b2) * g * g, state.nu, updates)
    lr = schedule(state.count)
    # Default float dtype (float64 under jax_enable_x64): 1 − β₂ᵗ cancels catastrophically.
    t = count.astype(jnp.result_type(float))
    step_size = lr * jnp.sqrt(1.0 - b2 ** t) / (1.0 - b1 ** t)
    adam = jax.tree.map(lambda m, v: -(step_size * m / (jnp.sqrt(v) + eps)).astype(m.dtype),
                        mu, nu)
    if weight_decay:
      if params is None:
        raise ValueError("legacy_hf_adamw with weight_decay needs params in update()")
      decay_on = (mask(params) if callable(mask) else mask) if mask is not None else (
          jax.tree.map(lambda _: True, params))
      # The decay multiplies the already-updated parameter p' = p + adam.
      adam = jax.tree.map(
          lambda a, p, on: a - (lr * weight_decay * (p + a)).astype(a.dtype) if on else a,
          adam, params, decay_on)
    return adam, LegacyAdamWState(count=count, mu=mu, nu=nu)

  return optax.GradientTransformation(init_fn, update_fn)
