"""The fine-tuning loop: epochs, evaluation, early stopping, checkpoints, outputs.

`train(config)` runs one (dataset, objective, encoder, seed) job in `config.workdir`:

* trains on paired batches (K texts + K augmented views; a baseline with
  `baseline_views='texts'` on the K texts only), data-parallel over every
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
"""
from __future__ import annotations

import json
import logging
import math
import pathlib
import shutil
import signal
import sys
import threading
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from lcl_jax import metrics as metrics_lib
from lcl_jax import thresholds as thresholds_lib
from lcl_jax import tiled_losses
from lcl_jax.train import checkpoint as checkpoint_lib
from lcl_jax.train import data_pipeline, host_memory, objectives, optim, parallel, steps
from lcl_jax.train.config import BASELINE_ENCODERS, GROUP_VARYING, TrainConfig, group_key

log = logging.getLogger("lcl_jax.train")

# Fields that may differ between the run that wrote a workdir and the one resuming it.
_RESUME_EXEMPT = {"workdir", "data_dir", "progress_bar", "log_every_steps",
                  "checkpoint_every_steps", "parallelism", "export_hf", "keep_checkpoints",
                  # Only adds evaluation records to metrics.jsonl (same updates, same
                  # per-epoch selection):
                  "eval_every_steps",
                  # Same values and gradients either way (lcl_jax.tiled_losses):
                  "contrastive_impl", "contrastive_tile_size", "contrastive_auto_threshold"}


class TrainingInterrupted(RuntimeError):
  """Raised after a SIGTERM (preemption) or a Ctrl-C (SIGINT): the state was saved; re-run
  the same command to resume. `exit_code` is the shell's for that signal (143, 130)."""

  def __init__(self, message: str, *, signum: int = signal.SIGTERM):
    super().__init__(message)
    self.signum = signum
    self.exit_code = 128 + int(signum)


class ConfigMismatchError(ValueError):
  """The workdir holds a run with another configuration (resuming it would mix the two)."""


class NonFiniteLossError(FloatingPointError):
  """The loss, a gradient or the updated state became NaN/inf; nothing after the last
  good (all-finite) checkpoint was saved or evaluated."""


class _StopSignals:
  """Turns SIGTERM and a first Ctrl-C (SIGINT) into a flag the loop checks between steps
  (it then saves and stops); a second Ctrl-C raises KeyboardInterrupt at once, without
  saving. Installed from the main thread only (signals cannot be caught elsewhere)."""

  _SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self):
    self.signum: int | None = None
    self._previous: dict[int, Any] = {}

  @property
  def raised(self) -> bool:
    return self.signum is not None

  @property
  def name(self) -> str:
    return signal.Signals(self.signum).name if self.signum is not None else ""

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for signum in self._SIGNALS:
        self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def _handle(self, signum, frame):
    del frame
    if signum == signal.SIGINT and self.signum is not None:
      raise KeyboardInterrupt("second Ctrl-C: aborted without saving")
    if self.signum is None:
      self.signum = signum
    if signum == signal.SIGINT:
      print("\nCtrl-C: saving the state after this step, then stopping "
            "(Ctrl-C again aborts without saving)", file=sys.stderr, flush=True)

  def __exit__(self, *exc):
    previous_handlers, self._previous = self._previous, {}
    for signum, previous in previous_handlers.items():
      signal.signal(signum, previous)
    # A signal handled here while the run went on to finish (its last epoch) is handed
    # on to an enclosing Python handler (a sweep then stops before its next run; a
    # plain Ctrl-C raises KeyboardInterrupt and the binary exits 130); the state is
    # saved, so a re-run only writes results.json.
    previous = previous_handlers.get(self.signum)
    if self.raised and exc[0] is None and callable(previous):
      previous(self.signum, None)
    return False


class _Outputs:
  """metrics.jsonl + TensorBoard + stdout, from process 0 only."""

  def __init__(self, workdir: pathlib.Path, enabled: bool, *, start_step: int = 0):
    """Appends to the run's outputs; on a resume from `start_step`, records of later
    (replayed) steps are dropped first, so every step appears once."""
    self.enabled = enabled
    self._jsonl = None
    self._tb = None
    if enabled:
      _truncate_metrics(workdir / "metrics.jsonl", start_step)
      self._jsonl = open(workdir / "metrics.jsonl", "a", encoding="utf-8")
      try:
        SummaryWriter = _summary_writer_class()
        resumed = (workdir / "tensorboard").exists()
        self._tb = SummaryWriter(str(workdir / "tensorboard"),
                                 purge_step=start_step + 1 if resumed else None)
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
      for key, value in _flatten(record).items():
        if isinstance(value, (int, float)) and key not in ("step", "epoch"):
          self._tb.add_scalar(f"{prefix}/{key}", value, step)
      self._tb.flush()

  def close(self) -> None:
    if self._jsonl:
      self._jsonl.close()
    if self._tb:
      self._tb.close()


def _summary_writer_class():
  """`tensorboardX.SummaryWriter`, imported without importing torch.

  tensorboardX's writer module runs ``try: import torch`` at import time, to accept torch
  tensors (lcl_jax passes Python floats). Where torch is installed (the [test] extra) that
  import alone costs ~250 MB of RSS and ~1.5 s of a JAX training process (BUILD_NOTES
  "Parity with PyTorch"), so unless torch is already imported, the probe is answered
  with ImportError (`sys.modules["torch"] = None`) for the duration of this import only.
  Runs before the loop starts its prefetch thread (no other thread imports meanwhile).

  Raises:
    ImportError: tensorboardX is not installed.
  """
  if "torch" in sys.modules:
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
    return SummaryWriter
  sys.modules["torch"] = None  # makes `import torch` raise ImportError
  try:
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
  finally:
    if "torch" in sys.modules and sys.modules["torch"] is None:
      del sys.modules["torch"]
  return SummaryWriter


