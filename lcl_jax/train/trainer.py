"""The fine-tuning loop: epochs, evaluation, early stopping, checkpoints, outputs.

`train(config)` runs one (dataset, objective, encoder, seed) job in `config.workdir`:

* trains on paired batches (K texts + K augmented views; a baseline with
  `baseline_views='texts'`, or LCL with `lcl_views='texts'`, on the K texts only),
  data-parallel over every
  device (`jit` or `pmap`), evaluating Φ (and Ψ) on validation and test after each
  epoch; the reported test metrics are those of the best-validation epoch (the paper);
  an optional patience stops training early; with `eval_every_steps` N > 0 both splits
  are also evaluated every N steps, recorded in metrics.jsonl only (kind 'step_eval');
* checkpoints the latest state every `checkpoint_every_steps` steps and at each epoch
  end, and the best-validation params; re-running the same command resumes (a finished
  run returns its results.json at once); SIGTERM or a Ctrl-C saves and exits (a second
  Ctrl-C aborts at once); an exclusive lock keeps a second command out of the workdir;
* writes config.json, metrics.jsonl, TensorBoard events, predictions of the best epoch
  (predictions/best_{validation,test}.npz) and results.json (atomically), from process
  0 only; stops with a clear error on a NaN/inf loss, gradient or parameter, keeping
  the last good checkpoint (no non-finite state is ever evaluated or saved).

Layout of the trainer (one training loop, `_Loop`, here; the rest by role):
`program` (one run or S runs in one program), `resume` (resume checks, restoring,
stop signals and the errors that end a run), `evaluation` (logits -> probabilities ->
metrics, threshold decisions), `outputs` (metrics.jsonl/TensorBoard, results.json, plots,
export, mixed evaluation). Their public names used by callers are re-exported here.
"""
from __future__ import annotations

import logging
import math
import os
import pathlib
import time
from typing import Any, Sequence

import jax
import numpy as np

from lcl_jax import data as data_lib
from lcl_jax.losses import api as losses_api
from lcl_jax.models import pretrained
from lcl_jax.models.config import EncoderConfig
from lcl_jax.train import checkpoint as checkpoint_lib
from lcl_jax.train import (data_pipeline, evaluation, host_memory, mixing, objectives, optim,
                           outputs, parallel, resume, steps, throughput)
from lcl_jax.train import program as program_lib
from lcl_jax.train.config import BASELINE_ENCODERS, TrainConfig

# Re-exported: the names callers and tests import from lcl_jax.train.trainer.
from lcl_jax.train.evaluation import evaluate_logits, probabilities, split_metrics  # noqa: F401
from lcl_jax.train.evaluation import improves as _improves  # noqa: F401
from lcl_jax.train.evaluation import mean_loss as _mean_loss  # noqa: F401
from lcl_jax.train.outputs import _summary_writer_class  # noqa: F401
from lcl_jax.train.outputs import Outputs as _Outputs  # noqa: F401
from lcl_jax.train.outputs import head_label  # noqa: F401
from lcl_jax.train.outputs import truncate_metrics as _truncate_metrics  # noqa: F401
from lcl_jax.train.program import check_group  # noqa: F401
from lcl_jax.train.resume import (ConfigMismatchError, NonFiniteLossError,  # noqa: F401
                                  TrainingInterrupted)
from lcl_jax.train.resume import StopSignals as _StopSignals
from lcl_jax.train.resume import check_resume_config as _check_resume_config  # noqa: F401
from lcl_jax.train.steps import with_precision as _with_precision  # noqa: F401

log = logging.getLogger("lcl_jax.train")


