"""Sweeps of training runs: layout, skip-finished, resume, several runs at once.

Layout. Every run of every experiment binary lives in
`<root>/<dataset>[/<variant>]/<objective>/seed<k>/` (the trainer's workdir:
config.json, checkpoints/, predictions/, metrics.jsonl, results.json). Binaries that
need the same run (Table 1 and Tables 5 / Figure 2, Table 2 and Table 4, Table 1's
Empathetic Dialogues and Table 3's 32-class column) share it when they are given the
same `--workdir`; the trainer refuses a workdir whose saved config differs (another
encoder, another preset), so runs of different settings need different roots.

Skip and resume. A run whose `results.json` exists is finished and is not started
again; any other run is handed to `trainer.train`, which resumes from its latest
checkpoint when there is one. Re-running a killed sweep therefore continues it.

Archive (`ResultsArchive`, the binaries' `--results_archive`). A run folder holds
checkpoints (hundreds of MB a run) and may not outlive a session; the archive keeps each
finished run's small outputs in `<archive>/<key>/` (config.json, metrics.jsonl, plots,
the log's tail, and results.json last: its presence marks an archived run), a folder
meant to be committed. A run archived with the same config (the fields a resume
compares, `resume.config_differences`) counts as finished even with no run folder; one
archived with another config is refused (`ConfigMismatchError`, naming the file), so a
changed flag never mixes runs of two settings in one table.

Several runs in one program (`runs_per_program = S > 1`). Runs whose configs differ
only in seed, alpha and temperature (`config.GROUP_VARYING`; e.g. the seeds of one
table cell) are trained S at a time by `trainer.train_group`: one jitted step,
`jax.vmap`ped over the runs, each run keeping its own folder, checkpoints and
results.json exactly as if it had run alone (`group_runs`). Other runs go on as before.
With `parallel_runs > 1`, each worker trains one such group.

Several runs at once (`parallel_runs > 1`). The parent process never initialises a
JAX backend (it would claim the accelerators and, on GPU, most of their memory). It
asks a short-lived probe subprocess for the platform and the local device count,
splits the devices into `parallel_runs` disjoint slots of `devices_per_run`, and runs
each job in a worker subprocess (`python -m lcl_jax.studies.worker`) restricted to
its slot through the platform's environment variables:

* GPU: `CUDA_VISIBLE_DEVICES` (and `HIP_VISIBLE_DEVICES` for ROCm), mapped through
  the parent's own `CUDA_VISIBLE_DEVICES` if that is set;
* TPU: `TPU_VISIBLE_CHIPS` with `TPU_PROCESS_BOUNDS=1,1,1`,
  `TPU_CHIPS_PER_PROCESS_BOUNDS` for 1, 2, 4 or 8 chips, and a distinct
  `TPU_PROCESS_PORT` per slot (the single-host "several processes per TPU VM" set-up);
* CPU: `--xla_force_host_platform_device_count=<devices_per_run>` in `XLA_FLAGS`
  (virtual devices; the workers then share the host's cores).

A worker's output goes to `<run workdir>/worker.log`. SIGINT / SIGTERM to the parent
are forwarded to the workers as SIGTERM: each saves its state and exits, and the
sweep raises `SweepInterrupted`; re-running the command resumes every run.
With `parallel_runs == 1` runs execute in-process one after another, each
data-parallel over all devices; a SIGTERM/SIGINT that arrives outside a run's training
loop (data loading, network building, between runs) raises `SweepInterrupted` at once,
and one that the trainer handled (it saves and stops, or lets a run in its last epoch
finish) stops the sweep before the next run. Either way the binary then rewrites its
report marked incomplete (`cli.finish`) instead of dying by the default signal action.

One orchestrator. `run_in_process` (the in-process path) is also what
experiments/train.py runs its objective x seed programs with, under its own `RunPolicy`
(its log line; exit statuses instead of recorded failures).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from typing import Any, Iterable, Mapping, Sequence

from lcl_jax.train.config import TrainConfig, group_key
from lcl_jax.train.resume import ConfigMismatchError, config_differences

log = logging.getLogger("lcl_jax.studies")

# Exit status of a worker whose run was interrupted (state saved): 128 + SIGTERM.
INTERRUPTED_EXIT_CODE = 143
WORKER_LOG = "worker.log"
RESULTS_FILE = "results.json"

# TPU_CHIPS_PER_PROCESS_BOUNDS for a slot of n chips on one host.
_TPU_CHIP_BOUNDS = {1: "1,1,1", 2: "1,2,1", 4: "2,2,1", 8: "2,4,1"}
_TPU_BASE_PORT = 8476


class SweepInterrupted(RuntimeError):
  """The sweep was stopped (SIGTERM / SIGINT / a run's preemption); re-run to resume."""


@dataclasses.dataclass(frozen=True)
class RunSpec:
  """One training run of a sweep.

  Attributes:
    key: its path under the sweep root, `<dataset>[/<variant>]/<objective>/seed<k>`.
    config: the run's full TrainConfig (`config.workdir` = root / key).
  """
  key: str
  config: TrainConfig

  @property
  def workdir(self) -> pathlib.Path:
    return pathlib.Path(self.config.workdir)

  @property
  def results_path(self) -> pathlib.Path:
    return self.workdir / RESULTS_FILE


def run_key(dataset: str, objective: str, seed: int, variant: str | None = None) -> str:
  """`<dataset>[/<variant>]/<objective>/seed<k>`."""
  for name, value in (("dataset", dataset), ("objective", objective), ("variant", variant)):
    if value is not None and (not value or "/" in value or value in (".", "..")):
      raise ValueError(f"{name}={value!r} cannot be a folder name of a run")
  parts = [dataset] + ([variant] if variant else []) + [objective, f"seed{int(seed)}"]
  return "/".join(parts)


def make_spec(root: str | os.PathLike, base: TrainConfig, *, dataset: str, objective: str,
              seed: int, variant: str | None = None, **overrides: Any) -> RunSpec:
  """The run of (`dataset`, `objective`, `seed`) with `base`'s settings and `overrides`."""
  key = run_key(dataset, objective, seed, variant)
  config = dataclasses.replace(base, dataset=dataset, objective=objective, seed=int(seed),
                               workdir=str(pathlib.Path(root) / key), **overrides)
  return RunSpec(key, config)


def is_finished(spec: RunSpec) -> bool:
  return spec.results_path.is_file()


def load_results(spec: RunSpec) -> dict[str, Any] | None:
  """The run's results.json, or None if the run has not finished."""
  try:
    return json.loads(spec.results_path.read_text())
  except FileNotFoundError:
    return None
  except json.JSONDecodeError as e:
    raise ValueError(f"{spec.results_path} is not valid JSON: {e}") from e


# What the archive keeps of a run besides results.json (copied first), and the log tail.
ARCHIVED_FILES = ("config.json", "metrics.jsonl")
LOG_TAIL_FILE = "log_tail.txt"
LOG_TAIL_LINES = 200


def _copy_atomic(source: pathlib.Path, target: pathlib.Path) -> None:
  """`source`'s bytes into `target` via a temporary file in its folder + rename."""
  temporary = target.with_name(f".{target.name}.tmp{os.getpid()}")
  try:
    shutil.copyfile(source, temporary)
    os.replace(temporary, target)
  finally:
    temporary.unlink(missing_ok=True)


class ResultsArchive:
  """A finished run's small outputs kept under `root/<key>/` (no checkpoints).

  Args:
    root: the archive folder (e.g. results/table1_cpu, committed to git).
    log_file: the binary's log; its last LOG_TAIL_LINES lines go with each run
      archived (log_tail.txt).
  """

  def __init__(self, root: str | os.PathLike, *, log_file: str | os.PathLike | None = None):
    self.root = pathlib.Path(root)
    self.log_file = pathlib.Path(log_file) if log_file is not None else None

  def folder(self, spec: RunSpec) -> pathlib.Path:
    return self.root / spec.key

  def results(self, spec: RunSpec) -> dict[str, Any] | None:
    """The archived results.json of `spec`'s run, or None if it is not archived.

    Raises:
      ConfigMismatchError: the archived run had another configuration than `spec`
        (or no config.json); names the file.
    """
    folder = self.folder(spec)
    path = folder / RESULTS_FILE
    if not path.is_file():
      return None
    config = folder / "config.json"
    if not config.is_file():
      raise ConfigMismatchError(f"{path} has no config.json beside it: cannot tell which "
                                "settings the archived run had; delete that folder")
    details = config_differences(config, spec.config.resolved())
    if details:
      raise ConfigMismatchError(
          f"{config}: the run archived as {spec.key} was trained with another "
          f"configuration ({details}); give the flags it was run with, another "
          f"--results_archive, or delete {folder}")
    try:
      return json.loads(path.read_text())
    except json.JSONDecodeError as e:
      raise ValueError(f"{path} is not valid JSON: {e}") from e

  def store(self, spec: RunSpec) -> None:
    """Copies the finished run's small outputs into its archive folder, each file
    atomically and results.json last (a folder without it is not an archived run)."""
    folder = self.folder(spec)
    (folder / "plots").mkdir(parents=True, exist_ok=True)
    for name in ARCHIVED_FILES:
      if (spec.workdir / name).is_file():
        _copy_atomic(spec.workdir / name, folder / name)
    for plot in sorted((spec.workdir / "plots").glob("*.png")):
      _copy_atomic(plot, folder / "plots" / plot.name)
    if self.log_file is not None and self.log_file.is_file():
      tail = folder / LOG_TAIL_FILE
      temporary = tail.with_name(f".{tail.name}.tmp{os.getpid()}")
      temporary.write_text(_log_tail(self.log_file, LOG_TAIL_LINES) + "\n")
      os.replace(temporary, tail)
    _copy_atomic(spec.results_path, folder / RESULTS_FILE)
    log.info("archived %s in %s", spec.key, folder)


def _check_unique(specs: Sequence[RunSpec]) -> None:
  seen: dict[str, RunSpec] = {}
  for spec in specs:
    other = seen.get(spec.key)
    if other is not None and other.config != spec.config:
      raise ValueError(f"two different runs share the folder {spec.key}")
    seen[spec.key] = spec


@dataclasses.dataclass
class SweepOutcome:
  """What a sweep did.

  Attributes:
    results: key -> results.json content, for every run finished now or before.
    already_finished: keys that were finished before this sweep started (skipped).
    failed: key -> error message, for runs that raised (other runs went on).
  """
  results: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
  already_finished: list[str] = dataclasses.field(default_factory=list)
  failed: dict[str, str] = dataclasses.field(default_factory=dict)


def dedupe(specs: Iterable[RunSpec]) -> list[RunSpec]:
  """`specs` without repeats (same key and config), in first-seen order."""
  specs = list(specs)
  _check_unique(specs)
  out: dict[str, RunSpec] = {}
  for spec in specs:
    out.setdefault(spec.key, spec)
  return list(out.values())


def group_runs(specs: Sequence[RunSpec], runs_per_program: int) -> list[list[RunSpec]]:
  """`specs` in programs of at most `runs_per_program` runs each.

  Runs share a program only when their configs differ in nothing but seed, alpha,
  temperature and folder (`config.group_key`); the groups follow the first-seen
  order of their runs (e.g. seeds 0-4 of one cell with S = 2: [0, 1], [2, 3], [4]).

  Raises:
    ValueError: `runs_per_program` < 1 (names --runs_per_program).
  """
  if isinstance(runs_per_program, bool) or not isinstance(runs_per_program, int) \
      or runs_per_program < 1:
    raise ValueError(f"--runs_per_program={runs_per_program!r}: must be an integer >= 1")
  by_key: dict[str, list[list[RunSpec]]] = {}
  order: list[list[RunSpec]] = []
  for spec in specs:
    groups = by_key.setdefault(group_key(spec.config), [])
    if not groups or len(groups[-1]) == runs_per_program:
      groups.append([])
      order.append(groups[-1])
    groups[-1].append(spec)
  return order


def run_sweep(specs: Sequence[RunSpec], *, parallel_runs: int = 1,
              devices_per_run: int | None = None, fail_fast: bool = False,
              platform: str | None = None, num_devices: int | None = None,
              poll_seconds: float = 0.5, runs_per_program: int = 1,
              archive: ResultsArchive | None = None) -> SweepOutcome:
  """Runs every unfinished spec; returns the results of all finished ones.

  Args:
    specs: the runs (duplicates of the same run are merged).
    parallel_runs: how many runs at once. 1: in-process, one after another.
    devices_per_run: devices of each concurrent run (default: all local devices
      divided by `parallel_runs`). Only with `parallel_runs > 1`.
    fail_fast: re-raise the first failure instead of going on with the other runs.
    platform, num_devices: skip the device probe (tests; CPU boxes).
    poll_seconds: how often the parent checks its workers.
    runs_per_program: train up to this many runs that differ only in seed / alpha /
      temperature in one vmapped program (`group_runs`, `trainer.train_group`).
    archive: also count runs archived there (same config) as finished, and archive
      every run when it finishes (and finished runs not yet archived, at the start).

  Raises:
    SweepInterrupted: on SIGTERM/SIGINT or a preempted run (the finished runs'
      results are kept on disk; re-run to resume).
    ConfigMismatchError: a run archived with another config (before any training).
  """
  specs = dedupe(specs)
  group_runs([], runs_per_program)  # a bad --runs_per_program fails before any run
  outcome = SweepOutcome()
  pending = []
  from_archive = 0
  for spec in specs:
    results = load_results(spec)
    archived = archive.results(spec) if archive is not None else None
    if results is None and archived is None:
      pending.append(spec)
      continue
    if results is None:
      results, from_archive = archived, from_archive + 1
    elif archive is not None and archived is None:
      archive.store(spec)
    outcome.results[spec.key] = results
    outcome.already_finished.append(spec.key)
  log.info("sweep: %d runs, %d already finished%s, %d to run%s", len(specs),
           len(outcome.already_finished),
           f" ({from_archive} of them only in the archive {archive.root})" if from_archive
           else "", len(pending),
           f" ({parallel_runs} at once)" if parallel_runs > 1 and pending else "")
  if not pending:
    return outcome
  if parallel_runs < 1:
    raise ValueError(f"parallel_runs={parallel_runs} must be >= 1")
  with _RaiseOnStopSignals():
    if parallel_runs == 1:
      if devices_per_run is not None:
        log.info("devices_per_run is ignored with parallel_runs=1 (a run uses every device)")
      run_in_process(group_runs(pending, runs_per_program), outcome,
                     policy=RunPolicy(fail_fast=fail_fast, archive=archive))
    else:
      if platform is None or num_devices is None:
        platform, num_devices = probe_devices()
      slots = device_slots(num_devices, parallel_runs, devices_per_run)
      _run_in_workers(group_runs(pending, runs_per_program), outcome, platform=platform,
                      slots=slots, fail_fast=fail_fast, poll_seconds=poll_seconds,
                      archive=archive)
  return outcome


def _group_name(group: Sequence[RunSpec]) -> str:
  return " + ".join(spec.key for spec in group) + (" (one program)" if len(group) > 1 else "")


class RunPolicy:
  """What the in-process path (`run_in_process`) does around each program (the runs one
  `trainer.train_group` call trains): `announce` it before, `failed` when it raises.

  This class is the studies' policy: log `[<first run>/<runs>] <keys>`; a stop (the
  sweep's `SweepInterrupted`, the trainer's `TrainingInterrupted`) raises
  `SweepInterrupted`; any other `Exception` is re-raised with `fail_fast`, else logged
  and recorded in `outcome.failed` for each run of the program, and the sweep goes on;
  a `BaseException` that is not an `Exception` (KeyboardInterrupt) is re-raised.
  experiments/train.py subclasses it with its own log line and exit statuses.
  """

  def __init__(self, *, fail_fast: bool = False, archive: "ResultsArchive | None" = None):
    self.fail_fast = fail_fast
    self.archive = archive

  def finished(self, spec: RunSpec, result: dict[str, Any], outcome: SweepOutcome) -> None:
    """Called for each run of a program that finished: its results as written (key-sorted
    JSON, so that a report reads the same as on a re-run) into `outcome`, and the run
    archived when the sweep keeps an archive."""
    outcome.results[spec.key] = load_results(spec) or result
    if self.archive is not None:
      self.archive.store(spec)

  def announce(self, groups: Sequence[Sequence[RunSpec]], index: int) -> None:
    """Called before `groups[index]` is trained."""
    done = sum(len(group) for group in groups[:index])
    total = sum(len(group) for group in groups)
    log.info("[%d/%d] %s (%d runs finished before it, %d to run with it)", done + 1, total,
             _group_name(groups[index]), done, total - done)

  def failed(self, group: Sequence[RunSpec], error: BaseException,
             outcome: SweepOutcome) -> bool:
    """Called in the `except` clause of `group`'s `train_group` call.

    Returns:
      True: the failure is recorded, the next program runs; False: `error` is re-raised
      as it is. (Or raises its own exception.)
    Raises:
      SweepInterrupted: `error` is a stop (a signal; a run's preemption).
    """
    # Deferred (as in run_in_process): the binaries import this module at start-up, and
    # their --help loads no Flax.
    from lcl_jax.train import trainer  # pylint: disable=g-import-not-at-top

    name = _group_name(group)
    if isinstance(error, (SweepInterrupted, trainer.TrainingInterrupted)):
      raise SweepInterrupted(f"{name}: {error}") from error
    if not isinstance(error, Exception) or self.fail_fast:
      return False
    # The traceback goes to the log file (and the console with --verbosity=1).
    log.error("%s failed: %s: %s", name, type(error).__name__, error)
    log.debug("%s", traceback.format_exc())
    for spec in group:
      outcome.failed[spec.key] = f"{type(error).__name__}: {error}"
    return True


def run_in_process(groups: Sequence[Sequence[RunSpec]], outcome: SweepOutcome, *,
                   policy: RunPolicy | None = None) -> None:
  """Trains `groups` one after another in this process: each program by one
  `trainer.train_group` call (data-parallel over all devices), its runs' results put in
  `outcome.results[spec.key]`. Every unfinished run goes to the trainer (which resumes
  it, or returns a finished run's results); skipping finished runs is `run_sweep`'s.

  Args:
    groups: the programs, in order (`group_runs`).
    outcome: filled in place (`results`; `failed` as `policy` records them).
    policy: what is logged before each program and what its failure does (default:
      `RunPolicy()`, the studies'); see `RunPolicy.failed`.
  """
  # Deferred: the binaries import this module at start-up, and their --help loads no Flax.
  from lcl_jax.train import trainer  # pylint: disable=g-import-not-at-top

  policy = RunPolicy() if policy is None else policy
  for index, group in enumerate(groups):
    policy.announce(groups, index)
    try:
      results = trainer.train_group([spec.config for spec in group])
      for spec, result in zip(group, results):
        policy.finished(spec, result, outcome)
    except BaseException as e:  # pylint: disable=broad-except  (the policy decides)
      if not policy.failed(group, e, outcome):
        raise


# ---------------------------------------------------------------------------------------
# Several runs at once: worker subprocesses on disjoint device slots.


def probe_devices(env: Mapping[str, str] | None = None) -> tuple[str, int]:
  """(platform, local device count) as JAX sees them, asked of a subprocess."""
  code = ("import json, jax; "
          "print(json.dumps([jax.default_backend(), jax.local_device_count()]))")
  proc = subprocess.run([sys.executable, "-c", code], env=dict(env or os.environ),
                        capture_output=True, text=True, check=False)
  if proc.returncode != 0:
    raise RuntimeError(f"could not probe the JAX devices (exit {proc.returncode}):\n"
                       f"{proc.stderr[-2000:]}")
  platform, count = json.loads(proc.stdout.strip().splitlines()[-1])
  return str(platform), int(count)


def device_slots(num_devices: int, parallel_runs: int,
                 devices_per_run: int | None = None) -> list[tuple[int, ...]]:
  """`parallel_runs` disjoint, contiguous groups of local device ids."""
  if parallel_runs < 1:
    raise ValueError(f"parallel_runs={parallel_runs} must be >= 1")
  if devices_per_run is None:
    devices_per_run = num_devices // parallel_runs
  if devices_per_run < 1 or parallel_runs * devices_per_run > num_devices:
    raise ValueError(
        f"parallel_runs={parallel_runs} x devices_per_run={devices_per_run} does not fit "
        f"the {num_devices} local devices")
  return [tuple(range(i * devices_per_run, (i + 1) * devices_per_run))
          for i in range(parallel_runs)]


def _set_xla_cpu_device_count(xla_flags: str, count: int) -> str:
  flag = "--xla_force_host_platform_device_count"
  kept = [f for f in xla_flags.split() if not f.startswith(flag + "=")]
  return " ".join(kept + [f"{flag}={count}"])


def device_env(platform: str, device_ids: Sequence[int], *, slot: int,
               base: Mapping[str, str] | None = None) -> dict[str, str]:
  """The environment of a worker restricted to `device_ids` (local ids of the parent).

  Args:
    platform: "gpu" / "cuda" / "rocm", "tpu" or "cpu" (JAX's backend name).
    device_ids: the slot's devices, as numbered by the parent process.
    slot: the slot's index (distinct TPU process ports).
    base: the environment to extend (default: this process's).
  """
  env = dict(os.environ if base is None else base)
  ids = [int(i) for i in device_ids]
  if not ids:
    raise ValueError("a device slot needs at least one device")
  platform = platform.lower()
  if platform in ("gpu", "cuda", "rocm"):
    for var in ("CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES"):
      visible = [v for v in env.get(var, "").split(",") if v.strip()]
      if visible and max(ids) >= len(visible):
        raise ValueError(f"device ids {ids} exceed the parent's {var}={env[var]}")
      env[var] = ",".join(visible[i].strip() if visible else str(i) for i in ids)
  elif platform == "tpu":
    if len(ids) not in _TPU_CHIP_BOUNDS:
      raise ValueError(f"a TPU slot of {len(ids)} chips is not supported; use "
                       f"devices_per_run in {sorted(_TPU_CHIP_BOUNDS)}")
    port = _TPU_BASE_PORT + slot
    env.update({
        "TPU_VISIBLE_CHIPS": ",".join(map(str, ids)),
        "TPU_VISIBLE_DEVICES": ",".join(map(str, ids)),
        "TPU_PROCESS_BOUNDS": "1,1,1",
        "TPU_CHIPS_PER_PROCESS_BOUNDS": _TPU_CHIP_BOUNDS[len(ids)],
        "TPU_PROCESS_PORT": str(port),
        "TPU_PROCESS_ADDRESSES": f"localhost:{port}",
        "CLOUD_TPU_TASK_ID": "0",
        "ALLOW_MULTIPLE_LIBTPU_LOAD": "1",
    })
  elif platform == "cpu":
    env["XLA_FLAGS"] = _set_xla_cpu_device_count(env.get("XLA_FLAGS", ""), len(ids))
  else:
    raise ValueError(f"don't know how to restrict devices of platform {platform!r} "
                     "(supported: gpu, tpu, cpu); use parallel_runs=1")
  return env


def worker_command(config: TrainConfig | Sequence[TrainConfig]) -> list[str]:
  """The command line of a worker subprocess running `config` (a list: one program)."""
  if isinstance(config, TrainConfig):
    payload = config.to_json()
  else:
    payload = json.dumps([json.loads(c.to_json()) for c in config])
  return [sys.executable, "-m", "lcl_jax.studies.worker", payload]


@dataclasses.dataclass
class _Running:
  specs: Sequence[RunSpec]
  process: subprocess.Popen
  log_file: Any
  started: float


class _StopSignals:
  """SIGINT/SIGTERM -> a flag (main thread only), restored on exit."""

  def __init__(self):
    self.raised: int | None = None
    self._previous: dict[int, Any] = {}

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for sig in (signal.SIGINT, signal.SIGTERM):
        self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def _handle(self, signum, frame):
    del frame
    self.raised = signum

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
    return False


class _RaiseOnStopSignals(_StopSignals):
  """SIGINT/SIGTERM -> `SweepInterrupted` raised at once in the main thread.

  Active for the whole sweep; the trainer's own handlers take over inside a run's
  training loop (they save the state first) and hand a SIGTERM back here on exit.
  """

  def _handle(self, signum, frame):
    del frame
    self.raised = signum
    raise SweepInterrupted(f"stopped by signal {signum} ({signal.Signals(signum).name}); "
                           "re-run the same command to resume")


def _log_tail(path: pathlib.Path, lines: int = 15) -> str:
  try:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
  except OSError:
    return "(no log)"


class _Workers:
  """The worker subprocesses of `_run_in_workers`: one per busy device slot, each
  training one program (`launch`); a finished one's results (or failure, or
  interruption) go to `outcome` (`reap`).

  Attributes:
    free: slots without a worker, in the order they are handed out.
    running: slot -> its worker.
    interrupted: keys of the runs whose worker was stopped by a signal (state saved).
    done: runs reaped so far, of `total`.
  """

  def __init__(self, outcome: SweepOutcome, *, platform: str,
               slots: Sequence[tuple[int, ...]], total: int,
               archive: "ResultsArchive | None" = None):
    self.outcome = outcome
    self.archive = archive
    self.platform = platform
    self.slots = slots
    self.free = list(range(len(slots)))
    self.running: dict[int, _Running] = {}
    self.interrupted: list[str] = []
    self.total, self.done = total, 0

  def launch(self, slot: int, group: Sequence[RunSpec]) -> None:
    """Starts `group` (one program) on `slot`'s devices; its output goes to its first
    run's worker.log."""
    spec = group[0]  # the log of a program goes to its first run's folder
    configs = [dataclasses.replace(s.config, progress_bar=False) for s in group]
    spec.workdir.mkdir(parents=True, exist_ok=True)
    log_file = open(spec.workdir / WORKER_LOG, "ab")
    log_file.write(f"\n=== worker started {time.strftime('%Y-%m-%d %H:%M:%S')} on "
                   f"{self.platform} devices {list(self.slots[slot])} ===\n".encode())
    log_file.flush()
    process = subprocess.Popen(
        worker_command(configs[0] if len(configs) == 1 else configs),
        env=device_env(self.platform, self.slots[slot], slot=slot),
        stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    self.running[slot] = _Running(list(group), process, log_file, time.monotonic())
    log.info("started %s on %s devices %s (pid %d; log %s)", _group_name(group),
             self.platform, list(self.slots[slot]), process.pid, spec.workdir / WORKER_LOG)

  def reap(self, slot: int, returncode: int) -> None:
    """Frees `slot`, whose worker exited with `returncode`: each run's results, or its
    interruption (143 / SIGTERM / SIGINT), or its failure (with the log's tail)."""
    job = self.running.pop(slot)
    job.log_file.close()
    self.free.append(slot)
    minutes = (time.monotonic() - job.started) / 60
    log_path = job.specs[0].workdir / WORKER_LOG
    for spec in job.specs:
      self.done += 1
      results = load_results(spec) if returncode == 0 else None
      if results is not None:
        self.outcome.results[spec.key] = results
        if self.archive is not None:
          self.archive.store(spec)
        log.info("[%d/%d] %s finished in %.1f min", self.done, self.total, spec.key, minutes)
      elif returncode in (INTERRUPTED_EXIT_CODE, -signal.SIGTERM, -signal.SIGINT):
        self.interrupted.append(spec.key)
        log.warning("%s was interrupted (state saved); re-run to resume", spec.key)
      else:
        message = f"worker exited with status {returncode}; see {log_path}"
        self.outcome.failed[spec.key] = message
        log.error("%s failed: %s\n%s", spec.key, message, _log_tail(log_path))

  def reap_finished(self, fail_fast: bool) -> None:
    """Reaps every worker that has exited.

    Raises:
      RuntimeError: with `fail_fast`, a run failed (the other workers are stopped).
    """
    for slot in list(self.running):
      code = self.running[slot].process.poll()
      if code is not None:
        self.reap(slot, code)
        if fail_fast and self.outcome.failed:
          self.stop_all()
          key, message = next(iter(self.outcome.failed.items()))
          raise RuntimeError(f"{key}: {message}")

  def stop_all(self) -> None:
    """SIGTERM to every live worker (each saves its state), then reaps them all."""
    for job in self.running.values():
      if job.process.poll() is None:
        job.process.send_signal(signal.SIGTERM)
    for slot in list(self.running):
      self.reap(slot, self.running[slot].process.wait())

  def close(self) -> None:
    """Stops the workers still running (only after an unexpected error: no orphans)."""
    for job in self.running.values():
      if job.process.poll() is None:
        job.process.send_signal(signal.SIGTERM)
        job.process.wait()
      job.log_file.close()


def _run_in_workers(pending: Sequence[Sequence[RunSpec]], outcome: SweepOutcome, *, platform: str,
                    slots: Sequence[tuple[int, ...]], fail_fast: bool,
                    poll_seconds: float, archive: "ResultsArchive | None" = None) -> None:
  """Trains the programs `pending` in worker subprocesses, one per free slot of
  `slots`, polling every `poll_seconds`; results and failures go to `outcome`.

  Raises:
    SweepInterrupted: SIGINT / SIGTERM to this process (forwarded to the workers, which
      save and stop), or a worker's run was interrupted (no new ones are started).
    RuntimeError: with `fail_fast`, the first failed run (the others are stopped).
  """
  queue = list(pending)
  workers = _Workers(outcome, platform=platform, slots=slots,
                     total=sum(len(group) for group in queue), archive=archive)
  try:
    with _StopSignals() as stop:
      while queue or workers.running:
        if stop.raised is not None:
          log.warning("signal %d: stopping %d running workers (their state is saved)",
                      stop.raised, len(workers.running))
          workers.stop_all()
          raise SweepInterrupted(
              f"stopped by signal {stop.raised}; re-run the same command to resume")
        while queue and workers.free and not workers.interrupted:
          workers.launch(workers.free.pop(0), queue.pop(0))
        workers.reap_finished(fail_fast)
        if workers.interrupted and not workers.running:
          raise SweepInterrupted(f"runs {workers.interrupted} were interrupted (preempted?); "
                                 "re-run the same command to resume")
        time.sleep(poll_seconds)
  finally:
    workers.close()


def collect(specs: Iterable[RunSpec], *,
            archive: ResultsArchive | None = None) -> dict[str, dict[str, Any]]:
  """key -> results.json of every finished run among `specs` (no training): its run
  folder's, else its `archive` copy's (config checked: ConfigMismatchError)."""
  out = {}
  for spec in specs:
    archived = archive.results(spec) if archive is not None else None
    results = load_results(spec)
    if results is None:
      results = archived
    if results is not None:
      out[spec.key] = results
  return out


def _last_train_record(path: pathlib.Path) -> dict[str, Any] | None:
  """The last `kind=train` record of a metrics.jsonl (None without one)."""
  last = None
  try:
    with open(path, encoding="utf-8") as f:
      for line in f:
        if '"train"' in line:
          try:
            record = json.loads(line)
          except json.JSONDecodeError:  # a line being written
            continue
          if record.get("kind") == "train":
            last = record
  except FileNotFoundError:
    return None
  return last


def progress(specs: Sequence[RunSpec], *, archive: ResultsArchive | None = None) -> str:
  """Where a sweep stands: finished runs (run folder or archive), and for each
  remaining run the step and epoch its metrics.jsonl reached (or "not started")."""
  specs = dedupe(specs)
  finished = collect(specs, archive=archive)
  lines = [f"progress: {len(finished)} of {len(specs)} runs finished, "
           f"{len(specs) - len(finished)} to run"
           + (f" (archive {archive.root})" if archive is not None else "")]
  for spec in specs:
    if spec.key in finished:
      result = finished[spec.key]
      where = "run folder" if is_finished(spec) else "archive"
      lines.append(f"  finished  {spec.key}  ({where}; test accuracy "
                   f"{100 * result.get('test', {}).get('accuracy', float('nan')):.2f}%)")
      continue
    record = _last_train_record(spec.workdir / "metrics.jsonl")
    if record is None:
      lines.append(f"  to run    {spec.key}  (not started)")
      continue
    step, epoch = int(record["step"]), float(record["epoch"])
    per_epoch = step / epoch if epoch > 0 else float("nan")
    total = spec.config.epochs * per_epoch
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(
        (spec.workdir / "metrics.jsonl").stat().st_mtime))
    lines.append(f"  running   {spec.key}  step {step} of {total:.0f} (epoch {epoch:.2f} of "
                 f"{spec.config.epochs}; loss {record.get('loss', float('nan')):.4f}; "
                 f"last record {when})")
  return "\n".join(lines)


def missing(specs: Iterable[RunSpec], results: Mapping[str, Any]) -> list[str]:
  """Keys of `specs` without results."""
  return [spec.key for spec in specs if spec.key not in results]


def parse_seeds(values: Sequence[str | int]) -> list[int]:
  """'0', '1' or a range '0-4' -> sorted unique seeds."""
  seeds: set[int] = set()
  for value in values:
    text = str(value).strip()
    match = re.fullmatch(r"(\d+)-(\d+)", text)
    if match:
      lo, hi = int(match.group(1)), int(match.group(2))
      if hi < lo:
        raise ValueError(f"seed range {text!r} is empty")
      seeds.update(range(lo, hi + 1))
    elif re.fullmatch(r"\d+", text):
      seeds.add(int(text))
    else:
      raise ValueError(f"bad seed {text!r}: expected an integer or a range like 0-4")
  if not seeds:
    raise ValueError("no seeds given")
  return sorted(seeds)

