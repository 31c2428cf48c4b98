"""JAX's persistent compilation cache for the binaries and the tests.

Compiling the three objectives' train steps is most of the embedded default's first
minutes on a CPU; with the cache, a second run (or a second test that builds the same
step) loads the compiled executables from disk instead.

Folder: the argument, else ``$LCL_JAX_COMPILATION_CACHE``, else
``<user cache dir>/lcl_jax/jax_cache`` (``$XDG_CACHE_HOME`` or ``~/.cache`` on Linux,
``~/Library/Caches`` on macOS, ``%LOCALAPPDATA%`` on Windows). An empty string
disables the cache.

Two processes may share the folder: a size limit is set
(``jax_compilation_cache_max_size``, default 4 GiB, least recently used entries are
evicted), which makes JAX take a file lock (``filelock``) around every read and write
of an entry, so no process reads a half-written one. Without a limit JAX writes the
entries unlocked.
"""
from __future__ import annotations

import os
import pathlib
import sys

import jax

ENV_VAR = "LCL_JAX_COMPILATION_CACHE"
DEFAULT_MAX_BYTES = 4 * 1024**3
# Compilations faster than this are not written (tiny test programs would only add files).
MIN_COMPILE_SECONDS = 0.5


def user_cache_dir() -> pathlib.Path:
  """The platform's per-user cache directory."""
  if sys.platform == "darwin":
    return pathlib.Path.home() / "Library" / "Caches"
  if os.name == "nt":
    return pathlib.Path(os.environ.get("LOCALAPPDATA", pathlib.Path.home() / "AppData" / "Local"))
  return pathlib.Path(os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache")


def default_dir() -> pathlib.Path | None:
  """$LCL_JAX_COMPILATION_CACHE ('' = disabled) or <user cache dir>/lcl_jax/jax_cache."""
  env = os.environ.get(ENV_VAR)
  if env is not None:
    return pathlib.Path(env).expanduser() if env.strip() else None
  return user_cache_dir() / "lcl_jax" / "jax_cache"


def enable(path: str | os.PathLike | None = None, *, max_bytes: int = DEFAULT_MAX_BYTES,
           min_compile_seconds: float = MIN_COMPILE_SECONDS) -> pathlib.Path | None:
  """Turns the persistent compilation cache on (process-wide); returns its folder.

  Args:
    path: cache folder; None: :func:`default_dir`; '' : leave the cache off.
    max_bytes: size limit of the folder in bytes (LRU eviction; > 0 so that entries
      are file-locked, see the module docstring).
    min_compile_seconds: programs that compiled faster are not written.

  Call it before the first compilation. It also sets $LCL_JAX_COMPILATION_CACHE so
  that subprocesses (sweep workers) use the same folder.

  Returns:
    The folder (created), or None when disabled.

  Raises:
    ValueError: `path` exists and is not a directory, or `max_bytes` < 1.
  """
  if max_bytes < 1:
    raise ValueError(f"compilation cache: max_bytes must be >= 1; got {max_bytes}")
  if path is None:
    folder = default_dir()
  else:
    folder = pathlib.Path(path).expanduser() if str(path).strip() else None
  if folder is None:
    os.environ[ENV_VAR] = ""  # subprocesses (sweep workers) follow this process
    return None
  folder = folder.absolute()
  if folder.exists() and not folder.is_dir():
    raise ValueError(f"compilation cache: {folder} exists and is not a directory "
                     f"(--compilation_cache / ${ENV_VAR})")
  folder.mkdir(parents=True, exist_ok=True)
  jax.config.update("jax_compilation_cache_dir", str(folder))
  jax.config.update("jax_compilation_cache_max_size", int(max_bytes))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_seconds))
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
  os.environ[ENV_VAR] = str(folder)
  return folder
