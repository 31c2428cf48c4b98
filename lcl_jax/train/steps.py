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


def all_finite(tree: Any) -> jax.Array:
  """A bool scalar: no NaN/inf in any floating leaf of `tree` (one reduction a leaf)."""
  leaves = [jnp.isfinite(x).all() for x in jax.tree.leaves(tree)
            if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]
  return jnp.stack(leaves).all() if leaves else jnp.asarray(True)


def init_state(params: Any, optimizer: optax.GradientTransformation,
               stage2_optimizer: optax.GradientTransformation | None = None) -> dict[str, Any]:
  """The initial state; with a stage-2 optimiser (two-stage training) `opt_state` is
  `{'stage1': ..., 'stage2': ...}` from the start, so checkpoints of both stages share
  one structure."""
  opt_state = optimizer.init(params)
  if stage2_optimizer is not None:
    opt_state = {"stage1": opt_state, "stage2": stage2_optimizer.init(params)}
  return {"params": params, "opt_state": opt_state, "step": jnp.zeros((), jnp.int32)}


def with_precision(precision: str, step_fn: Callable) -> Callable:
  """`step_fn` traced and run under jax.default_matmul_precision(precision)."""
  def wrapped(*args):
    with jax.default_matmul_precision(precision):
      return step_fn(*args)
  return wrapped


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
    stage2_optimizer: optax.GradientTransformation | None = None,
    stage2_start_step: int | None = None,
    contrastive: Any = None,
    aux_weight: Callable[[jax.Array], jax.Array] | None = None,
    contrastive_reduction: str = "mean",
    gradient_cache_chunk_size: int = 0,
    dropout_per_row: bool = False,
) -> Callable[[dict[str, Any], Mapping[str, jax.Array]], tuple[dict[str, Any], dict]]:
  """Returns `train_step(state, batch) -> (state, metrics)` (not yet jitted).

  The metrics are float32 scalars: `loss`, its components, `grad_norm_<network>` and
  `finite` (1.0 when the loss, the gradients and the updated params and optimiser
  state hold no NaN/inf, else 0.0: a finite loss can come with NaN gradients).
  `contrastive`: None (the public losses, impl='auto') or a `lcl_jax.losses.Contrastive`;
  `contrastive_reduction`: 'mean' or 'sum' over the SCL/LCL anchors (seed 001: 'sum').
  Dropout keys are `fold_in(dropout_key, step)` (and the device index under pmap),
  so a resumed run draws exactly the masks an uninterrupted one would.

  Two-stage training (seed 003): from step `stage2_start_step` on, `stage2_optimizer`
  (built with `freeze_encoders=True`) updates the heads and every network's
  'encoder' params are carried over unchanged (bit for bit); before it, `optimizer`
  updates everything. Each optimiser's state advances only in its own stage.

  Auxiliary task (seed 004): with `aux_weight` (`objectives.aux_weight_schedule`), the
  batch must carry `aux_labels` [R, G] and the loss is T * L_main + (1 - T) * L_aux with
  T = aux_weight(state['step']): T follows the state's update count, so a resumed run
  uses exactly the T an uninterrupted one would.

  Gradient caching (Gao et al. 2021; issue 19): with `gradient_cache_chunk_size` N > 0
  the gradient comes from `cached_loss_and_grads` (the networks run N global rows at a
  time: one chunk's activations in memory), equal to the plain step's to float32
  rounding. It implies `dropout_per_row`: each row's masks come from its own key
  `fold_in(fold_in(dropout_key, step), global row)`, whatever rows share a pass (a plain
  step with `dropout_per_row=True` draws the very same masks). N must divide the rows.
  """
  if (stage2_optimizer is None) != (stage2_start_step is None):
    raise ValueError("stage2_optimizer and stage2_start_step go together")
  if gradient_cache_chunk_size < 0:
    raise ValueError(f"gradient_cache_chunk_size={gradient_cache_chunk_size} must be >= 0")
  dropout_per_row = dropout_per_row or gradient_cache_chunk_size > 0
  loss_and_grads = _make_loss_and_grads(
      spec, modules, alpha=alpha, temperature=temperature, multilabel=multilabel,
      use_dropout=use_dropout, axis_name=axis_name, contrastive=contrastive,
      contrastive_reduction=contrastive_reduction, dropout_per_row=dropout_per_row,
      gradient_cache_chunk_size=gradient_cache_chunk_size)

  def train_step(state, batch):
    key = jax.random.fold_in(dropout_key, state["step"])
    if dropout_per_row:  # each row's key from its global index: no device index needed
      batch = {**batch, "row_index": _global_row_index(batch, axis_name)}
    elif axis_name is not None:
      key = jax.random.fold_in(key, jax.lax.axis_index(axis_name))
    weight = aux_weight(state["step"]) if aux_weight is not None else None
    (loss, components), grads = loss_and_grads(state["params"], batch, key, weight)
    if axis_name is not None:
      grads = jax.lax.pmean(grads, axis_name)
    if stage2_optimizer is None:
      updates, opt_state = optimizer.update(grads, state["opt_state"], state["params"])
      params = optax.apply_updates(state["params"], updates)
    else:
      params, opt_state = _staged_update(optimizer, stage2_optimizer, stage2_start_step,
                                         state, grads)
    metrics = _step_metrics(loss, components, grads, params, opt_state)
    new_state = {"params": params, "opt_state": opt_state, "step": state["step"] + 1}
    return new_state, metrics

  return train_step