def _truncate_metrics(path: pathlib.Path, last_step: int) -> None:
  """Keeps the records of metrics.jsonl with step <= last_step (the resumed state's);
  a torn last line of a killed run is dropped too. Rewritten atomically."""
  if not path.exists():
    return
  kept, dropped = [], 0
  for line in path.read_text(encoding="utf-8").splitlines():
    try:
      record = json.loads(line)
      keep = int(record.get("step", 0)) <= last_step
    except (ValueError, TypeError, AttributeError):
      keep = False
    if keep:
      kept.append(line)
    else:
      dropped += 1
  if dropped:
    log.info("metrics.jsonl: dropped %d record(s) after step %d (replayed on resume)",
             dropped, last_step)
    checkpoint_lib.write_atomic(path, "".join(line + "\n" for line in kept))


def preflight(cfg: TrainConfig) -> None:
  """The checks of a resolved config that need the registries, before anything is
  written: a known --dataset, and --max_length within each encoder's
  max_position_embeddings (read from the checkpoint's config.json).

  Raises:
    ValueError: naming the flag.
    models.pretrained.CheckpointNotFoundError: --encoder names no checkpoint.
  """
  from lcl_jax import data as data_lib
  from lcl_jax.models import pretrained
  from lcl_jax.models.config import EncoderConfig

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


def _check_resume_data(workdir: pathlib.Path, fingerprint: str, cfg: TrainConfig) -> None:
  path = workdir / "config.json"
  if not path.exists():
    return
  saved = json.loads(path.read_text()).get("dataset", {}).get("fingerprint")
  if saved is not None and saved != fingerprint:
    raise ValueError(
        f"{workdir} was trained on other data than --data_dir={cfg.data_dir} gives for "
        f"{cfg.dataset} now (texts/labels fingerprint {saved[:12]}... vs {fingerprint[:12]}...); "
        "point --data_dir at the data of that run, or use another --workdir")


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


def _improves(progress: dict[str, Any], value: float, validation_loss: float) -> bool:
  """Whether an epoch with selection metric `value` and validation cross-entropy
  `validation_loss` beats the best epoch so far: a higher metric, or the same metric
  and a lower validation loss (e.g. macro F1 0.0 in two early epochs of a rare-label
  multi-label run: the later, better-fitted epoch is kept)."""
  best = progress["best_value"]
  if best is None or value > best:
    return True
  if value < best:
    return False
  best_record = next(h for h in progress["history"] if h["epoch"] == progress["best_epoch"])
  return validation_loss < best_record["validation"]["loss"]


def probabilities(logits: np.ndarray, multilabel: bool) -> np.ndarray:
  """Class probabilities (float64 [N, C]) from logits [N, C]: softmax, or per-class
  sigmoid for a multi-label dataset."""
  logits = logits.astype(np.float64)
  if multilabel:
    return 1.0 / (1.0 + np.exp(-logits))
  logits = logits - logits.max(axis=-1, keepdims=True)
  e = np.exp(logits)
  return e / e.sum(axis=-1, keepdims=True)


def _mean_loss(labels: np.ndarray, probs: np.ndarray, multilabel: bool) -> float:
  """Mean cross-entropy (nats per example; multi-label: binary CE averaged over classes)."""
  p = np.clip(probs.astype(np.float64), 1e-12, 1.0 - 1e-12)
  if multilabel:
    y = np.asarray(labels, np.float64)
    return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log1p(-p)))
  return float(-np.mean(np.log(p[np.arange(len(labels)), np.asarray(labels)])))


def split_metrics(labels: np.ndarray, probs: np.ndarray, *, multilabel: bool,
                  thresholds: np.ndarray | float) -> tuple[dict[str, float], np.ndarray]:
  """The metrics the runs report (fractions) and the predictions they are computed from.

  Single-label: argmax -> accuracy, weighted/macro F1 (`metrics.classification_metrics`);
  multi-label: `probs >= thresholds` (per class) -> `metrics.multilabel_metrics`.
  """
  num_classes = probs.shape[-1]
  if multilabel:
    predictions = (probs >= np.asarray(thresholds)).astype(np.int32)
    m = metrics_lib.multilabel_metrics(labels, predictions)
  else:
    predictions = probs.argmax(axis=-1).astype(np.int32)
    m = metrics_lib.classification_metrics(labels, predictions, num_classes=num_classes)
  m["loss"] = _mean_loss(labels, probs, multilabel)  # early stopping on validation loss
  return m, predictions


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
  """Runs (or resumes, or returns the finished results of) one training job.

  The S = 1 case of `train_group` (one trainer, one loop).

  Order (nothing is written into the workdir before the checks that can fail on user
  input): validate every field (`TrainConfig.resolved`); return a finished run's
  results.json (read only: a read-only workdir is fine); `preflight` (--dataset, and
  --max_length against each encoder's positions); lock the workdir; check a resumed run's config; load the data (refusing a batch larger than
  the training set) and check its fingerprint against the resumed run's; build the
  networks; only then write config.json.

  Raises:
    ValueError: a bad setting or a resume with another config or other data (the
      message names the flag).
    checkpoint.WorkdirInUseError: another live process is running in the workdir.
    NonFiniteLossError: a NaN/inf loss, gradient or parameter (last good checkpoint kept).
    TrainingInterrupted: SIGTERM/SIGINT; the state was saved (`exit_code` 143/130).
  """
  return train_group([config])[0]


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
  if len(configs) > 1 and configs[0].contrastive_impl == "ring":
    raise ValueError(f"--contrastive_impl=ring passes one run's batch around the devices; "
                     f"with --runs_per_program={len(configs)} use dense, tiled or auto")


