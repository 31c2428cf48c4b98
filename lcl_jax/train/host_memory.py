"""Keeps XLA:CPU's per-step host buffers in the heap instead of fresh pages every step.

Measured (BUILD_NOTES "Parity with PyTorch"): a MiniLM training step of 32 x 64 tokens
on XLA:CPU allocates one ~830 MB temporary buffer per execution from a worker thread.
glibc serves a request that large from a thread's arena with a fresh `mmap` and returns
it with `munmap` when freed, so every step page-faults the whole buffer in again:
~200,000 minor faults and 0.46 s of system time per 2.8 s step (16% of the step).
With one malloc arena, no `mmap` for large requests and no trimming of the heap, the
buffer is reused from step to step: 0 faults, 0.0 s system time, same numbers.

`reuse_freed_memory()` sets exactly that through glibc's `mallopt` (the same settings
as ``GLIBC_TUNABLES=glibc.malloc.arena_max=1:glibc.malloc.mmap_max=0:
glibc.malloc.trim_threshold=...``) and must run before XLA starts its threads (the
binaries call it at start-up, in `lcl_jax.studies.cli.setup_logging`; the sweep
worker and the tests' conftest too). Process-wide; the price is that memory freed by
the process stays mapped (peak RSS is what it would have been anyway, the heap is not
given back while the process lives) and that every thread shares one arena lock.
Not glibc (macOS, musl) or ``LCL_JAX_HOST_MALLOC=system``: nothing is changed.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

ENV_VAR = "LCL_JAX_HOST_MALLOC"  # "system": leave the C library's defaults
# glibc's <malloc.h> mallopt parameters.
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
M_ARENA_MAX = -8
_NEVER_TRIM = 2**31 - 1  # bytes of free heap top kept (mallopt takes an int)

log = logging.getLogger("lcl_jax.train")
_tried = False
_libc = None  # glibc, once the settings are in force


def reuse_freed_memory() -> bool:
  """Applies the allocator settings above once per process; True if they are in force.

  Returns False (and changes nothing) where the C library is not glibc or
  ``$LCL_JAX_HOST_MALLOC`` is ``system``. Idempotent. Never raises.
  """
  global _tried, _libc
  if _tried:
    return _libc is not None
  _tried = True
  if os.environ.get(ENV_VAR, "").strip().lower() == "system":
    return False
  try:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    mallopt = libc.mallopt
    libc.gnu_get_libc_version  # pylint: disable=pointless-statement  (glibc only)
  except (OSError, AttributeError):
    return False
  mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
  if all(mallopt(param, value) == 1 for param, value in (
      (M_ARENA_MAX, 1), (M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, _NEVER_TRIM))):
    _libc = libc
  else:
    log.debug("mallopt refused the host-memory settings; glibc defaults kept")
  return _libc is not None


def release_free_memory() -> None:
  """Gives the pages of every free heap chunk back to the OS (glibc's ``malloc_trim(0)``),
  where `reuse_freed_memory` is in force; else nothing.

  With the heap never trimmed, one big free chunk (a finished step's or a compilation's
  buffers) can be split by small long-lived allocations, and the next big buffer then
  extends the heap: the pages of the old chunk stay resident although free. The trainer
  calls this whenever the host has waited for the devices (every --log_every_steps
  steps), after a step that compiled and after each epoch's evaluations, so resident
  memory stays near what is live; a step faults its buffer in again only after such a
  call, not every step.
  """
  if _libc is not None:
    _libc.malloc_trim(0)
