"""Training throughput: tokens per second and model FLOPs utilisation (MFU).

MFU (Chowdhery et al., 2022, "PaLM", App. B) = the model's FLOPs per second / the
devices' peak FLOP/s. Here the model's FLOPs of one train step come from XLA's cost
analysis of the lowered step (:func:`step_flops`: ``jit(...).lower(...)
.cost_analysis()['flops']``, the program as written, before XLA's optimisations, so
rematerialisation is not counted; on a backend that cannot analyse a lowered program,
the compiled one's), or, where XLA gives no count, the analytic ``6 N T`` (N trainable
parameters, T tokens processed: forward 2 N T + backward 4 N T; Kaplan et al., 2020,
"Scaling Laws for Neural Language Models", Sec. 2.1). Units: FLOP (a multiply-add is
2), FLOP/s, tokens/s.

Peaks (:data:`PEAK_FLOPS`) are the vendors' dense (no structured sparsity) figures per
device for (bf16/fp16 matmul, TF32 matmul, FP32 non-tensor) -- which one applies
follows the run's ``--dtype`` and ``--matmul_precision`` (:func:`peak_flops`). A CPU
or an unknown device has no peak ("unknown"; MFU null) unless ``--peak_flops`` gives
one.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import jax
import numpy as np

# The figures of metrics.jsonl train records and results.json measured by this process's
# timed steps: they differ between two otherwise identical runs (wall clock), and a run
# resumed with no step left has none (null), so tests leave them out of comparisons.
TIMING_KEYS = frozenset({"sequences_per_second", "tokens_per_second", "real_tokens_per_second",
                         "model_flops_per_second", "mfu", "flops_source"})

# Dense peak FLOP/s per device, (bf16/fp16 tensor, TF32 tensor, FP32 non-tensor), by a
# substring of `jax.Device.device_kind`; the first match wins (so "H100 PCIe" precedes
# "H100"). Sources, the vendors' datasheets (dense, without sparsity):
# * NVIDIA H100 Tensor Core GPU datasheet: SXM BF16 989.4 TFLOPS, TF32 494.7, FP32 66.9;
#   PCIe BF16 756, TF32 378, FP32 51.2 (the datasheet's "with sparsity" figures are 2x).
# * NVIDIA H200 Tensor Core GPU datasheet: SXM BF16 989, TF32 494, FP32 67.
# * NVIDIA A100 Tensor Core GPU datasheet: BF16 312, TF32 156, FP32 19.5 (SXM and PCIe).
# * NVIDIA V100 datasheet: SXM2 FP16 tensor 125, FP32 15.7 (no BF16 / TF32 units: the
#   TF32 column is the FP32 figure).
# * NVIDIA L4 datasheet: BF16 121, TF32 60, FP32 30.3.
# * Google Cloud TPU system architecture pages, per chip: v4 275 TFLOPS bf16, v5e 197,
#   v5p 459, v6e (Trillium) 918. A TPU has no separate FP32 matmul unit (float32 matmuls
#   run as several bf16 passes), so every column is the bf16 peak.
PEAK_FLOPS: tuple[tuple[str, tuple[float, float, float]], ...] = (
    ("H100 PCIe", (756e12, 378e12, 51.2e12)),
    ("H100", (989.4e12, 494.7e12, 66.9e12)),
    ("H200", (989e12, 494e12, 67e12)),
    ("A100", (312e12, 156e12, 19.5e12)),
    ("V100", (125e12, 15.7e12, 15.7e12)),
    ("L4", (121e12, 60e12, 30.3e12)),
    ("TPU v4", (275e12, 275e12, 275e12)),
    ("TPU v5 lite", (197e12, 197e12, 197e12)),  # v5e's device_kind
    ("TPU v5e", (197e12, 197e12, 197e12)),
    ("TPU v5p", (459e12, 459e12, 459e12)),
    ("TPU v5", (459e12, 459e12, 459e12)),  # v5p's device_kind
    ("TPU v6", (918e12, 918e12, 918e12)),
)


def peak_flops(device_kind: str, *, dtype: str = "float32",
               matmul_precision: str = "highest") -> float | None:
  """The peak FLOP/s of one device of `device_kind` for this dtype and precision.

  Args:
    device_kind: `jax.Device.device_kind`, e.g. 'NVIDIA H100 80GB HBM3', 'TPU v4', 'cpu'.
    dtype: the run's compute dtype: 'bfloat16' / 'float16' use the bf16/fp16 tensor
      peak; 'float32' the TF32 one when `matmul_precision` is 'default' (XLA then uses
      TF32 on Ampere+), else the FP32 non-tensor one.
    matmul_precision: 'highest' or 'default' (`TrainConfig.matmul_precision`).

  Returns:
    FLOP/s per device, or None (a CPU, or a device not in PEAK_FLOPS: "unknown").
  """
  for name, peaks in PEAK_FLOPS:
    if name.lower() in device_kind.lower():
      if dtype in ("bfloat16", "float16"):
        return peaks[0]
      return peaks[1] if matmul_precision == "default" else peaks[2]
  return None


def mfu(flops_per_second: float | None, peak_per_device: float | None,
        num_devices: int) -> float | None:
  """Model FLOPs utilisation: flops_per_second / (peak_per_device * num_devices).

  None when either figure is unknown (never a made-up number); a fraction (0.4 = 40%).
  """
  if not flops_per_second or not peak_per_device or num_devices < 1:
    return None
  return flops_per_second / (peak_per_device * num_devices)


def analytic_flops(num_params: int, tokens: int) -> float:
  """6 N T: FLOPs of one training step of an N-parameter network on T tokens."""
  return 6.0 * num_params * tokens


def xla_flops(lowered: Any) -> float | None:
  """XLA's FLOP count of a `jax.stages.Lowered` program (None if it gives none).

  The lowered (pre-optimisation) program's count where the backend can analyse it
  (CPU, GPU with the in-tree client); else the compiled program's (a compile, which the
  persistent compilation cache usually serves).
  """
  for analyse in (lowered.cost_analysis, lambda: lowered.compile().cost_analysis()):
    try:
      cost = analyse()
    except Exception:  # pylint: disable=broad-except  # backends raise various errors
      cost = None
    if isinstance(cost, (list, tuple)):
      cost = cost[0] if cost else None
    flops = (cost or {}).get("flops")
    if flops is not None and math.isfinite(float(flops)) and float(flops) > 0:
      return float(flops)
  return None


def step_flops(lower: Callable[[], Any], *, num_params: int,
               tokens: int) -> tuple[float, str]:
  """(FLOPs of one train step, their source: 'xla_cost_analysis' | 'analytic_6NT').

  Args:
    lower: returns the step's `jax.stages.Lowered` for the batch shape in question.
    num_params: trainable parameters (all networks), for the analytic fallback.
    tokens: token positions the step processes (padding included), for the fallback.
  """
  try:
    flops = xla_flops(lower())
  except Exception:  # pylint: disable=broad-except  # e.g. a step that cannot be lowered
    flops = None
  if flops is not None:
    return flops, "xla_cost_analysis"
  return analytic_flops(num_params, tokens), "analytic_6NT"


def batch_tokens(batch: dict[str, np.ndarray], index: int | None = None) -> tuple[int, int]:
  """(token positions processed, real tokens) of a host batch (of run `index` if given).

  Processed: every position of `input_ids` [R, T], padding rows and right padding
  included (what the devices compute on). Real: the attention mask's ones on the
  `valid` rows (the text's own tokens, [CLS]/[SEP] included).
  """
  ids, mask, valid = batch["input_ids"], batch["attention_mask"], batch["valid"]
  if index is not None:
    ids, mask, valid = ids[index], mask[index], valid[index]
  real = int(np.sum(np.asarray(mask)[np.asarray(valid, bool)]))
  return int(np.size(ids)), real


def num_parameters(params: Any) -> int:
  """The number of scalars in a parameter pytree."""
  return int(sum(np.size(x) for x in jax.tree.leaves(params)))