def _finished_results(cfg: TrainConfig) -> dict[str, Any] | None:
  """A finished run's results.json (its config checked), else None. Read only."""
  workdir = pathlib.Path(cfg.workdir).absolute()
  if not (workdir / "results.json").exists():
    return None
  _check_resume_config(workdir, cfg)
  log.info("%s already finished; returning its results", workdir)
  return json.loads((workdir / "results.json").read_text())


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
  results: list[dict[str, Any] | None] = [_finished_results(cfg) for cfg in cfgs]
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
      finished = _finished_results(cfgs[i])
      if finished is not None:
        results[i] = finished
        todo.remove(i)
    if todo:
      for i, result in zip(todo, _train_locked([cfgs[i] for i in todo], is_main)):
        results[i] = result
  finally:
    for lock in locks:
      lock.release()
  return results


class _SingleRun:
  """S = 1: the data-parallel program of one run (jit or pmap), as it always was."""

  num_runs = 1

  def __init__(self, parallelism: str):
    self.dp = self.eval_dp = parallel.make_data_parallel(parallelism)
    self.num_devices = self.dp.num_devices

  def contrastive_mesh(self):
    return getattr(self.dp, "mesh", None)

  def compile(self, single_step: Callable, group_step: Callable) -> Callable:
    del group_step
    step = self.dp.compile_train_step(single_step())
    return lambda state, batch, run_args: step(state, batch)

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
    return _device_params(self.dp, state, host_params)


class _RunGroup(_SingleRun):
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
    return self.dp.compile_train_step(group_step())

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


class _Run:
  """One run of a program: its config, folder, data, checkpoints and progress."""

  def __init__(self, cfg: TrainConfig, data, ckpt):
    self.cfg, self.data, self.ckpt = cfg, data, ckpt
    self.workdir = pathlib.Path(cfg.workdir).absolute()
    self.progress: dict[str, Any] = {"history": [], "best_epoch": None, "best_value": None,
                                     "epochs_since_improvement": 0, "stopped_early": False}
    self.outputs: _Outputs | None = None
    self.rows = 0  # training rows of timed (non-compiling) steps
    self.start_step = 0

  @property
  def training(self) -> bool:
    return not self.progress["stopped_early"]

  def progress_snapshot(self) -> dict[str, Any]:
    return json.loads(json.dumps(self.progress, default=checkpoint_lib._json_default))


def _resume_runs(program, runs: list[_Run], likes: list[Any]) -> tuple[list[Any], int]:
  """Restores every run's latest checkpoint; a group restarts from the newest step all
  its still-training runs have saved (runs that were ahead go back to it and their later
  checkpoints are deleted; one without a checkpoint restarts the group from step 0).
  Runs that stopped early keep their last state. Returns (host states, start step)."""
  restored = [run.ckpt.restore_latest(like) for run, like in zip(runs, likes)]
  states = list(likes)
  training = [i for i, r in enumerate(restored) if r is None or not r[1].get("stopped_early")]
  saved = [runs[i].ckpt.latest_step for i in training]
  common = None if not saved or any(s is None for s in saved) else min(saved)
  for i, (run, r) in enumerate(zip(runs, restored)):
    if i in training and r is not None and run.ckpt.latest_step != common:
      if common is not None:
        r = run.ckpt.restore_latest(likes[i], step=common)
      else:
        r = None
      log.info("%s: back to step %d, the newest step every run of the group has saved",
               run.workdir, common or 0)
      run.ckpt.discard_after(common)
    if r is not None:
      states[i], run.progress = r
      run.start_step = int(np.asarray(r[0]["step"]))
      log.info("resumed %s from step %d", run.workdir, run.start_step)
  start_step = runs[0].start_step if program.num_runs == 1 else (common or 0)
  for i in training:
    runs[i].start_step = start_step
  return states, start_step


