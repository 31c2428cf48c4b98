"""What a benchmark's figures depend on besides the code: versions, devices, CPU model,
core count and load. One description for every script of benchmarks/."""
from __future__ import annotations

import os
import platform


def cpu_model() -> str:
  """The CPU's model name from /proc/cpuinfo (else the platform's processor/machine)."""
  cpu = platform.processor() or platform.machine()
  try:
    with open("/proc/cpuinfo") as f:
      names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    return names[0] if names else cpu
  except OSError:
    return cpu


def describe_machine(*, torch: bool = False) -> str:
  """Python, JAX (backend and devices), optionally PyTorch (version and threads), the
  CPU model, logical cores and the load average."""
  import jax  # pylint: disable=g-import-not-at-top
  load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",) * 3
  devices = ", ".join(str(d) for d in jax.devices())
  parts = [f"python {platform.python_version()}",
           f"jax {jax.__version__}, backend {jax.default_backend()} [{devices}]"]
  if torch:
    import torch as torch_lib  # pylint: disable=g-import-not-at-top
    parts.append(f"torch {torch_lib.__version__} ({torch_lib.get_num_threads()} threads)")
  load_text = " ".join(f"{x:.2f}" if isinstance(x, float) else str(x) for x in load)
  parts += [f"CPU '{cpu_model()}' x{os.cpu_count()} logical cores", f"load average {load_text}"]
  return ", ".join(parts)