def preflight(cfg: TrainConfig) -> None:
  """The checks of a resolved config that need the registries or the data, before
  anything is written (no run folder, lock or log): a known --dataset, --max_length
  within each encoder's max_position_embeddings (read from the checkpoint's
  config.json), and the training data (`data_pipeline.check_training_data`: the split
  loads, --concat_expansion bounded, --texts_per_batch, the --glove_path file).

  Raises:
    ValueError: naming the flag (or the data file and line); --export_hf's folder cannot
      be written.
    FileNotFoundError: a data file is missing.
    models.pretrained.CheckpointNotFoundError: --encoder names no checkpoint.
  """
  if cfg.dataset not in data_lib.dataset_names():
    raise ValueError(f"--dataset={cfg.dataset!r} is unknown; known datasets: "
                     f"{', '.join(data_lib.dataset_names())}")
  networks = [("encoder", cfg.encoder)]
  if objectives.get_spec(cfg.objective).uses_weighting_network:
    networks.append(("weighting_encoder", cfg.weighting_encoder))
  for flag, name in networks:
    if name in BASELINE_ENCODERS:  # trained from scratch: no checkpoint, no position limit
      continue
    try:
      directory = pretrained.resolve_checkpoint_dir(data_pipeline.resolve_checkpoint(name))
    except pretrained.CheckpointNotFoundError as e:
      raise pretrained.CheckpointNotFoundError(f"--{flag}={name}: {e}") from None
    positions = EncoderConfig.from_json_file(directory / "config.json").max_position_embeddings
    if cfg.max_length > positions:
      raise ValueError(
          f"--max_length={cfg.max_length} exceeds --{flag}={name}'s "
          f"max_position_embeddings={positions}; use --max_length<={positions}")
  if cfg.export_hf:  # checked now, not after training (issue 18 item 11)
    _check_export_target(pathlib.Path(cfg.workdir) / "export")
  data_pipeline.check_training_data(cfg)


def _check_export_target(target: pathlib.Path) -> None:
  """--export_hf's folder can be written: it is a folder (or can be made in the nearest
  existing ancestor, which must be a writable folder). Raises ValueError naming the flag."""
  probe = target
  while not probe.exists() and probe != probe.parent:
    probe = probe.parent
  if not probe.is_dir():
    raise ValueError(f"--export_hf: {probe} is not a folder, so the export {target} cannot "
                     "be written (checked before training)")
  if not os.access(probe, os.W_OK | os.X_OK):
    raise ValueError(f"--export_hf: {probe} is not writable, so the export {target} cannot "
                     "be written (checked before training)")


def train(config: TrainConfig) -> dict[str, Any]:
  """Runs (or resumes, or returns the finished results of) one training job.

  The S = 1 case of `train_group` (one trainer, one loop).

  Order (nothing is written into the workdir before the checks that can fail on user
  input): validate every field (`TrainConfig.resolved`); return a finished run's
  results.json (read only: a read-only workdir is fine); `preflight` (--dataset,
  --max_length against each encoder's positions, the training data: a batch larger than
  the training set, --concat_expansion's bound, the GloVe file); lock the workdir (a run
  refused from here on before it wrote anything leaves no folder: `WorkdirLock.
  discard_if_unused`); check a resumed run's config; load the data and check its
  fingerprint against the resumed run's; build the networks; only then write
  config.json.

  Raises:
    ValueError: a bad setting or a resume with another config or other data (the
      message names the flag).
    checkpoint.WorkdirInUseError: another live process is running in the workdir.
    NonFiniteLossError: a NaN/inf loss, gradient or parameter (last good checkpoint kept).
    TrainingInterrupted: SIGTERM/SIGINT; the state was saved (`exit_code` 143/130).
  """
  return train_group([config])[0]


