"""The fine-tuning loop: epochs, evaluation, early stopping, checkpoints, outputs.

`train(config)` runs one (dataset, objective, encoder, seed) job in `config.workdir`:

* trains on paired batches (K texts + K augmented views; a baseline with
  `baseline_views='texts'` on the K texts only), data-parallel over every
  device (`jit` or `pmap`), evaluating Φ (and Ψ) on validation and test after each
  epoch; the reported test metrics are those of the best-validation epoch (the paper);
  an optional patience stops training early;
* checkpoints the latest state every `checkpoint_every_steps` steps and at each epoch
  end, and the best-validation params; re-running the same command resumes (a finished
  run returns its results.json at once); SIGTERM saves and exits;
* writes config.json, metrics.jsonl, TensorBoard events, predictions of the best epoch
  (predictions/best_{validation,test}.npz) and results.json (atomically), from process
  0 only; stops with a clear error on a NaN loss, keeping the last good checkpoint.
"""
from __future__ import annotations

import json
import logging
import math
import pathlib
import shutil
import signal
import threading
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lcl_jax import metrics as metrics_lib
from lcl_jax.train import checkpoint as checkpoint_lib
from lcl_jax.train import data_pipeline, objectives, optim, parallel, steps
from lcl_jax.train.config import TrainConfig

log = logging.getLogger("lcl_jax.train")

# Fields that may differ between the run that wrote a workdir and the one resuming it.
_RESUME_EXEMPT = {"workdir", "data_dir", "progress_bar", "log_every_steps",
                  "checkpoint_every_steps", "parallelism", "export_hf", "keep_checkpoints"}


class TrainingInterrupted(RuntimeError):
  """Raised after a SIGTERM (preemption): the state was saved; re-run to resume."""


class ConfigMismatchError(ValueError):
  """The workdir holds a run with another configuration (resuming it would mix the two)."""


class NonFiniteLossError(FloatingPointError):
  """The loss became NaN/inf; the last good checkpoint is kept."""


class _SigtermFlag:
  """Turns SIGTERM into a flag the loop checks between steps (main thread only)."""

  def __init__(self):
    self.raised = False
    self._previous = None

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    return self

  def _handle(self, signum, frame):
    del signum, frame
    self.raised = True

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
      # A SIGTERM handled here while the run went on to finish (its last epoch) is
      # handed on to an enclosing Python handler (a sweep then stops before its next
      # run); the state is saved, so a re-run only writes results.json.
      if self.raised and exc[0] is None and callable(self._previous):
        self._previous(signal.SIGTERM, None)
    return False


class _Outputs:
  """metrics.jsonl + TensorBoard + stdout, from process 0 only."""

  def __init__(self, workdir: pathlib.Path, enabled: bool):
    self.enabled = enabled
    self._jsonl = None
    self._tb = None
    if enabled:
      self._jsonl = open(workdir / "metrics.jsonl", "a", encoding="utf-8")
      try:
        from tensorboardX import SummaryWriter
        self._tb = SummaryWriter(str(workdir / "tensorboard"))
      except ImportError:  # pragma: no cover - tensorboardX is a dependency
        log.warning("tensorboardX not installed: no TensorBoard events")

  def write(self, record: dict[str, Any]) -> None:
    if not self.enabled:
      return
    self._jsonl.write(json.dumps(record, default=checkpoint_lib._json_default) + "\n")
    self._jsonl.flush()
    if self._tb is not None:
      step = int(record.get("step", 0))
      prefix = record.get("kind", "train")
      for key, value in record.items():
        if isinstance(value, (int, float)) and key not in ("step", "epoch"):
          self._tb.add_scalar(f"{prefix}/{key}", value, step)
      self._tb.flush()

  def close(self) -> None:
    if self._jsonl:
      self._jsonl.close()
    if self._tb:
      self._tb.close()


def _check_resume_config(workdir: pathlib.Path, cfg: TrainConfig) -> None:
  path = workdir / "config.json"
  if not path.exists():
    return
  # A field added after the run was written (e.g. issue 14's fidelity options) counts
  # as its default value, which is the behaviour that run had.
  saved = {**json.loads(TrainConfig().to_json()), **json.loads(path.read_text())["config"]}
  current = json.loads(cfg.to_json())
  diff = sorted(k for k in set(saved) | set(current)
                if k not in _RESUME_EXEMPT and saved.get(k) != current.get(k))
  if diff:
    details = ", ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in diff)
    raise ConfigMismatchError(
        f"{workdir} holds a run with a different configuration ({details}); "
        "use another --workdir or delete that one")