def _train_locked(cfgs: list[TrainConfig], is_main: bool) -> list[dict[str, Any]]:
  cfg = cfgs[0]  # every setting but GROUP_VARYING is shared by the runs
  for c in cfgs:
    _check_resume_config(pathlib.Path(c.workdir).absolute(), c)

  spec = objectives.get_spec(cfg.objective)
  program = _SingleRun(cfg.parallelism) if len(cfgs) == 1 else _RunGroup(len(cfgs))
  dp = program.dp
  datas = []
  for c in cfgs:
    data = data_pipeline.prepare(c, num_devices=program.num_devices)
    _check_resume_data(pathlib.Path(c.workdir).absolute(), data.fingerprint(), c)
    datas.append(data)
  data = datas[0]
  for other, c in zip(datas[1:], cfgs[1:]):
    if (other.steps_per_epoch, other.num_classes) != (data.steps_per_epoch, data.num_classes):
      raise ValueError(f"{c.workdir}: {other.steps_per_epoch} steps an epoch and "
                       f"{other.num_classes} classes, {cfg.workdir}: {data.steps_per_epoch} and "
                       f"{data.num_classes}; runs of one program need equal ones (use "
                       "--runs_per_program=1)")
  multilabel = data.multilabel
  num_classes = data.num_classes
  if multilabel and np.ndim(cfg.thresholds) and len(cfg.thresholds) != num_classes:
    raise ValueError(f"thresholds has {len(cfg.thresholds)} values; {cfg.dataset} has "
                     f"{num_classes} classes")
  thresholds = (np.broadcast_to(np.asarray(cfg.thresholds, np.float64), (num_classes,))
                if multilabel else 0.5)

  dtype = jnp.bfloat16 if cfg.dtype == "bfloat16" else jnp.float32
  params_of_runs = []
  for c, d in zip(cfgs, datas):
    modules, params = objectives.build_networks(
        spec, encoder=cfg.encoder, weighting_encoder=cfg.weighting_encoder,
        num_classes=num_classes, rng=jax.random.key(c.seed), dtype=dtype, remat=cfg.remat,
        head_init=cfg.head_init,
        primary_head=cfg.head if spec.primary_head == "paper" else None,
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
  params = params_of_runs[0]
  steps_per_epoch = data.steps_per_epoch
  total_epochs = cfg.epochs + cfg.head_epochs  # stage 1 (+ stage 2: heads only)
  stage1_steps = steps_per_epoch * cfg.epochs
  stage1_rate = optim.learning_rate_schedule(cfg.learning_rate, stage1_steps, cfg.lr_schedule)
  stage2_rate = (optim.learning_rate_schedule(cfg.head_learning_rate or cfg.learning_rate,
                                              steps_per_epoch * cfg.head_epochs,
                                              cfg.lr_schedule) if cfg.head_epochs else None)

  def learning_rate(s: int) -> float:
    """The rate of update number s (1-based), as the optimiser (stage 1 or 2) used it."""
    if stage2_rate is None or s <= stage1_steps:
      return float(stage1_rate(s - 1))
    return float(stage2_rate(s - 1 - stage1_steps))
  optimizer_options = dict(weight_decay=cfg.weight_decay, b1=cfg.adam_b1, b2=cfg.adam_b2,
                           eps=cfg.adam_eps, clip_norm=cfg.clip_norm, schedule=cfg.lr_schedule,
                           epsilon_mode=cfg.adam_epsilon_mode)
  optimizer = optim.make_optimizer(params, learning_rate=cfg.learning_rate,
                                   total_steps=stage1_steps, **optimizer_options)
  stage2_optimizer = None
  if cfg.head_epochs:
    stage2_optimizer = optim.make_optimizer(
        params, learning_rate=cfg.head_learning_rate or cfg.learning_rate,
        total_steps=steps_per_epoch * cfg.head_epochs, freeze_encoders=True,
        **optimizer_options)
  if cfg.embed_mix != "none":  # a bad paraphrase file / T5 folder fails before any write
    from lcl_jax.train import mixing
    mixing.check_settings(mixing.MixSettings.from_config(cfg),
                          {name: list(data.splits[name].texts)
                           for name in ("validation", "test")})
  if is_main:  # only now: a wrong --encoder or bad data must not leave a config.json
    for c, d in zip(cfgs, datas):
      checkpoint_lib.write_json_atomic(pathlib.Path(c.workdir).absolute() / "config.json", {
          "config": json.loads(c.to_json()),
          "dataset": d.describe(),
          "jax_version": jax.__version__,
          "devices": [str(dev) for dev in jax.devices()],
          "process_count": jax.process_count(),
          "runs_per_program": len(cfgs),
      })
  contrastive = tiled_losses.Contrastive(
      cfg.contrastive_impl, cfg.contrastive_tile_size, cfg.contrastive_auto_threshold,
      mesh=program.contrastive_mesh(), axis_name=parallel.DATA_AXIS)
  step_options = dict(multilabel=multilabel, stage2_optimizer=stage2_optimizer,
                      stage2_start_step=stage1_steps if stage2_optimizer is not None else None,
                      contrastive=contrastive,
                      aux_weight=objectives.aux_weight_schedule(
                          cfg.aux_weight_start, cfg.aux_weight_end, stage1_steps,
                          cfg.aux_schedule) if data.aux_label_names else None)
  train_step = _with_precision(cfg.matmul_precision, program.compile(
      lambda: steps.make_train_step(
          spec, modules, optimizer, alpha=cfg.alpha, temperature=cfg.temperature,
          dropout_key=jax.random.key(cfg.seed + 1, impl=cfg.dropout_rng_impl),
          axis_name=dp.axis_name, **step_options),
      lambda: steps.make_group_train_step(spec, modules, optimizer, **step_options)))
  eval_step = _with_precision(cfg.matmul_precision, program.eval_dp.compile_eval_step(
      steps.make_eval_step(modules, with_features=cfg.save_features)))

  runs = [_Run(c, d, checkpoint_lib.RunCheckpoints(c.workdir, keep_latest=min(2, len(cfgs))))
          for c, d in zip(cfgs, datas)]
  host_states = [steps.init_state(p, optimizer, stage2_optimizer) for p in params_of_runs]
  host_states, start_step = _resume_runs(
      program, runs, [program.like_state(h) for h in host_states])
  state = program.put_state(host_states)
  del host_states, params, params_of_runs

  for run in runs:
    run.outputs = _Outputs(run.workdir, enabled=is_main, start_step=run.start_step)
  selection = _selection_metric(multilabel)
  # The auxiliary head's decision threshold: the global one (the mean of per-class ones).
  aux_threshold = float(np.mean(thresholds))
  shapes_seen: set[tuple] = set()
  # Throughput over windows between two host syncs (log steps, checkpoints, epoch ends,
  # compilations): a window opens when its first step is dispatched and closes when
  # the host next waits for the devices; steps that compile are in no window.
  throughput = {"seconds": 0.0}
  window: dict[str, Any] = {"start": None, "rows": [0] * len(runs)}
  pending: list[tuple[int, Any]] = []  # (step, device metrics) not yet checked on host
  pad_token_id = data.pad_token_id
  group_label = lambda run: f" (run {run.workdir})" if len(runs) > 1 else ""

  def close_window() -> None:
    """Call right after the host has waited for every dispatched step."""
    if window["start"] is not None:
      for run, rows in zip(runs, window["rows"]):
        run.rows += rows
      throughput["seconds"] += time.perf_counter() - window["start"]
      window.update(start=None, rows=[0] * len(runs))

  def flush_pending() -> float | None:
    """Pulls the pending steps' metrics to the host (one transfer: the only per-step
    host synchronisation of the loop, every `log_every_steps`) and checks each step's
    `finite` (loss, gradients, new params and optimiser state all finite) and loss, for
    every still-training run.

    The guard of every checkpoint and evaluation: it is called before each of them and
    covers every step since the previous call, however rarely metrics are logged.
    Returns the last step's loss (the mean over the still-training runs; None if
    nothing was pending).
    """
    if not pending:
      return None
    host = list(zip([s for s, _ in pending], dp.fetch_scalars([m for _, m in pending])))
    pending.clear()
    close_window()
    host_memory.release_free_memory()  # free heap pages back (see host_memory)
    losses = []
    for index, run in enumerate(runs):
      if not run.training:
        continue
      for s, group_metrics in host:
        m = program.run_metrics(group_metrics, index)
        loss = float(m["loss"])
        if not math.isfinite(loss) or float(m["finite"]) < 1.0:
          what = (f"the loss is {loss}" if not math.isfinite(loss) else
                  f"the loss is finite ({loss:.4g}) but the gradients or the updated "
                  "parameters hold NaN/inf")
          for r in runs:
            r.ckpt.wait()
          last = run.ckpt.latest_step
          kept = (f"the last good checkpoint (step {last}) is kept in "
                  f"{run.workdir / 'checkpoints'}" if last is not None
                  else "no checkpoint was saved")
          raise NonFiniteLossError(
              f"{cfg.objective} on {cfg.dataset}{group_label(run)}: {what} at step {s}; "
              f"stopping without saving or evaluating that state; {kept}. Try a lower "
              "--learning_rate or --dtype=float32")
      s, m = host[-1][0], program.run_metrics(host[-1][1], index)
      record = {"kind": "train", "step": s, "epoch": s / steps_per_epoch}
      record.update({k: float(v) for k, v in m.items()})
      record["learning_rate"] = learning_rate(s)
      if throughput["seconds"] > 0:
        record["sequences_per_second"] = run.rows / throughput["seconds"]
      run.outputs.write(record)
      losses.append(record["loss"])
    return float(np.mean(losses)) if losses else None

  def evaluate(run: _Run, split_name: str,
               params) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    split = run.data.eval_split(split_name)
    outputs = evaluate_logits(eval_step, program.eval_dp, params, split.batches(),
                              split.num_examples, what=f"evaluation on {split_name}")
    result_metrics: dict[str, float] = {}
    arrays: dict[str, np.ndarray] = {"labels": split.labels}
    if "features" in outputs:  # Φ's [CLS] vectors, saved with the predictions
      arrays["features"] = outputs.pop("features")
    aux_logits = outputs.pop("aux_logits", None)
    if aux_logits is not None:  # seed 004's auxiliary head: metrics under "aux"
      probs = probabilities(aux_logits, True)
      result_metrics["aux"], predictions = split_metrics(
          split.aux_labels, probs, multilabel=True, thresholds=aux_threshold)
      arrays.update(aux_labels=split.aux_labels, aux_probabilities=probs.astype(np.float32),
                    aux_predictions=predictions)
    for name, values in outputs.items():
      probs = probabilities(values, multilabel)
      m, predictions = split_metrics(split.labels, probs, multilabel=multilabel,
                                     thresholds=thresholds)
      prefix = "" if name == "logits" else "weighting_"
      result_metrics.update({prefix + k: v for k, v in m.items()})
      arrays[prefix + "probabilities"] = probs.astype(np.float32)
      arrays[prefix + "predictions"] = predictions
    return result_metrics, arrays

  def save_latest(step: int) -> None:
    """Every still-training run's state at `step`; a group waits for the writes, so a
    kill leaves its runs at most one checkpoint apart (`_resume_runs`)."""
    for index, run in enumerate(runs):
      if run.training:
        run.ckpt.save_latest(step, program.run_state(state, index), run.progress_snapshot())
    if len(runs) > 1:
      for run in runs:
        run.ckpt.wait()

  def write_step_eval(run: _Run, at_step: int, validation: dict[str, float],
                      test: dict[str, float]) -> None:
    """The `eval_every_steps` record of step `at_step` (Fig. 5 of seed 004)."""
    run.outputs.write({"kind": "step_eval", "step": at_step,
                       "epoch": at_step / steps_per_epoch,
                       "eval": {"validation": validation, "test": test}})

  def end_epoch(index: int, run: _Run, epoch: int, step: int) -> None:
    """Evaluates Φ (and Ψ) of one run on validation and test; best / early stopping."""
    progress = run.progress
    params = program.eval_params(state, index)
    val_metrics, val_arrays = evaluate(run, "validation", params)
    test_metrics, test_arrays = evaluate(run, "test", params)
    record = {"epoch": epoch + 1, "step": step, "validation": val_metrics,
              "test": test_metrics}
    value = val_metrics[selection]
    improved = _improves(progress, value, val_metrics["loss"])
    if improved:
      progress.update(best_epoch=epoch + 1, best_value=value, epochs_since_improvement=0)
      run.ckpt.save_best(step, program.run_state(state, index)["params"],
                         {"epoch": epoch + 1, "step": step, selection: value})
      if is_main:
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
    run.outputs.write({"kind": "eval", **_flatten(record)})
    if cfg.eval_every_steps and step % cfg.eval_every_steps == 0:
      write_step_eval(run, step, val_metrics, test_metrics)
    if is_main:
      log.info("epoch %d/%d%s  validation %s  test %s%s", epoch + 1, total_epochs,
               group_label(run), _fmt(val_metrics), _fmt(test_metrics),
               "  (best)" if improved else "")

  # Several processes: batches are still built by the prefetch thread but placed in
  # the loop's thread, so that every process issues its device work in one order (with
  # the placement in the thread, tests/test_multihost.py deadlocked in gloo's context
  # set-up: contexts are created in per-process call order).
  place_in_thread = jax.process_count() == 1
  step = start_step
  training = [run for run in runs if run.training]
  completed_epochs = len(training[0].progress["history"]) if training else total_epochs
  try:
    with _StopSignals() as stop:
      for epoch in range(completed_epochs, total_epochs):
        if not any(run.training for run in runs):
          break
        if epoch >= cfg.epochs and not any(
            run.progress.get("heads_reinitialised") for run in runs if run.training):
          # Stage 2 (two-stage training): new heads, encoders frozen from here on.
          state = program.put_state([
              _reinitialise_heads(program.run_state(state, i), modules, run.cfg.seed)
              for i, run in enumerate(runs)])
          for run in runs:
            run.progress["heads_reinitialised"] = True
          log.info("stage 2: encoders frozen, heads re-initialised, %d epoch(s)",
                   cfg.head_epochs)
        run_args = program.put_run_args(
            alpha=[run.cfg.alpha for run in runs],
            temperature=[run.cfg.temperature for run in runs],
            seed=[run.cfg.seed for run in runs],
            active=[run.training for run in runs], rng_impl=cfg.dropout_rng_impl)
        epoch_start_step = epoch * steps_per_epoch
        first = step - epoch_start_step  # > 0 when resuming inside this epoch
        bar = _progress_bar(cfg, is_main, epoch, steps_per_epoch, first)
        # The next batches are built (the runs' batches stacked) and copied to the
        # devices by a background thread while the devices work; the host waits for the
        # devices only in flush_pending (every log_every_steps, before checkpoints and
        # evaluations) and at compilations.
        host_batches = (program.host_batch(list(batches), pad_token_id) for batches in zip(
            *(run.data.train_batches(epoch, start_step=first) for run in runs)))
        with data_pipeline.Prefetcher(host_batches, dp.put_batch,
                                      place_in_thread=place_in_thread) as prefetched:
          for batch, device_batch in prefetched:
            shape_key = tuple(sorted((k, v.shape) for k, v in batch.items()))
            compiles = shape_key not in shapes_seen
            if compiles:  # its compile time and run stay out of the throughput windows
              if pending:
                jax.block_until_ready(pending[-1][1])
              close_window()
              if bar is not None:
                bar.set_postfix_str("compiling", refresh=True)
            elif window["start"] is None:
              window["start"] = time.perf_counter()
            state, step_metrics = train_step(state, device_batch, run_args)
            step += 1
            pending.append((step, step_metrics))
            if compiles:
              shapes_seen.add(shape_key)
              jax.block_until_ready(step_metrics)
              host_memory.release_free_memory()  # the compiler's and the step's buffers
              if bar is not None:
                bar.set_postfix_str("", refresh=False)
            else:
              for index, run in enumerate(runs):
                if run.training:
                  window["rows"][index] += program.run_rows(batch, index) * _process_scale()
            if step % cfg.log_every_steps == 0:
              loss_value = flush_pending()
              if bar is not None and loss_value is not None:
                rate = sum(r.rows for r in runs) / max(throughput["seconds"], 1e-9)
                bar.set_postfix(loss=f"{loss_value:.4f}", seq_per_s=f"{rate:.1f}")
            if bar is not None:
              bar.update(1)
              if compiles:
                _restart_rate(bar)
            at_epoch_end = step == epoch_start_step + steps_per_epoch
            if (cfg.eval_every_steps and step % cfg.eval_every_steps == 0
                and not at_epoch_end):  # (at an epoch end the epoch's evaluation serves)
              flush_pending()  # never evaluate a non-finite state
              for index, run in enumerate(runs):
                if run.training:
                  params = program.eval_params(state, index)
                  step_val = evaluate(run, "validation", params)[0]
                  step_test = evaluate(run, "test", params)[0]
                  write_step_eval(run, step, step_val, step_test)
                  if is_main:
                    log.info("step %d%s  validation %s  test %s", step, group_label(run),
                             _fmt(step_val), _fmt(step_test))
            if stop.raised and not at_epoch_end:
              flush_pending()
              save_latest(step)
              raise _interrupted(stop, f"at step {step}", runs)
            if step % cfg.checkpoint_every_steps == 0 and not at_epoch_end:
              flush_pending()
              save_latest(step)
        if bar is not None:
          bar.close()
        flush_pending()

        # End of epoch: evaluate Φ (and Ψ) of every still-training run.
        ended = [(index, run) for index, run in enumerate(runs) if run.training]
        for index, run in ended:
          end_epoch(index, run, epoch, step)
        for index, run in ended:  # a run stopped just now saves its final state too
          run.ckpt.save_latest(step, program.run_state(state, index), run.progress_snapshot())
        if len(runs) > 1:
          for run in runs:
            run.ckpt.wait()
        host_memory.release_free_memory()  # the evaluations' buffers
        if stop.raised and epoch + 1 < total_epochs:
          raise _interrupted(stop, f"at the end of epoch {epoch + 1}", runs)
  finally:
    for run in runs:
      run.ckpt.wait()
      run.outputs.close()

  return [_finish_run(run, program.run_state(state, index), program, state, cfg=run.cfg,
                      spec=spec, multilabel=multilabel, thresholds=thresholds,
                      seconds=throughput["seconds"],
                      compiled_shapes=len(shapes_seen), stage1_steps=stage1_steps,
                      modules=modules, evaluate=evaluate, is_main=is_main,
                      aux_threshold=aux_threshold)
          for index, run in enumerate(runs)]


def _interrupted(stop: "_StopSignals", where: str, runs) -> TrainingInterrupted:
  """Waits for the runs' checkpoint writes and returns the error that ends the run on
  SIGTERM / SIGINT, naming where it stopped and the checkpoint folders."""
  for run in runs:
    run.ckpt.wait()
  return TrainingInterrupted(
      f"{stop.name} {where}: state saved in "
      f"{', '.join(str(r.workdir / 'checkpoints') for r in runs)}; "
      "re-run the same command to resume", signum=stop.signum)


def _finish_run(run: _Run, run_state, program, state, *, cfg: TrainConfig, spec, multilabel,
                thresholds, seconds, compiled_shapes, stage1_steps, modules,
                evaluate, is_main, aux_threshold) -> dict[str, Any]:
  """Writes one run's results.json (+ thresholds, plots, export) and returns it."""
  workdir, progress, ckpt, data = run.workdir, run.progress, run.ckpt, run.data
  results_path = workdir / "results.json"
  dp = program.dp
  best = next(h for h in progress["history"] if h["epoch"] == progress["best_epoch"])
  results = {
      "dataset": cfg.dataset,
      "objective": cfg.objective,
      "encoder": cfg.encoder,
      "weighting_encoder": cfg.weighting_encoder if spec.uses_weighting_network else None,
      "seed": cfg.seed,
      "head": head_label(cfg, modules["primary"]),
      "synthetic": data.synthetic,
      "multilabel": multilabel,
      "selection_metric": _selection_metric(multilabel),
      "best_epoch": progress["best_epoch"],
      "epochs_trained": len(progress["history"]),
      "stopped_early": progress["stopped_early"],
      # Main-task metrics; the auxiliary head's (if any) go under results["aux"].
      "validation": {k: v for k, v in best["validation"].items() if k != "aux"},
      "test": {k: v for k, v in best["test"].items() if k != "aux"},
      "history": progress["history"],
      "steps": int(np.asarray(run_state["step"])),
      "sequences_per_second": run.rows / seconds if seconds else None,
      "compiled_train_shapes": compiled_shapes,
      "num_devices": dp.num_devices,
      "parallelism": dp.name,
      "split_sizes": data.split_sizes(),
      # Set when --max_eval_examples cut the test split: the test metrics are on a subset.
      "test_subset": data.test_subset(),
  }
  if data.aux_label_names:
    results["aux"] = {"task": cfg.aux_task, "label_names": list(data.aux_label_names),
                      "threshold": aux_threshold,
                      "weight": {"start": cfg.aux_weight_start, "end": cfg.aux_weight_end,
                                 "schedule": cfg.aux_schedule, "steps": stage1_steps},
                      "validation": best["validation"]["aux"], "test": best["test"]["aux"]}
  if cfg.head_epochs:
    results["two_stage"] = {"stage1_epochs": cfg.epochs, "stage2_epochs": cfg.head_epochs,
                            "stage2_learning_rate": cfg.head_learning_rate or cfg.learning_rate,
                            "stage2_start_step": stage1_steps}
  if multilabel:
    fit_scores = None
    if cfg.threshold_fit == "train":  # every process takes part in the evaluation
      best_params, _ = ckpt.restore_best(run_state["params"])
      fit_scores = evaluate(run, "train", program.place_params(state, best_params))[1]
    if is_main:
      results.update(_multilabel_decisions(workdir, cfg, data.label_names, thresholds,
                                           train_arrays=fit_scores))
  if cfg.embed_mix != "none":  # every process takes part in the evaluation
    best_params, _ = ckpt.restore_best(run_state["params"])
    mixed = _mixed_evaluation(cfg, workdir, data, program.eval_dp, modules,
                              program.place_params(state, best_params), thresholds, is_main)
    results["mixed"] = mixed
  if is_main:
    results["plots"] = _write_plots(workdir, progress, data.label_names, multilabel)
  if cfg.export_hf and is_main:
    results["export"] = _export_best(ckpt, run_state["params"], modules,
                                     workdir / "export", cfg=cfg, results=results,
                                     label_names=data.label_names,
                                     thresholds=_decision_thresholds(results, thresholds)
                                     if multilabel else None)
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




def head_label(cfg: TrainConfig, primary_module: Any) -> str:
  """Which head Φ has, as results.json and the results tables print it: 'paper' (the LCL
  release's head), 'hf (BertForSequenceClassification)' (--head=hf, or bert_ce),
  'direct' / 'dense1' / 'dense2' / 'label_attention', or the baseline's module name."""
  architecture = getattr(primary_module, "HF_ARCHITECTURE", None)
  if cfg.objective == "bert_ce" or (cfg.head == "hf" and architecture):
    return f"hf ({architecture})"
  if cfg.label_embeddings:
    return "label_attention"
  if cfg.encoder in BASELINE_ENCODERS:
    return type(primary_module).__name__
  return cfg.head


def _label_layout(cfg: TrainConfig, data) -> Any:
  """Φ's `LabelLayout` with --label_embeddings (else None); with an auxiliary task its
  groups are the task's label -> group mapping, so the label-attention head's auxiliary
  head scores each group from its labels' vectors (Section 3.5.1)."""
  if data.label_block is None:
    return None
  return objectives.label_layout_for(
      data.label_block, aux_membership=objectives.aux_membership(cfg))


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


def _device_params(dp, state, host_params):
  """`host_params` placed like the params of `state` (via a state round trip)."""
  host_state = dp.host_state(state)
  return dp.params_of(dp.put_state({**host_state, "params": host_params}))


class _RunScores:
  """Labels and Φ's probabilities of a finished run's splits, read lazily per split
  (`thresholds.ScoreSource`): validation/test from predictions/best_*.npz, train from
  an evaluation of the best params."""

  def __init__(self, workdir: pathlib.Path, train_arrays: dict[str, np.ndarray] | None):
    self._workdir, self._train = workdir, train_arrays

  def split_scores(self, name: str) -> tuple[np.ndarray, np.ndarray]:
    if name == "train":
      if self._train is None:
        raise ValueError("train-split scores were not computed (threshold_fit != 'train')")
      arrays = self._train
    else:
      arrays = np.load(self._workdir / "predictions" / f"best_{name}.npz")
    return np.asarray(arrays["labels"]), np.asarray(arrays["probabilities"], np.float64)


def _per_class_record(labels, predictions, label_names) -> dict[str, Any]:
  per_class = metrics_lib.per_class_metrics(labels, predictions)
  return {"labels": list(label_names),
          **{k: per_class[k].tolist() for k in ("precision", "recall", "f1", "support")},
          "std": per_class["std"]}


def _multilabel_decisions(workdir: pathlib.Path, cfg: TrainConfig, label_names,
                          global_thresholds: np.ndarray, *,
                          train_arrays: dict[str, np.ndarray] | None) -> dict[str, Any]:
  """Per-class test metrics under the global thresholds and, unless threshold_fit is
  'none', per-class thresholds fitted on the fitting split (never test) and applied to
  validation and test; writes <workdir>/thresholds.json."""
  scores = _RunScores(workdir, train_arrays)
  out: dict[str, Any] = {}
  test_labels, test_probs = scores.split_scores("test")
  out["per_class_test"] = {"global": _per_class_record(
      test_labels, thresholds_lib.apply_thresholds(test_probs, global_thresholds), label_names)}
  if cfg.threshold_fit == "none":
    return out
  # Fitted on the fitting split alone; test is only read above/below to apply them.
  fitted = thresholds_lib.fit_thresholds(scores, fit_split=cfg.threshold_fit,
                                         default=float(np.mean(global_thresholds)))
  record: dict[str, Any] = {"fit_split": cfg.threshold_fit, "thresholds": fitted.tolist()}
  for split in ("validation", "test"):
    labels, probs = scores.split_scores(split)
    record[split] = metrics_lib.multilabel_metrics(
        labels, thresholds_lib.apply_thresholds(probs, fitted))
  out["per_class_test"]["per_class_thresholds"] = _per_class_record(
      test_labels, thresholds_lib.apply_thresholds(test_probs, fitted), label_names)
  out["per_class_thresholds"] = record
  checkpoint_lib.write_json_atomic(workdir / "thresholds.json", {
      "fit_split": cfg.threshold_fit,
      "candidates": [float(thresholds_lib.DEFAULT_CANDIDATES[0]),
                     float(thresholds_lib.DEFAULT_CANDIDATES[-1]),
                     len(thresholds_lib.DEFAULT_CANDIDATES)],
      "global": np.asarray(global_thresholds).tolist(),
      "labels": list(label_names),
      "per_class": fitted.tolist(),
  })
  return out


def _decision_thresholds(results: dict[str, Any], configured) -> list[float]:
  """The per-class thresholds fitted after training when there are any, else the config's."""
  fitted = (results.get("per_class_thresholds") or {}).get("thresholds")
  return list(fitted) if fitted is not None else np.asarray(configured).tolist()


def _mixed_evaluation(cfg: TrainConfig, workdir: pathlib.Path, data, dp, modules, params,
                      thresholds, is_main: bool) -> dict[str, Any]:
  """Seed 004's embedding mixing on the best params (validation and test, Φ only):
  metrics as the plain ones (global thresholds for multi-label), the mixed predictions
  in predictions/mixed_<split>.npz and the candidates in
  predictions/mixed_<split>_candidates.tsv (a valid --paraphrase_file)."""
  from lcl_jax.models import pretrained
  from lcl_jax.train import mixing

  settings = mixing.MixSettings.from_config(cfg)
  mixer = mixing.Mixer(modules["primary"], {"primary": params["primary"]}, dp,
                       data.text_batches, matmul_precision=cfg.matmul_precision)
  split_texts = {name: list(data.splits[name].texts) for name in ("validation", "test")}
  bertscore_model = (str(pretrained.resolve_checkpoint_dir(
      data_pipeline.resolve_checkpoint(cfg.encoder)))
                     if cfg.embed_mix_similarity == "bertscore" else None)
  mixed = mixing.mixed_splits(settings, mixer, split_texts,
                              train_texts=list(data.splits["train"].texts),
                              bertscore_model=bertscore_model,
                              bertscore_layers=modules["primary"].config.num_hidden_layers,
                              max_length=cfg.max_length)
  out: dict[str, Any] = {**settings.describe(), "network": "primary"}
  for name, split in mixed.items():
    labels = data.eval_split(name).labels
    probs = probabilities(split.logits, data.multilabel)
    out[name], predictions = split_metrics(labels, probs, multilabel=data.multilabel,
                                           thresholds=thresholds)
    if is_main:
      arrays = {"labels": labels, "probabilities": probs.astype(np.float32),
                "predictions": predictions}
      extra = {}
      if split.candidate_index is not None:
        arrays.update(candidate_index=split.candidate_index, similarity=split.similarity)
        extra = {"similarity": split.similarity}
      checkpoint_lib.save_npz_atomic(workdir / "predictions" / f"mixed_{name}.npz", **arrays)
      mixing.write_candidates(workdir / "predictions" / f"mixed_{name}_candidates.tsv", name,
                              split_texts[name], split.candidates, extra)
  log.info("embed_mix=%s w=%g: validation %s  test %s", cfg.embed_mix, cfg.embed_mix_weight,
           _fmt(out["validation"]), _fmt(out["test"]))
  return out


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
    layout = getattr(module, "layout", None)
    if layout is not None:  # --label_embeddings: what rebuilds the rows and the head
      token_types = all(c.type_vocab_size >= 2
                        for _, _, c in data_pipeline.label_encoder_configs(cfg))
      # (The auxiliary head is not exported: like the other heads' it is training-only.)
      extra["lcl_jax"]["label_attention"] = {
          "text_tokens": cfg.label_text_tokens, "token_types": token_types}
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


def _with_precision(precision: str, step_fn):
  """`step_fn` traced and run under jax.default_matmul_precision(precision)."""
  def wrapped(*args):
    with jax.default_matmul_precision(precision):
      return step_fn(*args)
  return wrapped


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
  return tqdm(total=total, initial=initial, desc=f"{cfg.objective} epoch {epoch + 1}/{cfg.epochs + cfg.head_epochs}",
              unit="step", dynamic_ncols=True, leave=False)