def _make_loss_and_grads(spec, modules, *, alpha, temperature, multilabel, use_dropout,
                         axis_name, contrastive, contrastive_reduction, dropout_per_row,
                         gradient_cache_chunk_size) -> Callable:
  """`(params, batch, key, aux weight) -> ((loss, components), grads)` of the train step:
  the networks on the batch rows (per-row dropout keys: `batch['row_index']`), the
  outputs gathered over the pmap axis, the objective's loss; plain `jax.value_and_grad`
  or, with a chunk size, `cached_loss_and_grads`."""

  def run_networks(params, batch, key):
    if not dropout_per_row:
      return objectives.forward(modules, params, batch, dropout_key=key,
                                deterministic=not use_dropout)
    return objectives.forward_rows(modules, params, batch, dropout_key=key,
                                   row_index=batch["row_index"],
                                   deterministic=not use_dropout)

  def loss_of_outputs(outputs, batch, weight):
    labels, valid = batch["labels"], batch["valid"]
    aux_labels = batch["aux_labels"] if weight is not None else None
    if axis_name is not None:
      gather = lambda x: jax.lax.all_gather(x, axis_name, axis=0, tiled=True)
      outputs, labels, valid, aux_labels = jax.tree.map(
          gather, (outputs, labels, valid, aux_labels))
    return objectives.loss_from_outputs(
        spec, outputs, labels, valid, alpha=alpha, temperature=temperature,
        multilabel=multilabel, contrastive=contrastive, aux_labels=aux_labels,
        aux_weight=weight, contrastive_reduction=contrastive_reduction)

  def loss_and_grads(params, batch, key, weight):
    if gradient_cache_chunk_size:
      return cached_loss_and_grads(
          run_networks, lambda outputs: loss_of_outputs(outputs, batch, weight), params,
          batch, key, chunk_size=gradient_cache_chunk_size, num_shards=_num_shards(axis_name))
    loss_fn = lambda p: loss_of_outputs(run_networks(p, batch, key), batch, weight)
    return jax.value_and_grad(loss_fn, has_aux=True)(params)

  return loss_and_grads


# The batch entries gradient caching splits into chunks: what the networks read and the
# rows' global indices (their dropout keys); the loss's entries (labels, valid, ...) stay
# whole.
NETWORK_INPUTS = objectives.NETWORK_INPUTS + ("row_index",)


def _global_row_index(batch: Mapping[str, jax.Array], axis_name: str | None) -> jax.Array:
  """int32 [R]: each row's index in the global batch (under pmap: device-major)."""
  rows = batch["input_ids"].shape[0]
  index = jnp.arange(rows, dtype=jnp.int32)
  if axis_name is not None:
    index = index + jax.lax.axis_index(axis_name).astype(jnp.int32) * rows
  return index


def _num_shards(axis_name: str | None) -> int:
  """The devices a chunk's rows are split over, as the step sees them: under pmap the step
  holds one device's rows (N / devices of each chunk of N), under jit all of them (1)."""
  return jax.lax.axis_size(axis_name) if axis_name is not None else 1