def _selection_metric(multilabel: bool) -> str:
  return "macro_f1" if multilabel else "accuracy"


def probabilities(logits: np.ndarray, multilabel: bool) -> np.ndarray:
  """Class probabilities (float64 [N, C]) from logits [N, C]: softmax, or per-class
  sigmoid for a multi-label dataset."""
  logits = logits.astype(np.float64)
  if multilabel:
    return 1.0 / (1.0 + np.exp(-logits))
  logits = logits - logits.max(axis=-1, keepdims=True)
  e = np.exp(logits)
  return e / e.sum(axis=-1, keepdims=True)


def split_metrics(labels: np.ndarray, probs: np.ndarray, *, multilabel: bool,
                  thresholds: np.ndarray | float) -> tuple[dict[str, float], np.ndarray]:
  """The metrics the runs report (fractions) and the predictions they are computed from.

  Single-label: argmax -> accuracy, weighted/macro F1 (`metrics.classification_metrics`);
  multi-label: `probs >= thresholds` (per class) -> `metrics.multilabel_metrics`.
  """
  num_classes = probs.shape[-1]
  if multilabel:
    predictions = (probs >= np.asarray(thresholds)).astype(np.int32)
    return metrics_lib.multilabel_metrics(labels, predictions), predictions
  predictions = probs.argmax(axis=-1).astype(np.int32)
  return metrics_lib.classification_metrics(labels, predictions, num_classes=num_classes), predictions


def evaluate_logits(eval_step, dp, params, batches, num_examples: int, *,
                    what: str = "evaluation") -> dict[str, np.ndarray]:
  """Runs the compiled eval step over `batches`; the trainer's (and predict's) only eval path.

  Returns `{'logits': [N, C][, 'weight_logits': [N, C]]}` float32 in example order
  (`example_index` puts back the rows of every device and host; padding rows dropped).

  Raises:
    AssertionError: the batches did not cover every example exactly once.
  """
  collected: dict[str, list] = {}
  indices = []
  for batch in batches:
    out = dp.fetch_rows(eval_step(params, dp.put_batch(batch)))
    example_index = out.pop("example_index")
    keep = example_index >= 0
    indices.append(example_index[keep])
    for name, value in out.items():
      collected.setdefault(name, []).append(value[keep])
  order = np.concatenate(indices) if indices else np.zeros(0, np.int64)
  if sorted(order.tolist()) != list(range(num_examples)):
    raise AssertionError(f"{what} did not cover every example once")
  inverse = np.argsort(order)
  return {name: np.concatenate(chunks)[inverse] for name, chunks in collected.items()}


