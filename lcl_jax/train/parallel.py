"""Data parallelism over every device of every host: a sharded `jit` path and a `pmap` path.

Both replicate the parameters and split the global batch's rows over devices; both
let the contrastive loss see the whole global batch (see `steps.py`). Each process
feeds only its own rows (host-local data feeding): the batchers hand each process a
contiguous slice of the global rows, in process order, which is the row order the
global arrays are assembled in.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec

DATA_AXIS = "data"
RUNS_AXIS = "runs"  # S runs of one program (trainer.train_group)


def maybe_initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> None:
  """Multi-host start-up (`jax.distributed.initialize`); on TPU pods and SLURM/Open
  MPI clusters the arguments are auto-detected and may all be None."""
  jax.distributed.initialize(coordinator_address=coordinator_address,
                             num_processes=num_processes, process_id=process_id)


class JitDataParallel:
  """Parameters replicated, global batch sharded along a 1-D 'data' mesh, step under jit."""

  name = "jit"

  def __init__(self, devices: list[jax.Device] | None = None):
    devices = list(devices if devices is not None else jax.devices())
    self.mesh = jax.make_mesh((len(devices),), (DATA_AXIS,),
                              axis_types=(jax.sharding.AxisType.Auto,), devices=devices)
    self.replicated = NamedSharding(self.mesh, PartitionSpec())
    self.row_sharded = NamedSharding(self.mesh, PartitionSpec(DATA_AXIS))
    self.num_devices = len(devices)
    self.axis_name = None  # the train step needs no explicit collectives

  def put_state(self, state: Any) -> Any:
    return jax.device_put(state, self.replicated)

  def put_batch(self, batch: Mapping[str, np.ndarray]) -> dict[str, jax.Array]:
    return {name: jax.make_array_from_process_local_data(self.row_sharded, value)
            for name, value in batch.items()}

  def compile_train_step(self, train_step: Callable) -> Callable:
    return jax.jit(train_step, in_shardings=(self.replicated, self.row_sharded),
                   out_shardings=(self.replicated, self.replicated), donate_argnums=(0,))

  def compile_eval_step(self, eval_step: Callable) -> Callable:
    return jax.jit(eval_step, in_shardings=(self.replicated, self.row_sharded),
                   out_shardings=self.row_sharded)

  def params_of(self, state: Any) -> Any:
    return state["params"]

  def host_state(self, state: Any) -> Any:
    """The state as saved in checkpoints (global replicated arrays)."""
    return state

  def fetch_rows(self, rows: Any) -> Any:
    """Global row-sharded outputs -> NumPy arrays of all global rows on every host."""
    if jax.process_count() == 1:
      return jax.tree.map(np.asarray, rows)
    return multihost_utils.process_allgather(rows, tiled=True)

  def fetch_scalars(self, metrics: Any) -> Any:
    return jax.tree.map(lambda x: np.asarray(jax.device_get(x)), metrics)


class PmapDataParallel:
  """The `jax.pmap` path: per-device step; outputs all-gathered for the loss."""

  name = "pmap"

  def __init__(self, devices: list[jax.Device] | None = None):
    self.local_devices = list(devices if devices is not None else jax.local_devices())
    self.num_local_devices = len(self.local_devices)
    self.num_devices = self.num_local_devices * jax.process_count()
    self.axis_name = DATA_AXIS
    # NOTE: jax.pmap is implemented with jit + shard_map now; its inputs are arrays whose
    # leading axis (one entry per local device) is sharded over these devices.
    self._stacked = NamedSharding(jax.sharding.Mesh(np.array(self.local_devices), (DATA_AXIS,)),
                                  PartitionSpec(DATA_AXIS))

  def _stack(self, tree: Any) -> Any:
    return jax.tree.map(lambda x: np.stack([np.asarray(x)] * self.num_local_devices), tree)

  def put_state(self, state: Any) -> Any:
    return jax.device_put(self._stack(jax.device_get(state)), self._stacked)

  def put_batch(self, batch: Mapping[str, np.ndarray]) -> dict[str, jax.Array]:
    n = self.num_local_devices
    out = {}
    for name, value in batch.items():
      if value.shape[0] % n:
        raise ValueError(f"batch[{name!r}] has {value.shape[0]} rows on this host, not a "
                         f"multiple of its {n} local devices")
      value = value.reshape((n, value.shape[0] // n) + value.shape[1:])
      out[name] = jax.device_put(value, self._stacked)
    return out

  def compile_train_step(self, train_step: Callable) -> Callable:
    return jax.pmap(train_step, axis_name=self.axis_name, devices=self.local_devices,
                    donate_argnums=(0,))

  def compile_eval_step(self, eval_step: Callable) -> Callable:
    return jax.pmap(eval_step, axis_name=self.axis_name, devices=self.local_devices)

  def params_of(self, state: Any) -> Any:
    return state["params"]

  def host_state(self, state: Any) -> Any:
    """Device 0's copy (all copies are identical), as saved in checkpoints."""
    return jax.tree.map(lambda x: x[0], state)

  def fetch_rows(self, rows: Any) -> Any:
    local = jax.tree.map(lambda x: np.asarray(x).reshape((-1,) + x.shape[2:]), rows)
    if jax.process_count() == 1:
      return local
    return multihost_utils.process_allgather(local, tiled=True)

  def fetch_scalars(self, metrics: Any) -> Any:
    return jax.tree.map(lambda x: np.asarray(jax.device_get(x))[0], metrics)


