"""Resuming and stopping a run: the checks a workdir's earlier run must pass (same
config, same data), restoring a program's runs from their checkpoints, and the stop
signals (SIGTERM / Ctrl-C) that save the state and end the run with `TrainingInterrupted`.
"""
from __future__ import annotations

import json
import logging
import pathlib
import signal
import sys
import threading
from typing import Any

import numpy as np

from lcl_jax.train.config import TrainConfig

log = logging.getLogger("lcl_jax.train")

# Fields that may differ between the run that wrote a workdir and the one resuming it.
RESUME_EXEMPT = {"workdir", "data_dir", "progress_bar", "log_every_steps",
                  "checkpoint_every_steps", "parallelism", "export_hf", "keep_checkpoints",
                  # Only adds evaluation records to metrics.jsonl (same updates, same
                  # per-epoch selection):
                  "eval_every_steps",
                  # Same values and gradients either way (lcl_jax.losses.tiled):
                  "contrastive_impl", "contrastive_tile_size", "contrastive_auto_threshold",
                  # Only what the logged MFU is measured against:
                  "peak_flops"}


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


class StopSignals:
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


def check_resume_data(workdir: pathlib.Path, fingerprint: str, cfg: TrainConfig) -> None:
  path = workdir / "config.json"
  if not path.exists():
    return
  saved = json.loads(path.read_text()).get("dataset", {}).get("fingerprint")
  if saved is not None and saved != fingerprint:
    raise ValueError(
        f"{workdir} was trained on other data than --data_dir={cfg.data_dir} gives for "
        f"{cfg.dataset} now (texts/labels fingerprint {saved[:12]}... vs {fingerprint[:12]}...); "
        "point --data_dir at the data of that run, or use another --workdir")


def config_differences(config_json: pathlib.Path, cfg: TrainConfig) -> str:
  """The fields (outside `RESUME_EXEMPT`) in which the run that wrote `config_json` (a
  run's config.json) differs from `cfg`, as "field: saved -> now, ..." ('' if none)."""
  # A field added after the run was written (e.g. issue 14's fidelity options) counts
  # as its default value, which is the behaviour that run had.
  saved = {**json.loads(TrainConfig().to_json()), **json.loads(config_json.read_text())["config"]}
  current = json.loads(cfg.to_json())
  diff = sorted(k for k in set(saved) | set(current)
                if k not in RESUME_EXEMPT and saved.get(k) != current.get(k))
  return ", ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in diff)


def check_resume_config(workdir: pathlib.Path, cfg: TrainConfig) -> None:
  path = workdir / "config.json"
  if not path.exists():
    return
  details = config_differences(path, cfg)
  if details:
    raise ConfigMismatchError(
        f"{workdir} holds a run with a different configuration ({details}); "
        "use another --workdir or delete that one")


def finished_results(cfg: TrainConfig) -> dict[str, Any] | None:
  """A finished run's results.json (its config checked), else None. Read only."""
  workdir = pathlib.Path(cfg.workdir).absolute()
  if not (workdir / "results.json").exists():
    return None
  check_resume_config(workdir, cfg)
  log.info("%s already finished; returning its results", workdir)
  results = json.loads((workdir / "results.json").read_text())
  if cfg.export_hf and not results.get("export"):  # issue 18 item 6: say why not
    log.warning("%s finished without --export_hf: nothing was exported now (the export is "
                "written when a run finishes; train it again in a new --workdir with "
                "--export_hf, or load the run itself with lcl_jax.inference.Predictor / "
                "experiments.predict --run=%s)", workdir, workdir)
  return results


def resume_runs(program, runs: list[Any], likes: list[Any]) -> tuple[list[Any], int]:
  """Restores every run's latest checkpoint (`runs`: the `program.Run`s of `program`); a
  group restarts from the newest step all its still-training runs have saved (runs that
  were ahead go back to it and their later checkpoints are deleted; one without a
  checkpoint restarts the group from step 0). Runs that stopped early keep their last
  state. Returns (host states, start step)."""
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


def interrupted(stop: "StopSignals", where: str, runs) -> TrainingInterrupted:
  """Waits for the runs' checkpoint writes and returns the error that ends the run on
  SIGTERM / SIGINT, naming where it stopped and the checkpoint folders."""
  for run in runs:
    run.ckpt.wait()
  return TrainingInterrupted(
      f"{stop.name} {where}: state saved in "
      f"{', '.join(str(r.workdir / 'checkpoints') for r in runs)}; "
      "re-run the same command to resume", signum=stop.signum)