def train(config: TrainConfig) -> dict[str, Any]:
  """Runs (or resumes, or returns the finished results of) one training job."""
  cfg = config.resolved()
  workdir = pathlib.Path(cfg.workdir).absolute()
  results_path = workdir / "results.json"
  if results_path.exists():
    _check_resume_config(workdir, cfg)
    log.info("%s already finished; returning its results", workdir)
    return json.loads(results_path.read_text())
  is_main = jax.process_index() == 0
  workdir.mkdir(parents=True, exist_ok=True)
  _check_resume_config(workdir, cfg)

  spec = objectives.get_spec(cfg.objective)
  dp = parallel.make_data_parallel(cfg.parallelism)
  data = data_pipeline.prepare(cfg, num_devices=dp.num_devices)
  multilabel = data.multilabel
  num_classes = data.num_classes
  if multilabel and np.ndim(cfg.thresholds) and len(cfg.thresholds) != num_classes:
    raise ValueError(f"thresholds has {len(cfg.thresholds)} values; {cfg.dataset} has "
                     f"{num_classes} classes")
  thresholds = (np.broadcast_to(np.asarray(cfg.thresholds, np.float64), (num_classes,))
                if multilabel else 0.5)

  if is_main:
    checkpoint_lib.write_json_atomic(workdir / "config.json", {
        "config": json.loads(cfg.to_json()),
        "dataset": data.describe(),
        "jax_version": jax.__version__,
        "devices": [str(d) for d in jax.devices()],
        "process_count": jax.process_count(),
    })

  dtype = jnp.bfloat16 if cfg.dtype == "bfloat16" else jnp.float32
  modules, params = objectives.build_networks(
      spec, encoder=cfg.encoder, weighting_encoder=cfg.weighting_encoder,
      num_classes=num_classes, rng=jax.random.key(cfg.seed), dtype=dtype, remat=cfg.remat,
      head_init=cfg.head_init)
  steps_per_epoch = data.steps_per_epoch
  total_steps = steps_per_epoch * cfg.epochs
  lr_schedule = optim.learning_rate_schedule(cfg.learning_rate, total_steps)
  optimizer = optim.make_optimizer(
      params, learning_rate=cfg.learning_rate, total_steps=total_steps,
      weight_decay=cfg.weight_decay, b1=cfg.adam_b1, b2=cfg.adam_b2, eps=cfg.adam_eps,
      clip_norm=cfg.clip_norm, epsilon_mode=cfg.adam_epsilon_mode)
  dropout_key = jax.random.key(cfg.seed + 1, impl=cfg.dropout_rng_impl)
  train_step = dp.compile_train_step(steps.make_train_step(
      spec, modules, optimizer, alpha=cfg.alpha, temperature=cfg.temperature,
      multilabel=multilabel, dropout_key=dropout_key, axis_name=dp.axis_name))
  eval_step = dp.compile_eval_step(steps.make_eval_step(modules))

  host_state = steps.init_state(params, optimizer)
  state = dp.put_state(host_state)
  ckpt = checkpoint_lib.RunCheckpoints(workdir)
  progress: dict[str, Any] = {"history": [], "best_epoch": None, "best_value": None,
                              "epochs_since_improvement": 0, "stopped_early": False}
  restored = ckpt.restore_latest(dp.host_state(state))
  if restored is not None:
    restored_state, progress = restored
    state = dp.put_state(restored_state)
    log.info("resumed %s from step %d", workdir, int(np.asarray(restored_state["step"])))
  del host_state, params
  start_step = int(np.asarray(dp.host_state(state)["step"]))

  outputs = _Outputs(workdir, enabled=is_main)
  selection = _selection_metric(multilabel)
  shapes_seen: set[tuple] = set()
  throughput = {"rows": 0, "seconds": 0.0}
  pending: list[tuple[int, Any]] = []  # (step, device metrics) not yet checked on host

  def flush_pending() -> None:
    """Pulls pending step metrics to the host; raises on a non-finite loss."""
    if not pending:
      return
    host = [(s, dp.fetch_scalars(m)) for s, m in pending]
    pending.clear()
    for s, m in host:
      if not math.isfinite(float(m["loss"])):
        last = ckpt.latest_step
        raise NonFiniteLossError(
            f"{cfg.objective} on {cfg.dataset}: loss is {float(m['loss'])} at step {s}; "
            f"stopping. The last good checkpoint (step {last}) is kept in "
            f"{workdir / 'checkpoints'}; try a lower --learning_rate or --dtype=float32")
    s, m = host[-1]
    record = {"kind": "train", "step": s, "epoch": s / steps_per_epoch}
    record.update({k: float(v) for k, v in m.items()})
    record["learning_rate"] = float(lr_schedule(s - 1))  # the rate of update number s
    if throughput["seconds"] > 0:
      record["sequences_per_second"] = throughput["rows"] / throughput["seconds"]
    outputs.write(record)

  def evaluate(split_name: str, params) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    split = data.eval_split(split_name)
    logits = evaluate_logits(eval_step, dp, params, split.batches(), split.num_examples,
                             what=f"evaluation on {split_name}")
    result_metrics: dict[str, float] = {}
    arrays: dict[str, np.ndarray] = {"labels": split.labels}
    for name, values in logits.items():
      probs = probabilities(values, multilabel)
      m, predictions = split_metrics(split.labels, probs, multilabel=multilabel,
                                     thresholds=thresholds)
      prefix = "" if name == "logits" else "weighting_"
      result_metrics.update({prefix + k: v for k, v in m.items()})
      arrays[prefix + "probabilities"] = probs.astype(np.float32)
      arrays[prefix + "predictions"] = predictions
    return result_metrics, arrays

  def progress_snapshot() -> dict[str, Any]:
    return json.loads(json.dumps(progress, default=checkpoint_lib._json_default))

  step = start_step
  completed_epochs = len(progress["history"])
  try:
    with _SigtermFlag() as sigterm:
      for epoch in range(completed_epochs, cfg.epochs):
        if progress["stopped_early"]:
          break
        epoch_start_step = epoch * steps_per_epoch
        first = step - epoch_start_step  # > 0 when resuming inside this epoch
        bar = _progress_bar(cfg, is_main, epoch, steps_per_epoch, first)
        for batch in data.train_batches(epoch, start_step=first):
          shape_key = tuple(sorted((k, v.shape) for k, v in batch.items()))
          t0 = time.perf_counter()
          state, step_metrics = train_step(state, dp.put_batch(batch))
          step += 1
          pending.append((step, step_metrics))
          compiled = shape_key not in shapes_seen
          if not compiled:  # exclude compile steps from throughput
            jax.block_until_ready(step_metrics["loss"])
            throughput["rows"] += int(batch["valid"].sum()) * _process_scale()
            throughput["seconds"] += time.perf_counter() - t0
          else:
            shapes_seen.add(shape_key)
            jax.block_until_ready(step_metrics["loss"])
          if step % cfg.log_every_steps == 0:
            loss_value = float(dp.fetch_scalars(step_metrics)["loss"])
            flush_pending()
            if bar is not None:
              rate = throughput["rows"] / max(throughput["seconds"], 1e-9)
              bar.set_postfix(loss=f"{loss_value:.4f}", seq_per_s=f"{rate:.1f}")
          if bar is not None:
            bar.update(1)
            if compiled:
              _restart_rate(bar)
          at_epoch_end = step == epoch_start_step + steps_per_epoch
          if sigterm.raised and not at_epoch_end:
            flush_pending()
            ckpt.save_latest(step, dp.host_state(state), progress_snapshot())
            ckpt.wait()
            raise TrainingInterrupted(
                f"SIGTERM at step {step}: state saved in {workdir / 'checkpoints'}; "
                "re-run the same command to resume")
          if step % cfg.checkpoint_every_steps == 0 and not at_epoch_end:
            flush_pending()
            ckpt.save_latest(step, dp.host_state(state), progress_snapshot())
        if bar is not None:
          bar.close()
        flush_pending()

        # End of epoch: evaluate Φ (and Ψ) on validation and test.
        params = dp.params_of(state)
        val_metrics, val_arrays = evaluate("validation", params)
        test_metrics, test_arrays = evaluate("test", params)
        record = {"epoch": epoch + 1, "step": step, "validation": val_metrics,
                  "test": test_metrics}
        value = val_metrics[selection]
        improved = progress["best_value"] is None or value > progress["best_value"]
        if improved:
          progress.update(best_epoch=epoch + 1, best_value=value, epochs_since_improvement=0)
          ckpt.save_best(step, dp.host_state(state)["params"],
                         {"epoch": epoch + 1, "step": step, selection: value})
          if is_main:
            checkpoint_lib.save_npz_atomic(workdir / "predictions" / "best_validation.npz",
                                           **val_arrays)
            checkpoint_lib.save_npz_atomic(workdir / "predictions" / "best_test.npz",
                                           **test_arrays)
        else:
          progress["epochs_since_improvement"] += 1
        progress["history"].append(record)
        if cfg.patience is not None and progress["epochs_since_improvement"] >= cfg.patience:
          progress["stopped_early"] = True
        outputs.write({"kind": "eval", **_flatten(record)})
        if is_main:
          log.info("epoch %d/%d  validation %s  test %s%s", epoch + 1, cfg.epochs,
                   _fmt(val_metrics), _fmt(test_metrics), "  (best)" if improved else "")
        ckpt.save_latest(step, dp.host_state(state), progress_snapshot())
        if sigterm.raised and epoch + 1 < cfg.epochs:
          ckpt.wait()
          raise TrainingInterrupted(
              f"SIGTERM at the end of epoch {epoch + 1}: state saved in "
              f"{workdir / 'checkpoints'}; re-run the same command to resume")
  finally:
    ckpt.wait()
    outputs.close()

  best = next(h for h in progress["history"] if h["epoch"] == progress["best_epoch"])
  results = {
      "dataset": cfg.dataset,
      "objective": cfg.objective,
      "encoder": cfg.encoder,
      "weighting_encoder": cfg.weighting_encoder if spec.uses_weighting_network else None,
      "seed": cfg.seed,
      "synthetic": data.synthetic,
      "multilabel": multilabel,
      "selection_metric": selection,
      "best_epoch": progress["best_epoch"],
      "epochs_trained": len(progress["history"]),
      "stopped_early": progress["stopped_early"],
      "validation": best["validation"],
      "test": best["test"],
      "history": progress["history"],
      "steps": step,
      "sequences_per_second": (throughput["rows"] / throughput["seconds"]
                               if throughput["seconds"] else None),
      "compiled_train_shapes": len(shapes_seen),
      "num_devices": dp.num_devices,
      "parallelism": dp.name,
      "split_sizes": data.split_sizes(),
  }
  if is_main:
    results["plots"] = _write_plots(workdir, progress, data.label_names, multilabel)
  if cfg.export_hf and is_main:
    results["export"] = _export_best(ckpt, dp.host_state(state)["params"], modules,
                                     workdir / "export", cfg=cfg, results=results,
                                     label_names=data.label_names,
                                     thresholds=thresholds if multilabel else None)
  ckpt.close()
  if is_main:
    # What the finished run occupies once the keep_checkpoints policy has been applied.
    dropped = (checkpoint_lib.LATEST_DIR,) if cfg.keep_checkpoints == "best" else ()
    results["keep_checkpoints"] = cfg.keep_checkpoints
    results["disk_bytes"] = checkpoint_lib.disk_usage(workdir, exclude=dropped)
    checkpoint_lib.write_json_atomic(results_path, results)
    if dropped:  # only now: a kill before results.json is written can still resume
      shutil.rmtree(workdir / checkpoint_lib.LATEST_DIR, ignore_errors=True)
    log.info("%s: results %s (%.1f MB on disk)", cfg.objective, results_path,
             results["disk_bytes"] / 1e6)
  return results


