"""The program strategy of the loop: one run (`SingleRun`, jit or pmap data parallelism)
or S > 1 runs stacked in one vmapped jit program (`RunGroup`, a runs x data mesh), and
`Run`, one run's config, folder, data, checkpoints and progress.

The loop is written once against the `SingleRun` interface; `RunGroup` stacks the runs'
states, batches and per-run arguments (alpha, temperature, dropout key, active).
"""
from __future__ import annotations

import json
import pathlib
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from lcl_jax.train import checkpoint as checkpoint_lib
from lcl_jax.train import data_pipeline, objectives, parallel, resume, throughput
from lcl_jax.train.config import GROUP_VARYING, TrainConfig, group_key


def check_group(configs: Sequence[TrainConfig]) -> None:
  """Raises ValueError (naming the fields / flags) unless `configs` can share one program."""
  if not configs:
    raise ValueError("train_group needs at least one TrainConfig")
  first = json.loads(group_key(configs[0]))
  for cfg in configs[1:]:
    other = json.loads(group_key(cfg))
    diff = sorted(k for k in first if first[k] != other[k])
    if diff:
      raise ValueError(
          f"runs of one program (--runs_per_program) may differ only in {GROUP_VARYING}; "
          f"{cfg.workdir} differs from {configs[0].workdir} in {diff}")
  folders = [pathlib.Path(c.workdir).absolute() for c in configs]
  if len(set(folders)) != len(folders):
    raise ValueError(f"runs of one program need distinct workdirs; got {folders}")
  if len(configs) > 1 and configs[0].parallelism != "jit":
    raise ValueError(f"--runs_per_program={len(configs)} needs --parallelism=jit (runs and "
                     "batch rows on a ('runs', 'data') mesh); --parallelism=pmap runs one "
                     "run per program: use --runs_per_program=1")
  chunk, devices = configs[0].gradient_cache_chunk_size, jax.device_count()
  if chunk % devices:
    raise ValueError(f"--gradient_cache_chunk_size={chunk} must be a multiple of the "
                     f"{devices} devices (each chunk's rows are split over all of them)")
  if len(configs) > 1 and configs[0].contrastive_impl == "ring":
    raise ValueError(f"--contrastive_impl=ring passes one run's batch around the devices; "
                     f"with --runs_per_program={len(configs)} use dense, tiled or auto")


class SingleRun:
  """S = 1: the data-parallel program of one run (jit or pmap), as it always was."""

  num_runs = 1

  def __init__(self, parallelism: str):
    self.dp = self.eval_dp = parallel.make_data_parallel(parallelism)
    self.num_devices = self.dp.num_devices

  def contrastive_mesh(self):
    return getattr(self.dp, "mesh", None)

  def compile(self, single_step: Callable, group_step: Callable) -> Callable:
    del group_step
    step = self.jitted = self.dp.compile_train_step(single_step())
    return lambda state, batch, run_args: step(state, batch)

  def lower(self, state: Any, batch: Any, run_args: Any) -> Any:
    """The compiled train step's `jax.stages.Lowered` for these arguments (`compile` first)."""
    del run_args
    return self.jitted.lower(state, batch)

  def run_tokens(self, batch: dict[str, np.ndarray], index: int) -> tuple[int, int]:
    """(token positions processed, real tokens) of run `index` in a host batch."""
    del index
    return throughput.batch_tokens(batch)

  def step_flops_scale(self) -> int:
    """Step FLOPs = XLA's count of the lowered program x this (pmap: one replica's)."""
    return self.dp.num_devices if self.dp.name == "pmap" else 1

  def put_state(self, host_states: list[Any]) -> Any:
    return self.dp.put_state(host_states[0])

  def like_state(self, host_state: Any) -> Any:
    return self.dp.host_state(self.dp.put_state(host_state))

  def run_state(self, state: Any, index: int) -> Any:
    del index
    return self.dp.host_state(state)

  def host_batch(self, batches: list[dict[str, np.ndarray]], pad_token_id: int):
    del pad_token_id
    return batches[0]

  def run_rows(self, batch: dict[str, np.ndarray], index: int) -> int:
    del index
    return int(batch["valid"].sum())

  def put_run_args(self, **run_args) -> None:
    del run_args

  def run_metrics(self, host_metrics: dict[str, Any], index: int) -> dict[str, Any]:
    del index
    return host_metrics

  def eval_params(self, state: Any, index: int) -> Any:
    del index
    return self.dp.params_of(state)

  def place_params(self, state: Any, host_params: Any) -> Any:
    return device_params(self.dp, state, host_params)


class RunGroup(SingleRun):
  """S > 1 runs stacked on a leading axis, one vmapped jit program on a runs x data mesh."""

  def __init__(self, num_runs: int):  # pylint: disable=super-init-not-called
    self.num_runs = num_runs
    self.dp = parallel.RunsDataParallel(num_runs)
    self.eval_dp = self.dp.eval  # evaluation: one run's params at a time, rows sharded
    self.num_devices = self.dp.num_devices

  def contrastive_mesh(self):
    return None  # dense or tiled per run (the ring is refused by check_group)

  def compile(self, single_step: Callable, group_step: Callable) -> Callable:
    del single_step
    self.jitted = self.dp.compile_train_step(group_step())
    return self.jitted

  def lower(self, state, batch, run_args):
    return self.jitted.lower(state, batch, run_args)

  def run_tokens(self, batch, index):
    return throughput.batch_tokens(batch, index)

  def put_state(self, host_states: list[Any]) -> Any:
    return self.dp.put_state(host_states)

  def like_state(self, host_state: Any) -> Any:
    return self.eval_dp.put_state(host_state)

  def run_state(self, state: Any, index: int) -> Any:
    return self.dp.run_state(state, index)

  def host_batch(self, batches, pad_token_id):
    return data_pipeline.stack_run_batches(batches, pad_token_id=pad_token_id)

  def run_rows(self, batch, index):
    return int(batch["valid"][index].sum())

  def put_run_args(self, *, alpha, temperature, seed, active, rng_impl):
    keys = [jax.random.key_data(jax.random.key(s + 1, impl=rng_impl)) for s in seed]
    return self.dp.put_run_args({
        "alpha": np.asarray(alpha, np.float32),
        "temperature": np.asarray(temperature, np.float32),
        # The very keys a single run draws its dropout masks from (key(seed + 1)).
        "dropout_key": jax.random.wrap_key_data(np.stack(keys), impl=rng_impl),
        "active": np.asarray(active, bool)})

  def run_metrics(self, host_metrics, index):
    return {k: np.asarray(v)[index] for k, v in host_metrics.items()}

  def eval_params(self, state, index):
    return self.eval_dp.put_state(self.dp.run_state(state, index)["params"])

  def place_params(self, state, host_params):
    del state
    return self.eval_dp.put_state(host_params)


