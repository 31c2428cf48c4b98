"""Orbax checkpoints of a run, and atomic writes of its small result files.

* `checkpoints/<step>`: the latest train state (params, optimiser, step) together with
  the run's progress (epoch history, best epoch, patience counter) as JSON, saved in
  one orbax step so the two can never disagree. Resuming needs nothing else: the data
  position is a function of the step, and dropout keys are `fold_in(seed key, step)`.
* `best/<step>`: the parameters of the best-validation epoch.
Orbax writes each step into a temporary directory and renames it when complete, so a
run killed at any moment leaves either the previous or the new checkpoint.
"""
from __future__ import annotations

import json
import logging
import os
import pathlib
import secrets
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp


class _DeliberateWaits(logging.Filter):
  """Drops orbax's "Waiting for previous save to complete took N seconds ... consider
  checkpointing less frequently": `CheckpointManager.save` counts the time of our own
  `RunCheckpoints.wait` calls (the trainer waits on purpose, see `_Loop.settle_saves`)
  as the next save's wait and advises a fix for a problem that is not there."""

  def filter(self, record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("Waiting for previous save to complete")


logging.getLogger("absl").addFilter(_DeliberateWaits())


def _create_temporary(path: pathlib.Path) -> tuple[int, pathlib.Path]:
  """An exclusive new file beside `path`, created with mode 0666 & ~umask (the mode any
  ordinary `open(path, "w")` would give; `tempfile.mkstemp` would force 0600)."""
  path.parent.mkdir(parents=True, exist_ok=True)
  for _ in range(100):
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    try:
      return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
    except FileExistsError:
      continue
  raise FileExistsError(f"could not create a temporary file beside {path}")


def write_atomic(path: str | os.PathLike, data: bytes | str) -> None:
  """Writes `data` to `path` via a temporary file + rename (never a partial file).

  The file's mode follows the process umask, like any file `open()` creates.

  Raises:
    OSError: the folder cannot be written (e.g. read-only); nothing is left behind.
  """
  path = pathlib.Path(path)
  mode = "wb" if isinstance(data, bytes) else "w"
  fd, tmp = _create_temporary(path)
  try:
    with os.fdopen(fd, mode) as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    tmp.unlink(missing_ok=True)
    raise


def write_json_atomic(path: str | os.PathLike, value: Any) -> None:
  """`value` as indented, key-sorted JSON via `write_atomic`."""
  write_atomic(path, json.dumps(value, indent=2, sort_keys=True, default=_json_default) + "\n")


def save_npz_atomic(path: str | os.PathLike, **arrays: np.ndarray) -> None:
  """`np.savez_compressed(path, **arrays)` via a temporary file + rename (umask mode)."""
  path = pathlib.Path(path)
  fd, tmp = _create_temporary(path)
  try:
    with os.fdopen(fd, "wb") as f:
      np.savez_compressed(f, **arrays)
    os.replace(tmp, path)
  except BaseException:
    tmp.unlink(missing_ok=True)
    raise


class WorkdirInUseError(RuntimeError):
  """Another live process holds the workdir's lock."""


class WorkdirLock:
  """An exclusive `fcntl.flock` on `<workdir>/.lock`, holding the owner's pid.

  Taken for the whole of a run so that two commands never write one workdir. The
  kernel drops the lock when its process exits (or is killed), so a stale lock file
  left by a dead process never blocks a new run. `acquire` does not wait.
  """

  NAME = ".lock"

  def __init__(self, workdir: str | os.PathLike):
    self.path = pathlib.Path(workdir) / self.NAME
    self._fd: int | None = None
    self._created: list[pathlib.Path] = []

  def acquire(self) -> "WorkdirLock":
    """Takes the lock (creating the workdir).

    Raises:
      WorkdirInUseError: another process holds it; the message gives its pid.
    """
    import fcntl

    missing = self.path.parent
    self._created = []  # the folders this lock made, deepest first (`discard_if_unused`)
    while not missing.exists():
      self._created.append(missing)
      missing = missing.parent
    self.path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      owner = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
      os.close(fd)
      raise WorkdirInUseError(
          f"{self.path.parent} is in use by pid {owner} (lock {self.path}); wait for that "
          "run to finish or use another --workdir") from None
    except BaseException:
      os.close(fd)
      raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    self._fd = fd
    return self

  def release(self) -> None:
    """Drops the lock (the file stays; its content is only informative)."""
    if self._fd is not None:
      os.close(self._fd)  # closing the last descriptor releases the flock
      self._fd = None

  def discard_if_unused(self) -> None:
    """After a refused run (the lock released): removes the lock file and the folders
    `acquire` created if nothing else was written there, so that a run refused on its
    data leaves nothing behind."""
    if self._fd is not None or not self._created:
      return
    workdir = self.path.parent
    try:
      if [p.name for p in workdir.iterdir()] != [self.NAME]:
        return
      self.path.unlink()
      for folder in self._created:
        folder.rmdir()  # only when empty (OSError otherwise: kept)
    except OSError:
      pass

  def __enter__(self) -> "WorkdirLock":
    return self.acquire()

  def __exit__(self, *exc) -> bool:
    self.release()
    return False


def _json_default(value: Any) -> Any:
  if isinstance(value, (np.floating, np.integer)):
    return value.item()
  if isinstance(value, np.ndarray):
    return value.tolist()
  if isinstance(value, tuple):
    return list(value)
  raise TypeError(f"not JSON serialisable: {type(value)}")


def _abstract(tree: Any) -> Any:
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


class RunCheckpoints:
  """The latest state (for resume) and the best-validation params of one run."""

  def __init__(self, workdir: str | os.PathLike, *, keep_latest: int = 1):
    workdir = pathlib.Path(workdir).absolute()
    options = dict(create=True, cleanup_tmp_directories=True)
    self._latest = ocp.CheckpointManager(
        workdir / "checkpoints", item_names=("state", "progress"),
        options=ocp.CheckpointManagerOptions(max_to_keep=keep_latest, **options))
    self._best = ocp.CheckpointManager(
        workdir / "best", item_names=("params", "info"),
        options=ocp.CheckpointManagerOptions(max_to_keep=1, **options))

  @property
  def latest_step(self) -> int | None:
    return self._latest.latest_step()

  def save_latest(self, step: int, state: Any, progress: dict[str, Any]) -> None:
    if step in self._latest.all_steps():
      return  # the same step was already saved (e.g. SIGTERM right after a periodic save)
    self._latest.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        progress=ocp.args.JsonSave(json.loads(json.dumps(progress, default=_json_default)))),
        force=True)

  def restore_latest(self, like_state: Any, *,
                     step: int | None = None) -> tuple[Any, dict[str, Any]] | None:
    """Restores onto the structure, shapes, dtypes and shardings of `like_state` the
    latest checkpoint, or the one of `step` (None when there is no checkpoint).

    Raises:
      FileNotFoundError: `step` was given and is not among the saved steps.
    """
    if step is None:
      step = self._latest.latest_step()
      if step is None:
        return None
    elif step not in self._latest.all_steps():
      raise FileNotFoundError(
          f"{self._latest.directory}: no checkpoint of step {step} (saved steps: "
          f"{sorted(self._latest.all_steps())}); the runs of a group cannot be brought back "
          "to one step: delete this run's folder to retrain it")
    restored = self._latest.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(_abstract(like_state)),
        progress=ocp.args.JsonRestore()))
    return restored["state"], dict(restored["progress"])

  def discard_after(self, step: int | None) -> None:
    """Deletes the latest-state checkpoints of steps after `step` (None: all of them)."""
    for saved in self._latest.all_steps():
      if step is None or saved > step:
        self._latest.delete(saved)

  def save_best(self, step: int, params: Any, info: dict[str, Any]) -> None:
    if step in self._best.all_steps():
      self._best.delete(step)  # a resumed run re-reaching the same best epoch
    self._best.save(step, args=ocp.args.Composite(
        params=ocp.args.StandardSave(params),
        info=ocp.args.JsonSave(json.loads(json.dumps(info, default=_json_default)))),
        force=True)

  def restore_best(self, like_params: Any) -> tuple[Any, dict[str, Any]] | None:
    step = self._best.latest_step()
    if step is None:
      return None
    restored = self._best.restore(step, args=ocp.args.Composite(
        params=ocp.args.StandardRestore(_abstract(like_params)), info=ocp.args.JsonRestore()))
    return restored["params"], dict(restored["info"])

  def wait(self) -> None:
    """Blocks until both managers' asynchronous writes are on disk."""
    self._latest.wait_until_finished()
    self._best.wait_until_finished()

  def close(self) -> None:
    self._latest.close()
    self._best.close()