def train_group(configs: Sequence[TrainConfig]) -> list[dict[str, Any]]:
  """Trains S runs that differ only in seed, alpha and temperature in ONE jitted program.

  `train(cfg)` is `train_group([cfg])[0]`; S = 1 compiles exactly the single-run step
  (jit or pmap). For S > 1 the train step is `jax.vmap`ped over the runs
  (`steps.make_group_train_step`): parameters, optimiser states, dropout keys, alpha,
  temperature and batches are stacked on a leading axis of size S, laid out on a
  ('runs', 'data') mesh (`parallel.RunsDataParallel`). Each run keeps its own data
  (order, augmented views: its own `PreparedData`), init, checkpoints, metrics.jsonl,
  TensorBoard events, predictions and results.json in its own workdir; the files are
  those `train` writes (config.json also records `runs_per_program`).

  Group semantics (BUILD_NOTES "S runs in one program"):
  * batch shapes: the runs' batches of one step are padded to the longest length
    bucket among them (masked positions; see `data_pipeline.stack_run_batches`);
  * early stopping: a stopped run's update is masked (its state stays as it was) and
    it is no longer evaluated or checkpointed; it finishes with the group;
  * a NaN/inf in any run stops the whole group (`NonFiniteLossError` names the run);
  * resume: finished runs (results.json) are skipped; the others restart from the
    newest step every one of them has saved (later checkpoints of runs that were
    ahead are deleted), so the group stays in lockstep; group checkpoints keep the
    last two steps and are awaited, so a SIGKILL leaves runs at most one save apart.

  Args:
    configs: the runs' configs (validated here; `check_group` must accept them).

  Returns:
    The results of each run, in the order of `configs`.

  Raises:
    The errors of `train`; ValueError when the configs cannot share one program.
  """
  cfgs = [c.resolved() for c in configs]
  check_group(cfgs)
  results: list[dict[str, Any] | None] = [resume.finished_results(cfg) for cfg in cfgs]
  todo = [i for i, r in enumerate(results) if r is None]
  if not todo:
    return results
  preflight(cfgs[todo[0]])  # the fields it reads are shared by the group
  is_main = jax.process_index() == 0
  locks = [checkpoint_lib.WorkdirLock(pathlib.Path(cfgs[i].workdir).absolute()) for i in todo]
  try:
    if is_main:
      for lock in locks:
        lock.acquire()
    for i in list(todo):  # finished while this command started
      finished = resume.finished_results(cfgs[i])
      if finished is not None:
        results[i] = finished
        todo.remove(i)
    if todo:
      loop = _Loop([cfgs[i] for i in todo], is_main)
      for i, result in zip(todo, loop.run()):
        results[i] = result
  except BaseException:
    for lock in locks:  # a run refused before it wrote anything leaves no folder behind
      lock.release()
      lock.discard_if_unused()
    raise
  finally:
    for lock in locks:
      lock.release()
  return results