def _write_plots(workdir: pathlib.Path, progress, label_names, multilabel) -> dict[str, str]:
  """The run's PNG plots (lcl_jax.train.plots); a plotting failure is logged, not fatal."""
  from lcl_jax.train import plots
  try:
    return plots.write_run_plots(workdir, history=progress["history"], label_names=label_names,
                                 multilabel=multilabel, best_epoch=progress["best_epoch"])
  except Exception as e:  # pylint: disable=broad-except
    log.warning("could not draw the plots of %s: %s: %s", workdir, type(e).__name__, e)
    return {}


def _export_best(ckpt, like_params, modules, directory: pathlib.Path, *, cfg: TrainConfig,
                 results: dict[str, Any], label_names, thresholds) -> dict[str, str]:
  """Writes each network's best-validation params as a Hugging Face folder: weights,
  config.json (id2label/label2id, lcl_jax metadata), tokenizer and a model card."""
  from lcl_jax import models
  from lcl_jax.models import pretrained
  from lcl_jax.train import model_card
  from lcl_jax.train.data_pipeline import resolve_checkpoint

  best_params, _ = ckpt.restore_best(like_params)
  config = json.loads(cfg.to_json())
  exported = {}
  for name, module in modules.items():
    encoder = cfg.encoder if name == "primary" else cfg.weighting_encoder
    extra = {"lcl_jax": model_card.export_metadata(
        config, network=name, multilabel=results["multilabel"], thresholds=thresholds)}
    if results["multilabel"]:
      extra["problem_type"] = "multi_label_classification"
    path = models.save_classifier(directory / name, module, jax.device_get(best_params[name]),
                                  label_names=label_names, extra_config=extra, overwrite=True)
    pretrained.load_tokenizer(resolve_checkpoint(encoder)).save_pretrained(str(path))
    card = model_card.model_card(
        network=name, head=models.classifiers.head_kind(module),
        model_type=module.config.model_type, config=config,
        results=results, label_names=label_names, command=model_card.invocation(),
        folder_name=str(path))
    checkpoint_lib.write_atomic(path / "README.md", card)
    exported[name] = str(path)
  return exported


def _process_scale() -> int:
  # Rows counted are this host's; every host feeds the same number.
  return jax.process_count()


def _flatten(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
  flat = {}
  for key, value in record.items():
    name = f"{prefix}{key}"
    if isinstance(value, dict):
      flat.update(_flatten(value, name + "/"))
    else:
      flat[name] = value
  return flat


def _fmt(m: dict[str, float]) -> str:
  keys = [k for k in ("accuracy", "weighted_f1", "macro_f1", "micro_f1") if k in m]
  return " ".join(f"{k}={m[k]:.4f}" for k in keys)


def _restart_rate(bar) -> None:
  """Measures the bar's rate and ETA from now: a step that compiled is not typical."""
  bar.initial = bar.n
  bar.last_print_n = bar.n
  bar.start_t = bar.last_print_t = bar._time()  # pylint: disable=protected-access


def _progress_bar(cfg: TrainConfig, is_main: bool, epoch: int, total: int, initial: int):
  if not (is_main and cfg.progress_bar):
    return None
  from tqdm import tqdm
  return tqdm(total=total, initial=initial, desc=f"{cfg.objective} epoch {epoch + 1}/{cfg.epochs}",
              unit="step", dynamic_ncols=True, leave=False)