class RunsDataParallel:
  """S runs of one program (`trainer.train_group`): a 2-D mesh ('runs', 'data').

  States are stacked `[S, ...]` and sharded over 'runs' (replicated over 'data');
  batches `[S, R, ...]` over ('runs', 'data'). The 'runs' axis gets gcd(S, devices)
  devices (gcd with the local device count on several hosts), 'data' the rest, so
  S = 4 on 8 devices is 4 x 2 and S = 3 on 8 devices is 1 x 8 (every run on every
  device, rows split). Each process's devices hold every 'runs' index and a
  contiguous block of 'data', so every process feeds its own rows of every run (the
  host-local slice `PreparedData` yields). jit only (`pmap` is refused by the trainer).
  Evaluation uses `eval`, a 1-D `JitDataParallel` over the same devices, one run's
  params at a time.
  """

  name = "jit"

  def __init__(self, num_runs: int, devices: list[jax.Device] | None = None):
    devices = sorted(devices if devices is not None else jax.devices(),
                     key=lambda d: (d.process_index, d.id))
    processes = sorted({d.process_index for d in devices})
    local = len(devices) // len(processes)
    runs_axis = math.gcd(math.gcd(num_runs, len(devices)), local)
    grid = np.concatenate([
        np.asarray([d for d in devices if d.process_index == p], dtype=object).reshape(
            runs_axis, local // runs_axis) for p in processes], axis=1)
    auto = jax.sharding.AxisType.Auto
    self.mesh = jax.sharding.Mesh(grid, (RUNS_AXIS, DATA_AXIS), axis_types=(auto, auto))
    self.num_runs = num_runs
    self.num_devices = len(devices)
    self.axis_name = None
    self.run_sharded = NamedSharding(self.mesh, PartitionSpec(RUNS_AXIS))
    self.batch_sharded = NamedSharding(self.mesh, PartitionSpec(RUNS_AXIS, DATA_AXIS))
    self.eval = JitDataParallel(devices)

  def put_state(self, states: list[Any]) -> Any:
    """Per-run states (same structure and shapes) -> one stacked, run-sharded state."""
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *states)
    return jax.device_put(stacked, self.run_sharded)

  def run_state(self, state: Any, index: int) -> Any:
    """Run `index`'s state (unstacked), as saved in its checkpoints."""
    return jax.tree.map(lambda x: x[index], state)

  def put_run_args(self, run_args: Mapping[str, Any]) -> dict[str, jax.Array]:
    return jax.device_put(dict(run_args), self.run_sharded)

  def put_batch(self, batch: Mapping[str, np.ndarray]) -> dict[str, jax.Array]:
    processes = jax.process_count()
    return {name: jax.make_array_from_process_local_data(
        self.batch_sharded, value,
        (value.shape[0], value.shape[1] * processes) + value.shape[2:])
            for name, value in batch.items()}

  def compile_train_step(self, group_step: Callable) -> Callable:
    return jax.jit(group_step,
                   in_shardings=(self.run_sharded, self.batch_sharded, self.run_sharded),
                   out_shardings=(self.run_sharded, self.run_sharded), donate_argnums=(0,))

  def fetch_scalars(self, metrics: Any) -> Any:
    """Run-sharded [S] metrics -> NumPy [S] arrays (all runs, on every process)."""
    if jax.process_count() == 1:
      return jax.tree.map(np.asarray, metrics)
    return multihost_utils.process_allgather(metrics, tiled=True)


def make_data_parallel(kind: str) -> JitDataParallel | PmapDataParallel:
  if kind == "jit":
    return JitDataParallel()
  if kind == "pmap":
    return PmapDataParallel()
  raise ValueError(f"parallelism={kind!r}: must be 'jit' or 'pmap'")