class _Loop:
  """The training loop of one program of S >= 1 runs (`program.SingleRun` / `RunGroup`).

  `__init__` sets everything up (data, networks, optimisers, config.json, compiled steps,
  the resumed state; in that order, so nothing is written before the checks that can
  fail on user input); `run` trains the epochs (`train_epoch`, `close_epoch`) and
  returns each run's results (`finish`). The fields are the loop's whole state.
  """

  def __init__(self, cfgs: list[TrainConfig], is_main: bool):
    self.cfgs, self.is_main = cfgs, is_main
    self.cfg = cfg = cfgs[0]  # every setting but GROUP_VARYING is shared by the runs
    for c in cfgs:
      resume.check_resume_config(pathlib.Path(c.workdir).absolute(), c)
    self.spec = objectives.get_spec(cfg.objective)
    self.program = program_lib.make_program(cfgs)
    self.dp = self.program.dp
    self.datas = program_lib.prepare_data(cfgs, self.program)
    data = self.datas[0]
    self.multilabel, self.num_classes = data.multilabel, data.num_classes
    data_pipeline.check_thresholds(cfg, data.splits["train"])
    self.thresholds = (np.broadcast_to(np.asarray(cfg.thresholds, np.float64),
                                       (self.num_classes,)) if self.multilabel else 0.5)
    self.modules, params_of_runs = program_lib.build_networks(
        cfgs, self.datas, self.spec, self.num_classes)
    self.steps_per_epoch = data.steps_per_epoch
    self.total_epochs = cfg.epochs + cfg.head_epochs  # stage 1 (+ stage 2: heads only)
    self.stages = optim.Stages(params_of_runs[0], cfg, self.steps_per_epoch)
    self.stage1_steps = self.stages.stage1_steps
    self.optimizer, self.stage2_optimizer = self.stages.optimizer, self.stages.stage2_optimizer
    if cfg.embed_mix != "none":  # a bad paraphrase file / T5 folder fails before any write
      mixing.check_settings(mixing.MixSettings.from_config(cfg),
                            {name: list(data.splits[name].texts)
                             for name in ("validation", "test")})
    if is_main:  # only now: a wrong --encoder or bad data must not leave a config.json
      outputs.write_configs(self.cfgs, self.datas)
    self._compile(data)
    self.runs = [program_lib.Run(c, d, checkpoint_lib.RunCheckpoints(
        c.workdir, keep_latest=min(2, len(cfgs)))) for c, d in zip(cfgs, self.datas)]
    host_states = [steps.init_state(p, self.optimizer, self.stage2_optimizer)
                   for p in params_of_runs]
    host_states, self.step = resume.resume_runs(
        self.program, self.runs, [self.program.like_state(h) for h in host_states])
    self.state = self.program.put_state(host_states)
    del host_states, params_of_runs
    for run in self.runs:
      run.outputs = outputs.Outputs(run.workdir, enabled=is_main, start_step=run.start_step)
    self.selection = evaluation.selection_metric(self.multilabel)
    # The auxiliary head's decision threshold: the global one (the mean of per-class ones).
    self.aux_threshold = float(np.mean(self.thresholds))
    self.shapes_seen: set[tuple] = set()
    # Throughput over windows between two host syncs (log steps, checkpoints, epoch ends,
    # compilations): a window opens when its first step is dispatched and closes when
    # the host next waits for the devices; steps that compile are in no window.
    self.seconds = 0.0
    self.window_start: float | None = None
    self.window_rows = [0] * len(self.runs)
    # Tokens and model FLOPs of the same windows (throughput.py): per run, [positions
    # processed, real tokens]; per program, XLA's FLOPs of each compiled batch shape.
    self.window_tokens = [[0, 0] for _ in self.runs]
    self.window_flops = 0.0
    self.flops = 0.0
    self.shape_flops: dict[tuple, float] = {}
    self.flops_source: str | None = None
    self.peak_flops = cfg.peak_flops or throughput.peak_flops(
        jax.devices()[0].device_kind, dtype=cfg.dtype, matmul_precision=cfg.matmul_precision)
    self.pending: list[tuple[int, Any]] = []  # (step, device metrics) not yet checked on host
    self.pad_token_id = data.pad_token_id
    # Checkpoint writes are asynchronous. A group waits for them (its runs must stay at
    # most one checkpoint apart), and so does a run whose devices are the host's CPU: the
    # writes' host copies of the state would otherwise sit in the same memory beside the
    # next steps' buffers (EmoInt/MiniLM: +0.7 GB of peak RSS; BUILD_NOTES "Parity").
    self.wait_for_saves = len(self.runs) > 1 or jax.default_backend() == "cpu"

  # -- set-up ----------------------------------------------------------------------------

  def _compile(self, data) -> None:
    """The program's train step and the eval step."""
    cfg, spec, modules, optimizer = self.cfg, self.spec, self.modules, self.optimizer
    contrastive = losses_api.Contrastive(
        cfg.contrastive_impl, cfg.contrastive_tile_size, cfg.contrastive_auto_threshold,
        mesh=self.program.contrastive_mesh(), axis_name=parallel.DATA_AXIS)
    stage2 = self.stage2_optimizer
    step_options = dict(multilabel=self.multilabel, stage2_optimizer=stage2,
                        stage2_start_step=self.stage1_steps if stage2 is not None else None,
                        contrastive=contrastive,
                        contrastive_reduction=cfg.contrastive_reduction,
                        gradient_cache_chunk_size=cfg.gradient_cache_chunk_size,
                        aux_weight=objectives.aux_weight_schedule(
                            cfg.aux_weight_start, cfg.aux_weight_end, self.stage1_steps,
                            cfg.aux_schedule) if data.aux_label_names else None)
    self.train_step = steps.with_precision(cfg.matmul_precision, self.program.compile(
        lambda: steps.make_train_step(
            spec, modules, optimizer, alpha=cfg.alpha, temperature=cfg.temperature,
            dropout_key=jax.random.key(cfg.seed + 1, impl=cfg.dropout_rng_impl),
            axis_name=self.dp.axis_name, **step_options),
        lambda: steps.make_group_train_step(spec, modules, optimizer, **step_options)))
    self.eval_step = steps.with_precision(
        cfg.matmul_precision, self.program.eval_dp.compile_eval_step(
            steps.make_eval_step(modules, with_features=cfg.save_features)))

  # -- the loop --------------------------------------------------------------------------

  def run(self) -> list[dict[str, Any]]:
    """Trains the remaining epochs of every run and returns their results."""
    cfg, runs = self.cfg, self.runs
    training = [run for run in runs if run.training]
    completed_epochs = len(training[0].progress["history"]) if training else self.total_epochs
    try:
      with _StopSignals() as stop:
        for epoch in range(completed_epochs, self.total_epochs):
          if not any(run.training for run in runs):
            break
          if epoch >= cfg.epochs and not any(
              run.progress.get("heads_reinitialised") for run in runs if run.training):
            self._start_stage2()
          self.train_epoch(epoch, stop)
          self.close_epoch(epoch, stop)
    finally:
      for run in runs:
        run.ckpt.wait()
        run.outputs.close()
    return self.finish()

  def _start_stage2(self) -> None:
    """Stage 2 (two-stage training): new heads, encoders frozen from here on."""
    self.state = self.program.put_state([
        _reinitialise_heads(self.program.run_state(self.state, i), self.modules, run.cfg.seed)
        for i, run in enumerate(self.runs)])
    for run in self.runs:
      run.progress["heads_reinitialised"] = True
    log.info("stage 2: encoders frozen, heads re-initialised, %d epoch(s)",
             self.cfg.head_epochs)

  def train_epoch(self, epoch: int, stop) -> None:
    """The steps of one epoch (from the resumed step inside it), with the step-level
    evaluations, checkpoints and the stop on a signal."""
    cfg, runs, program = self.cfg, self.runs, self.program
    run_args = program.put_run_args(
        alpha=[run.cfg.alpha for run in runs],
        temperature=[run.cfg.temperature for run in runs],
        seed=[run.cfg.seed for run in runs],
        active=[run.training for run in runs], rng_impl=cfg.dropout_rng_impl)
    epoch_start_step = epoch * self.steps_per_epoch
    first = self.step - epoch_start_step  # > 0 when resuming inside this epoch
    bar = outputs.progress_bar(cfg, self.is_main, epoch, self.steps_per_epoch, first)
    # The next batches are built (the runs' batches stacked) and copied to the
    # devices by a background thread while the devices work; the host waits for the
    # devices only in flush (every log_every_steps, before checkpoints and
    # evaluations) and at compilations.
    host_batches = (program.host_batch(list(batches), self.pad_token_id) for batches in zip(
        *(run.data.train_batches(epoch, start_step=first) for run in runs)))
    # Several processes: batches are still built by the prefetch thread but placed in
    # the loop's thread, so that every process issues its device work in one order (with
    # the placement in the thread, tests/test_multihost.py deadlocked in gloo's context
    # set-up: contexts are created in per-process call order).
    place_in_thread = jax.process_count() == 1
    with data_pipeline.Prefetcher(host_batches, self.dp.put_batch,
                                  place_in_thread=place_in_thread) as prefetched:
      for batch, device_batch in prefetched:
        self._train_step(batch, device_batch, run_args, bar)
        step = self.step
        at_epoch_end = step == epoch_start_step + self.steps_per_epoch
        if (cfg.eval_every_steps and step % cfg.eval_every_steps == 0
            and not at_epoch_end):  # (at an epoch end the epoch's evaluation serves)
          self._evaluate_step()
        if stop.raised and not at_epoch_end:
          self.flush()
          self.save_latest(step)
          raise resume.interrupted(stop, f"at step {step}", runs)
        if step % cfg.checkpoint_every_steps == 0 and not at_epoch_end:
          self.flush()
          self.save_latest(step)
    if bar is not None:
      bar.close()
    self.flush()

  def _train_step(self, batch, device_batch, run_args, bar) -> None:
    """Dispatches one step; a step that compiles is waited for and timed in no window."""
    shape_key = tuple(sorted((k, v.shape) for k, v in batch.items()))
    compiles = shape_key not in self.shapes_seen
    if compiles:  # its compile time and run stay out of the throughput windows
      if self.pending:
        jax.block_until_ready(self.pending[-1][1])
      self.close_window()
      # The finished steps' buffers go back before the compiler takes its own memory (a
      # shape first seen mid-epoch would otherwise compile beside them).
      host_memory.release_free_memory()
      if bar is not None:
        bar.set_postfix_str("compiling", refresh=True)
    elif self.window_start is None:
      self.window_start = time.perf_counter()
    self.state, step_metrics = self.train_step(self.state, device_batch, run_args)
    self.step += 1
    self.pending.append((self.step, step_metrics))
    if compiles:
      self.shapes_seen.add(shape_key)
      jax.block_until_ready(step_metrics)
      self.shape_flops[shape_key] = self._step_flops(batch, device_batch, run_args)
      host_memory.release_free_memory()  # the compiler's and the step's buffers
      if bar is not None:
        bar.set_postfix_str("", refresh=False)
    else:
      self.window_flops += self.shape_flops[shape_key]
      for index, run in enumerate(self.runs):
        if run.training:
          self.window_rows[index] += self.program.run_rows(batch, index) * _process_scale()
          tokens = self.window_tokens[index]
          for k, count in enumerate(self.program.run_tokens(batch, index)):
            tokens[k] += count * _process_scale()
    if self.step % self.cfg.log_every_steps == 0:
      loss_value = self.flush()
      if bar is not None and loss_value is not None:
        rate = sum(r.rows for r in self.runs) / max(self.seconds, 1e-9)
        bar.set_postfix(loss=f"{loss_value:.4f}", seq_per_s=f"{rate:.1f}")
    if bar is not None:
      bar.update(1)
      if compiles:
        outputs.restart_rate(bar)

  def _evaluate_step(self) -> None:
    """The `eval_every_steps` evaluation of every still-training run."""
    self.flush()  # never evaluate a non-finite state
    for index, run in enumerate(self.runs):
      if run.training:
        params = self.program.eval_params(self.state, index)
        step_val = self.evaluate(run, "validation", params)[0]
        step_test = self.evaluate(run, "test", params)[0]
        self.write_step_eval(run, self.step, step_val, step_test)
        if self.is_main:
          log.info("step %d%s  validation %s  test %s", self.step, self._label(run),
                   evaluation.fmt(step_val), evaluation.fmt(step_test))

  def _step_flops(self, batch, device_batch, run_args) -> float:
    """Model FLOPs of one step of this batch shape (XLA's count of the lowered program,
    else 6 N T); the lowering reuses the traced step, so no second compile on CPU."""
    tokens = sum(self.program.run_tokens(batch, i)[0] for i in range(len(self.runs)))
    num_params = throughput.num_parameters(self.program.eval_params(self.state, 0))

    def lower():
      with jax.default_matmul_precision(self.cfg.matmul_precision):
        return self.program.lower(self.state, device_batch, run_args)

    flops, self.flops_source = throughput.step_flops(
        lower, num_params=num_params * len(self.runs), tokens=tokens)
    return flops * self.program.step_flops_scale()

  def throughput_figures(self, run: program_lib.Run) -> dict[str, Any]:
    """Tokens/s of `run` and the program's FLOP/s and MFU over the timed windows so far.

    tokens_per_second counts every token position the step processes (padding rows
    and right padding included); real_tokens_per_second the attention mask's ones on
    valid rows. mfu is model FLOP/s / (peak FLOP/s per device x devices): None when the
    peak is unknown (CPU without --peak_flops) or nothing was timed yet.
    """
    if self.seconds <= 0:
      return {"tokens_per_second": None, "real_tokens_per_second": None,
              "model_flops_per_second": None, "mfu": None}
    flops_per_second = self.flops / self.seconds
    return {"tokens_per_second": run.tokens / self.seconds,
            "real_tokens_per_second": run.real_tokens / self.seconds,
            "model_flops_per_second": flops_per_second,
            "mfu": throughput.mfu(flops_per_second, self.peak_flops, self.program.num_devices)}

  def close_window(self) -> None:
    """Call right after the host has waited for every dispatched step."""
    if self.window_start is not None:
      for run, rows, (tokens, real) in zip(self.runs, self.window_rows, self.window_tokens):
        run.rows += rows
        run.tokens += tokens
        run.real_tokens += real
      self.seconds += time.perf_counter() - self.window_start
      self.flops += self.window_flops
      self.window_start, self.window_rows = None, [0] * len(self.runs)
      self.window_tokens, self.window_flops = [[0, 0] for _ in self.runs], 0.0

  def flush(self) -> float | None:
    """Pulls the pending steps' metrics to the host (one transfer: the only per-step
    host synchronisation of the loop, every `log_every_steps`) and checks each step's
    `finite` (loss, gradients, new params and optimiser state all finite) and loss, for
    every still-training run.

    The guard of every checkpoint and evaluation: it is called before each of them and
    covers every step since the previous call, however rarely metrics are logged.
    Returns the last step's loss (the mean over the still-training runs; None if
    nothing was pending).
    """
    if not self.pending:
      return None
    host = list(zip([s for s, _ in self.pending],
                    self.dp.fetch_scalars([m for _, m in self.pending])))
    self.pending.clear()
    self.close_window()
    host_memory.release_free_memory()  # free heap pages back (see host_memory)
    losses = []
    for index, run in enumerate(self.runs):
      if not run.training:
        continue
      for s, group_metrics in host:
        self._check_finite(run, s, self.program.run_metrics(group_metrics, index))
      s, m = host[-1][0], self.program.run_metrics(host[-1][1], index)
      record = {"kind": "train", "step": s, "epoch": s / self.steps_per_epoch}
      record.update({k: float(v) for k, v in m.items()})
      record["learning_rate"] = self.stages.learning_rate(s)
      if self.seconds > 0:
        record["sequences_per_second"] = run.rows / self.seconds
        record.update(self.throughput_figures(run))
      run.outputs.write(record)
      losses.append(record["loss"])
    if losses and self.is_main and not self.cfg.progress_bar:  # e.g. a background sweep
      s = host[-1][0]
      rate = sum(r.rows for r in self.runs) / self.seconds if self.seconds > 0 else 0.0
      log.info("step %d of %d (epoch %d/%d)  loss %.4f  %.1f sequences/s", s,
               self.total_epochs * self.steps_per_epoch, (s - 1) // self.steps_per_epoch + 1,
               self.total_epochs, float(np.mean(losses)), rate)
    return float(np.mean(losses)) if losses else None

  def _check_finite(self, run: program_lib.Run, s: int, m: dict[str, Any]) -> None:
    """Raises NonFiniteLossError (after the checkpoint writes) on a non-finite step."""
    loss = float(m["loss"])
    if not math.isfinite(loss) or float(m["finite"]) < 1.0:
      what = (f"the loss is {loss}" if not math.isfinite(loss) else
              f"the loss is finite ({loss:.4g}) but the gradients or the updated "
              "parameters hold NaN/inf")
      for r in self.runs:
        r.ckpt.wait()
      last = run.ckpt.latest_step
      kept = (f"the last good checkpoint (step {last}) is kept in "
              f"{run.workdir / 'checkpoints'}" if last is not None
              else "no checkpoint was saved")
      raise NonFiniteLossError(
          f"{self.cfg.objective} on {self.cfg.dataset}{self._label(run)}: {what} at step {s}; "
          f"stopping without saving or evaluating that state; {kept}. Try a lower "
          "--learning_rate" + (" or --dtype=float32" if self.cfg.dtype != "float32" else ""))

  def evaluate(self, run: program_lib.Run, split_name: str,
               params) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """`evaluation.evaluate` of one run's split with the loop's eval step."""
    return evaluation.evaluate(self.eval_step, self.program.eval_dp, params,
                               run.data.eval_split(split_name), name=split_name,
                               multilabel=self.multilabel, thresholds=self.thresholds,
                               aux_threshold=self.aux_threshold)

  def save_latest(self, step: int) -> None:
    """Every still-training run's state at `step`; a group waits for the writes, so a
    kill leaves its runs at most one checkpoint apart (`resume.resume_runs`)."""
    for index, run in enumerate(self.runs):
      if run.training:
        run.ckpt.save_latest(step, self.program.run_state(self.state, index),
                             run.progress_snapshot())
    self.settle_saves()

  def settle_saves(self) -> None:
    """Waits for the checkpoint writes where `wait_for_saves` says so, then gives the
    freed pages of their host copies back (`host_memory.release_free_memory`)."""
    if self.wait_for_saves:
      for run in self.runs:
        run.ckpt.wait()
    host_memory.release_free_memory()

  def write_step_eval(self, run: program_lib.Run, at_step: int, validation: dict[str, float],
                      test: dict[str, float]) -> None:
    """The `eval_every_steps` record of step `at_step` (Fig. 5 of seed 004)."""
    run.outputs.write({"kind": "step_eval", "step": at_step,
                       "epoch": at_step / self.steps_per_epoch,
                       "eval": {"validation": validation, "test": test}})

  def close_epoch(self, epoch: int, stop) -> None:
    """End of epoch: evaluates Φ (and Ψ) of every still-training run, saves their
    states, and stops here on a signal (unless this was the last epoch)."""
    runs, step = self.runs, self.step
    ended = [(index, run) for index, run in enumerate(runs) if run.training]
    for index, run in ended:
      self.end_epoch(index, run, epoch, step)
    for index, run in ended:  # a run stopped just now saves its final state too
      run.ckpt.save_latest(step, self.program.run_state(self.state, index),
                           run.progress_snapshot())
    self.settle_saves()  # (and the evaluations' buffers)
    if stop.raised and epoch + 1 < self.total_epochs:
      raise resume.interrupted(stop, f"at the end of epoch {epoch + 1}", runs)

  def end_epoch(self, index: int, run: program_lib.Run, epoch: int, step: int) -> None:
    """Evaluates Φ (and Ψ) of one run on validation and test; best / early stopping."""
    cfg, progress, selection = self.cfg, run.progress, self.selection
    params = self.program.eval_params(self.state, index)
    val_metrics, val_arrays = self.evaluate(run, "validation", params)
    test_metrics, test_arrays = self.evaluate(run, "test", params)
    record = {"epoch": epoch + 1, "step": step, "validation": val_metrics,
              "test": test_metrics}
    value = val_metrics[selection]
    improved = evaluation.improves(progress, value, val_metrics["loss"])
    if improved:
      progress.update(best_epoch=epoch + 1, best_value=value, epochs_since_improvement=0)
      run.ckpt.save_best(step, self.program.run_state(self.state, index)["params"],
                         {"epoch": epoch + 1, "step": step, selection: value})
      if self.is_main:
        checkpoint_lib.save_npz_atomic(run.workdir / "predictions" / "best_validation.npz",
                                       **val_arrays)
        checkpoint_lib.save_npz_atomic(run.workdir / "predictions" / "best_test.npz",
                                       **test_arrays)
    else:
      progress["epochs_since_improvement"] += 1
    stalled = progress["epochs_since_improvement"]
    if cfg.early_stopping_on == "loss":  # seed 000's biLSTM schedule
      loss_value = val_metrics["loss"]
      if progress.get("best_loss") is None or loss_value < progress["best_loss"]:
        progress.update(best_loss=loss_value, epochs_since_loss_improvement=0)
      else:
        progress["epochs_since_loss_improvement"] += 1
      stalled = progress["epochs_since_loss_improvement"]
    progress["history"].append(record)
    if cfg.patience is not None and stalled >= cfg.patience:
      progress["stopped_early"] = True
    run.outputs.write({"kind": "eval", **outputs.flatten(record)})
    if cfg.eval_every_steps and step % cfg.eval_every_steps == 0:
      self.write_step_eval(run, step, val_metrics, test_metrics)
    if self.is_main:
      log.info("epoch %d/%d%s  validation %s  test %s%s", epoch + 1, self.total_epochs,
               self._label(run), evaluation.fmt(val_metrics), evaluation.fmt(test_metrics),
               "  (best)" if improved else "")

  def _label(self, run: program_lib.Run) -> str:
    return f" (run {run.workdir})" if len(self.runs) > 1 else ""

  def finish(self) -> list[dict[str, Any]]:
    """Each run's results.json (+ thresholds, plots, export, mixed evaluation)."""
    program, state = self.program, self.state
    return [outputs.finish_run(run, program.run_state(state, index), program, state,
                               cfg=run.cfg, spec=self.spec, multilabel=self.multilabel,
                               thresholds=self.thresholds, seconds=self.seconds,
                               throughput={**self.throughput_figures(run),
                                           "peak_flops_per_device": self.peak_flops,
                                           "flops_source": self.flops_source},
                               compiled_shapes=len(self.shapes_seen),
                               stage1_steps=self.stage1_steps, modules=self.modules,
                               evaluate=self.evaluate, is_main=self.is_main,
                               aux_threshold=self.aux_threshold)
            for index, run in enumerate(self.runs)]


def _reinitialise_heads(host_state: dict[str, Any], modules, seed: int) -> dict[str, Any]:
  """The state with every network's head freshly initialised (deterministic per seed)."""
  params = dict(host_state["params"])
  base = jax.random.fold_in(jax.random.key(seed), 0x57A6E2)
  for index, name in enumerate(sorted(modules)):
    module = modules[name]
    head = module.build_head().init(jax.random.fold_in(base, index),
                                    module.head_input_template())["params"]
    params[name] = {**params[name], "head": jax.tree.map(np.asarray, head)}
  return {**host_state, "params": params}


def _process_scale() -> int:
  # Rows counted are this host's; every host feeds the same number.
  return jax.process_count()