LATEST_DIR = "checkpoints"
BEST_DIR = "best"


def restore_best_params(workdir: str | os.PathLike,
                        like_params: Any = None) -> tuple[Any, dict[str, Any]]:
  """The best-validation params of a run (read-only: creates nothing in `workdir`).

  Args:
    workdir: the run directory.
    like_params: a pytree with the params' structure, shapes and dtypes (arrays or
      `jax.ShapeDtypeStruct`s), checked against the checkpoint; None: the structure,
      shapes and dtypes stored in the checkpoint (the same arrays, without building the
      pytree first).

  Returns:
    `(params, info)`, info = {'epoch', 'step', <selection metric>}.

  Raises:
    FileNotFoundError: the run has no best/ checkpoint (the folder is missing or holds no
      step).
    CorruptCheckpointError: best/ cannot be read (a zeroed or truncated data file, a
      damaged _METADATA); the message names the folder.
  """
  directory = pathlib.Path(workdir).absolute() / BEST_DIR
  if not directory.is_dir():
    raise FileNotFoundError(f"{directory} does not exist: the run has no best-validation "
                            "checkpoint (it was deleted or moved, or the run never finished "
                            "an epoch)")
  try:
    manager = ocp.CheckpointManager(directory, item_names=("params", "info"),
                                    options=ocp.CheckpointManagerOptions(create=False))
    step = manager.latest_step()
    if step is None:
      manager.close()
      raise FileNotFoundError(f"{directory} holds no checkpoint step: the run has no "
                              "best-validation checkpoint")
    try:
      restored = manager.restore(step, args=ocp.args.Composite(
          params=ocp.args.StandardRestore(
              None if like_params is None else _abstract(like_params)),
          info=ocp.args.JsonRestore()))
    finally:
      manager.close()
  except FileNotFoundError:
    raise
  except Exception as e:  # pylint: disable=broad-except  (TensorStore, JSON, orbax errors)
    raise CorruptCheckpointError(
        f"{directory} cannot be read ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
        "the checkpoint is damaged (a truncated or zeroed file?): restore it from a backup "
        "or train the run again") from e
  return restored["params"], dict(restored["info"])


class CorruptCheckpointError(ValueError):
  """A checkpoint folder exists but cannot be read (damaged files)."""


def disk_usage(path: str | os.PathLike, *, exclude: tuple[str, ...] = ()) -> int:
  """Bytes of the regular files under `path`, skipping the top-level entries `exclude`."""
  root = pathlib.Path(path)
  total = 0
  for entry in root.iterdir() if root.is_dir() else ():
    if entry.name in exclude:
      continue
    if entry.is_file() and not entry.is_symlink():
      total += entry.stat().st_size
    elif entry.is_dir() and not entry.is_symlink():
      for dirpath, _, filenames in os.walk(entry):
        for name in filenames:
          file = pathlib.Path(dirpath, name)
          if not file.is_symlink():
            total += file.stat().st_size
  return total

