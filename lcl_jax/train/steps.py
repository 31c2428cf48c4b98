"""The jitted train and eval steps, for the `jit` (sharded) and `pmap` paths.

State is a plain pytree `{'params': {network: ...}, 'opt_state': ..., 'step': int32}`
so orbax, sharding and pmap all handle it directly.

Under `jit`, the batch is one global array sharded over the mesh's 'data' axis and
XLA inserts the collectives: the contrastive loss always sees the whole global batch.
Under `pmap` (axis name given), each device runs its rows through the networks, then
all-gathers the outputs, labels and masks so that every device evaluates the same
global loss. NOTE: the transpose of `all_gather` is a reduce-scatter (sum), so every
device's gradient is `num_devices` times its share of the true gradient of the
(identical) global loss; `pmean` over devices therefore gives exactly the
single-device gradient.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import optax

from lcl_jax.train import objectives


def init_state(params: Any, optimizer: optax.GradientTransformation) -> dict[str, Any]:
  return {"params": params, "opt_state": optimizer.init(params),
          "step": jnp.zeros((), jnp.int32)}


def make_train_step(
    spec: objectives.ObjectiveSpec,
    modules: Mapping[str, Any],
    optimizer: optax.GradientTransformation,
    *,
    alpha: float,
    temperature: float,
    multilabel: bool,
    dropout_key: jax.Array,
    use_dropout: bool = True,
    axis_name: str | None = None,
    contrastive: Any = None,
) -> Callable[[dict[str, Any], Mapping[str, jax.Array]], tuple[dict[str, Any], dict]]:
  """Returns `train_step(state, batch) -> (state, metrics)` (not yet jitted).

  `contrastive`: None (dense losses) or a `lcl_jax.tiled_losses.Contrastive`.

  Dropout keys are `fold_in(dropout_key, step)` (and the device index under pmap),
  so a resumed run draws exactly the masks an uninterrupted one would.
  """

  def loss_fn(params, batch, key):
    outputs = objectives.forward(modules, params, batch, dropout_key=key,
                                 deterministic=not use_dropout)
    labels, valid = batch["labels"], batch["valid"]
    if axis_name is not None:
      gather = lambda x: jax.lax.all_gather(x, axis_name, axis=0, tiled=True)
      outputs, labels, valid = jax.tree.map(gather, (outputs, labels, valid))
    return objectives.loss_from_outputs(
        spec, outputs, labels, valid, alpha=alpha, temperature=temperature,
        multilabel=multilabel, contrastive=contrastive)

  def train_step(state, batch):
    key = jax.random.fold_in(dropout_key, state["step"])
    if axis_name is not None:
      key = jax.random.fold_in(key, jax.lax.axis_index(axis_name))
    (loss, components), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state["params"], batch, key)
    if axis_name is not None:
      grads = jax.lax.pmean(grads, axis_name)
    updates, opt_state = optimizer.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    metrics = {name: value.astype(jnp.float32) for name, value in components.items()}
    metrics["loss"] = loss.astype(jnp.float32)
    for name, network_grads in grads.items():
      metrics[f"grad_norm_{name}"] = optax.tree.norm(network_grads)
    new_state = {"params": params, "opt_state": opt_state, "step": state["step"] + 1}
    return new_state, metrics

  return train_step


def make_eval_step(
    modules: Mapping[str, Any],
) -> Callable[[Any, Mapping[str, jax.Array]], dict[str, jax.Array]]:
  """Returns `eval_step(params, batch) -> {'logits'[, 'weight_logits'], 'example_index'}`.

  Logits are float32; `example_index` is passed through so that the rows of every
  device and host can be put back in dataset order after gathering.
  """

  def eval_step(params, batch):
    outputs = objectives.forward(modules, params, batch, dropout_key=None, deterministic=True)
    result = {name: outputs[name].astype(jnp.float32)
              for name in ("logits", "weight_logits") if name in outputs}
    result["example_index"] = batch["example_index"]
    return result

  return eval_step