def chunk_rows(x: jax.Array, num_chunks: int) -> jax.Array:
  """[R, ...] -> [num_chunks, R / num_chunks, ...], chunk c holding rows c, c + n, c + 2n,
  ... (n = num_chunks): strided, so that when the rows are sharded in contiguous blocks
  over the devices every chunk spans every device (each device runs its own rows of
  each chunk, with no data movement). `unchunk_rows` is its inverse."""
  rows = x.shape[0]
  return x.reshape((rows // num_chunks, num_chunks) + x.shape[1:]).swapaxes(0, 1)


def unchunk_rows(x: jax.Array) -> jax.Array:
  """[num_chunks, N, ...] -> [num_chunks * N, ...], the inverse of `chunk_rows`."""
  return x.swapaxes(0, 1).reshape((x.shape[0] * x.shape[1],) + x.shape[2:])


def cached_loss_and_grads(
    run_networks: Callable[[Any, Mapping[str, jax.Array], jax.Array], dict[str, jax.Array]],
    loss_of_outputs: Callable[[dict[str, jax.Array]], tuple[jax.Array, dict]],
    params: Any,
    batch: Mapping[str, jax.Array],
    key: jax.Array,
    *,
    chunk_size: int,
    num_shards: int = 1,
) -> tuple[tuple[jax.Array, dict], Any]:
  """`((loss, components), grads)` of `loss_of_outputs(run_networks(params, batch, key))`
  by gradient caching (Gao et al. 2021, Algorithm 1), in three passes:

  (a) the networks' outputs (features, logits, weight logits) for the batch, `chunk_size`
      rows at a time (`jax.lax.map`), without keeping any activation for a backward pass;
  (b) the loss and its gradient with respect to those outputs (the whole batch: the
      contrastive term couples every row with every other);
  (c) each chunk's forward again under `jax.vjp`, pulled back with (b)'s gradient of its
      rows, the parameter gradients summed over chunks (`jax.lax.scan`).
  Peak activation memory is that of one chunk's forward/backward instead of the batch's,
  for one more forward pass. `run_networks` must compute each row from that row alone
  (per-row dropout keys: `objectives.forward_rows`), so that (c) recomputes exactly (a)'s
  outputs and the result equals `jax.value_and_grad` of the whole (to float32
  summation order).

  Args:
    run_networks: `(params, rows, key) -> outputs`, rows any subset of the batch's rows
      (only `NETWORK_INPUTS` are passed).
    loss_of_outputs: `outputs -> (scalar loss, components)` for the whole batch.
    chunk_size: N, global rows a chunk; the step's rows R must be a multiple of N.
    num_shards: the devices the step's own view of the rows is split over (pmap: each
      device runs N / devices rows of every chunk).

  Raises:
    ValueError: R is not a multiple of the chunk (a trace-time error).
  """
  rows = batch["input_ids"].shape[0]
  local_chunk = chunk_size // num_shards if chunk_size % num_shards == 0 else 0
  if not local_chunk or rows % local_chunk:
    raise ValueError(
        f"--gradient_cache_chunk_size={chunk_size}: the step's {rows * num_shards} rows "
        f"over {num_shards} device(s) do not split into chunks of {chunk_size} rows")
  num_chunks = rows // local_chunk
  inputs = {name: batch[name] for name in NETWORK_INPUTS if name in batch}
  chunks = jax.tree.map(lambda x: chunk_rows(x, num_chunks), inputs)

  # (a) Outputs without stored activations (no gradient is taken through this pass).
  frozen = jax.lax.stop_gradient(params)
  outputs = jax.tree.map(unchunk_rows, jax.lax.map(
      lambda rows_c: run_networks(frozen, rows_c, key), chunks))
  # (b) The loss over the whole batch and its gradient with respect to the outputs.
  (loss, components), output_grads = jax.value_and_grad(loss_of_outputs, has_aux=True)(
      outputs)
  output_grads = jax.tree.map(lambda g: chunk_rows(g, num_chunks), output_grads)

  # (c) Each chunk's forward again, pulled back with its rows' output gradients.
  def accumulate(total, chunk):
    rows_c, grads_c = chunk
    _, pull_back = jax.vjp(lambda p: run_networks(p, rows_c, key), params)
    (grads,) = pull_back(grads_c)
    return jax.tree.map(jnp.add, total, grads), None

  zeros = jax.tree.map(jnp.zeros_like, params)
  grads, _ = jax.lax.scan(accumulate, zeros, (chunks, output_grads))
  return (loss, components), grads


def _staged_update(optimizer, stage2_optimizer, stage2_start_step, state, grads):
  """Two-stage training's update: stage 1's optimiser before `stage2_start_step`, then
  stage 2's with every network's 'encoder' params carried over unchanged."""
  old, in_stage2 = state["opt_state"], state["step"] >= stage2_start_step

  def stage1(_):
    updates, new = optimizer.update(grads, old["stage1"], state["params"])
    return optax.apply_updates(state["params"], updates), {"stage1": new,
                                                           "stage2": old["stage2"]}

  def stage2(_):
    updates, new = stage2_optimizer.update(grads, old["stage2"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    params = {name: {**p, "encoder": state["params"][name]["encoder"]}
              for name, p in params.items()}  # frozen: the very same arrays
    return params, {"stage1": old["stage1"], "stage2": new}

  return jax.lax.cond(in_stage2, stage2, stage1, None)


def _step_metrics(loss, components, grads, params, opt_state) -> dict[str, jax.Array]:
  """The train step's float32 metrics: the loss, its components, each network's gradient
  norm and `finite`."""
  metrics = {name: value.astype(jnp.float32) for name, value in components.items()}
  metrics["loss"] = loss.astype(jnp.float32)
  for name, network_grads in grads.items():
    metrics[f"grad_norm_{name}"] = optax.tree.norm(network_grads)
  # 1.0 iff the loss, every gradient and every number of the new state are finite;
  # checked on the host before any evaluation or checkpoint (trainer._Loop.flush).
  metrics["finite"] = all_finite((loss, grads, params, opt_state)).astype(jnp.float32)
  return metrics


def make_eval_step(
    modules: Mapping[str, Any],
    *,
    with_features: bool = False,
) -> Callable[[Any, Mapping[str, jax.Array]], dict[str, jax.Array]]:
  """Returns `eval_step(params, batch) -> {'logits'[, 'weight_logits'][, 'aux_logits'],
  'example_index'}` (`aux_logits` [R, G]: Φ's auxiliary head, when it has one).

  Logits are float32; `example_index` is passed through so that the rows of every
  device and host can be put back in dataset order after gathering. With
  `with_features`, also Φ's last-layer [CLS] vectors `features` [R, H] float32 (for
  the t-SNE figures of the multi-label studies).
  """
  names = ("logits", "weight_logits", "aux_logits") + (("features",) if with_features else ())

  def eval_step(params, batch):
    outputs = objectives.forward(modules, params, batch, dropout_key=None, deterministic=True)
    result = {name: outputs[name].astype(jnp.float32) for name in names if name in outputs}
    result["example_index"] = batch["example_index"]
    return result

  return eval_step


def make_group_train_step(
    spec: objectives.ObjectiveSpec,
    modules: Mapping[str, Any],
    optimizer: optax.GradientTransformation,
    *,
    multilabel: bool,
    use_dropout: bool = True,
    stage2_optimizer: optax.GradientTransformation | None = None,
    stage2_start_step: int | None = None,
    contrastive: Any = None,
    aux_weight: Callable[[jax.Array], jax.Array] | None = None,
    contrastive_reduction: str = "mean",
    gradient_cache_chunk_size: int = 0,
    dropout_per_row: bool = False,
) -> Callable[..., tuple[dict[str, Any], dict]]:
  """`make_train_step` for S runs at once: `jax.vmap` over a leading run axis.

  Returns `group_step(states, batches, runs) -> (states, metrics)` (not yet jitted):
  `states` is S run states stacked on axis 0, `batches` S batches `[S, R, ...]`
  (one shape: `data_pipeline.stack_run_batches`), `runs` the per-run scalars
  `{'alpha': f32[S], 'temperature': f32[S], 'dropout_key': key[S], 'active': bool[S]}`
  (traced: runs may differ in alpha and temperature without recompiling). Every
  metric of `make_train_step` comes back with shape [S]. A run with `active=False`
  (stopped early) keeps its state unchanged (its update is computed and discarded).
  Run i computes exactly the function `make_train_step(alpha=alpha[i], ...)` does,
  with the same dropout keys `fold_in(dropout_key[i], step)`.
  """
  def one_run(state, batch, run):
    step = make_train_step(
        spec, modules, optimizer, alpha=run["alpha"], temperature=run["temperature"],
        multilabel=multilabel, dropout_key=run["dropout_key"], use_dropout=use_dropout,
        stage2_optimizer=stage2_optimizer, stage2_start_step=stage2_start_step,
        contrastive=contrastive, aux_weight=aux_weight,
        contrastive_reduction=contrastive_reduction,
        gradient_cache_chunk_size=gradient_cache_chunk_size, dropout_per_row=dropout_per_row)
    new_state, metrics = step(state, batch)
    new_state = jax.tree.map(lambda new, old: jnp.where(run["active"], new, old),
                             new_state, state)
    return new_state, metrics

  return jax.vmap(one_run)