def make_program(cfgs: Sequence[TrainConfig]) -> SingleRun:
  """The program of `cfgs` (one run: its --parallelism; several: a `RunGroup`)."""
  return SingleRun(cfgs[0].parallelism) if len(cfgs) == 1 else RunGroup(len(cfgs))


def prepare_data(cfgs: Sequence[TrainConfig], program: SingleRun) -> list[Any]:
  """Each run's `data_pipeline.PreparedData` (its fingerprint checked against a resumed
  run's); the runs of a group must have equal steps per epoch and classes."""
  cfg, datas = cfgs[0], []
  for c in cfgs:
    data = data_pipeline.prepare(c, num_devices=program.num_devices)
    resume.check_resume_data(pathlib.Path(c.workdir).absolute(), data.fingerprint(), c)
    datas.append(data)
  data = datas[0]
  for other, c in zip(datas[1:], cfgs[1:]):
    if (other.steps_per_epoch, other.num_classes) != (data.steps_per_epoch, data.num_classes):
      raise ValueError(f"{c.workdir}: {other.steps_per_epoch} steps an epoch and "
                       f"{other.num_classes} classes, {cfg.workdir}: {data.steps_per_epoch} and "
                       f"{data.num_classes}; runs of one program need equal ones (use "
                       "--runs_per_program=1)")
  return datas


def build_networks(cfgs: Sequence[TrainConfig], datas: Sequence[Any], spec,
                   num_classes: int) -> tuple[dict[str, Any], list[Any]]:
  """The networks of the program (the modules of the first run) and each run's initial
  params (`objectives.build_networks`); a group's runs must have equal parameter shapes."""
  cfg = cfgs[0]
  dtype = jnp.bfloat16 if cfg.dtype == "bfloat16" else jnp.float32
  params_of_runs = []
  for c, d in zip(cfgs, datas):
    modules, params = objectives.build_networks(
        spec, encoder=cfg.encoder, weighting_encoder=cfg.weighting_encoder,
        num_classes=num_classes, rng=jax.random.key(c.seed), dtype=dtype,
        remat=cfg.remat, head_init=cfg.head_init,
        primary_head=spec.primary_head_for(cfg.head),
        classifier_dropout=cfg.classifier_dropout, feature_pooling=cfg.feature_pooling,
        tokenizer=d.tokenizer, glove_path=cfg.glove_path,
        label_layout=_label_layout(c, d),
        num_aux_classes=len(d.aux_label_names))
    if params_of_runs and jax.tree.structure(params) != jax.tree.structure(params_of_runs[0]) \
        or params_of_runs and [np.shape(x) for x in jax.tree.leaves(params)] != [
            np.shape(x) for x in jax.tree.leaves(params_of_runs[0])]:
      raise ValueError(f"{c.workdir}: its networks' parameter shapes differ from "
                       f"{cfg.workdir}'s (a vocabulary built from seed-dependent data?); "
                       "use --runs_per_program=1")
    params_of_runs.append(params)
  return modules, params_of_runs


def _label_layout(cfg: TrainConfig, data) -> Any:
  """Φ's `LabelLayout` with --label_embeddings (else None); with an auxiliary task its
  groups are the task's label -> group mapping, so the label-attention head's auxiliary
  head scores each group from its labels' vectors (Section 3.5.1)."""
  if data.label_block is None:
    return None
  return objectives.label_layout_for(
      data.label_block, aux_membership=objectives.aux_membership(cfg))


class Run:
  """One run of a program: its config, folder, data, checkpoints and progress."""

  def __init__(self, cfg: TrainConfig, data, ckpt):
    self.cfg, self.data, self.ckpt = cfg, data, ckpt
    self.workdir = pathlib.Path(cfg.workdir).absolute()
    self.progress: dict[str, Any] = {"history": [], "best_epoch": None, "best_value": None,
                                     "epochs_since_improvement": 0, "stopped_early": False}
    self.outputs = None  # outputs.Outputs, opened once the run is resumed
    self.rows = 0  # training rows of timed (non-compiling) steps
    self.tokens = 0  # their token positions (padding included) and real tokens
    self.real_tokens = 0
    self.start_step = 0

  @property
  def training(self) -> bool:
    return not self.progress["stopped_early"]

  def progress_snapshot(self) -> dict[str, Any]:
    return json.loads(json.dumps(self.progress, default=checkpoint_lib._json_default))


def device_params(dp, state, host_params):
  """`host_params` placed like the params of `state` (via a state round trip)."""
  host_state = dp.host_state(state)
  return dp.params_of(dp.put_state({**host_state, "params": host_params}))
