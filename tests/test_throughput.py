"""Tokens/s and MFU (lcl_jax/train/throughput.py) and their records in a training run.

References are hand counts: a dense layer's matmuls are 2 x rows x in x out FLOP each
(forward, dW, dX: 6 N T for N = in x out weights and T = rows), the vendor peaks are
the datasheets' numbers, and MFU is flops/s over (peak x devices).
"""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lcl_jax.train import throughput, trainer
from test_train import _tiny_config  # pytest puts tests/ on sys.path


def _dense_step(rows, fan_in, fan_out):
  """An SGD step of y = x W on a squared error, differentiating W and x (6 N T)."""
  def step(w, x, y):
    loss = lambda w, x: 0.5 * jnp.sum((x @ w - y) ** 2)
    dw, dx = jax.grad(loss, argnums=(0, 1))(w, x)
    return w - 0.1 * dw, x - 0.1 * dx

  args = (jnp.ones((fan_in, fan_out)), jnp.ones((rows, fan_in)), jnp.ones((rows, fan_out)))
  return jax.jit(step), args


def test_xla_flops_of_a_dense_layer_step_equal_the_analytic_count():
  rows, fan_in, fan_out = 64, 512, 256
  step, args = _dense_step(rows, fan_in, fan_out)
  flops, source = throughput.step_flops(lambda: step.lower(*args), num_params=0, tokens=0)
  assert source == "xla_cost_analysis"
  analytic = throughput.analytic_flops(fan_in * fan_out, rows)  # 6 N T
  assert analytic == 6 * rows * fan_in * fan_out
  # The rest is elementwise: the residual, its square, the SGD updates (~1 FLOP each).
  elementwise = flops - analytic
  assert 0 <= elementwise <= 4 * (rows * fan_out + fan_in * fan_out + rows * fan_in), flops
  # Twice the rows: twice the matmul FLOPs (the count follows the shapes, not a constant).
  step2, args2 = _dense_step(2 * rows, fan_in, fan_out)
  flops2, _ = throughput.step_flops(lambda: step2.lower(*args2), num_params=0, tokens=0)
  assert flops2 - 2 * analytic == pytest.approx(2 * elementwise, rel=0.5)


def test_step_flops_falls_back_to_6nt_when_xla_gives_no_count():
  def cannot_lower():
    raise NotImplementedError("no lowering here")

  assert throughput.step_flops(cannot_lower, num_params=1000, tokens=64) == (
      6 * 1000 * 64, "analytic_6NT")


def test_peaks_mfu_and_unknown_devices():
  h100 = "NVIDIA H100 80GB HBM3"
  assert throughput.peak_flops(h100, dtype="bfloat16") == 989.4e12
  assert throughput.peak_flops(h100, dtype="float32", matmul_precision="default") == 494.7e12
  assert throughput.peak_flops(h100, dtype="float32", matmul_precision="highest") == 66.9e12
  assert throughput.peak_flops("NVIDIA H100 PCIe", dtype="bfloat16") == 756e12
  assert throughput.peak_flops("NVIDIA A100-SXM4-40GB", dtype="bfloat16") == 312e12
  assert throughput.peak_flops("Tesla V100-SXM2-16GB", dtype="float16") == 125e12
  assert throughput.peak_flops("TPU v4", dtype="float32") == 275e12
  assert throughput.peak_flops("TPU v5 lite", dtype="bfloat16") == 197e12
  assert throughput.peak_flops("TPU v5p", dtype="bfloat16") == 459e12
  assert throughput.peak_flops("cpu") is None
  assert throughput.peak_flops(jax.devices()[0].device_kind) is None  # this CPU: unknown
  assert throughput.mfu(3e12, 1e12, 4) == pytest.approx(0.75)
  assert throughput.mfu(3e12, None, 4) is None
  assert throughput.mfu(None, 1e12, 4) is None


def test_batch_tokens_counts_positions_and_real_tokens():
  batch = {"input_ids": np.zeros((3, 5), np.int32),
           "attention_mask": np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]),
           "valid": np.array([True, True, False])}  # row 2 is a padding row
  assert throughput.batch_tokens(batch) == (15, 8)
  stacked = {k: np.stack([v, v]) for k, v in batch.items()}  # [S = 2, R, ...]
  stacked["valid"][1] = [True, False, True]  # run 1 pads its second row instead
  assert throughput.batch_tokens(stacked, 0) == (15, 8)
  assert throughput.batch_tokens(stacked, 1) == (15, 5)


def test_a_run_records_tokens_per_second_and_mfu(tiny_bert_dir, data_dir, tmp_path):
  """metrics.jsonl train records and results.json carry the figures; on CPU the peak is
  unknown, so MFU is null unless --peak_flops gives one, and then it is the formula."""
  def run(name, **overrides):
    cfg = _tiny_config(tiny_bert_dir, data_dir, tmp_path / name, epochs=1,
                       max_train_examples=32, log_every_steps=1, checkpoint_every_steps=100,
                       **overrides)
    results = trainer.train(cfg)
    lines = (tmp_path / name / "metrics.jsonl").read_text().splitlines()
    return results, [r for r in map(json.loads, lines) if r["kind"] == "train"]

  results, records = run("unknown_peak")
  timed = [r for r in records if "tokens_per_second" in r]
  assert timed, records
  for r in timed:
    assert r["tokens_per_second"] > 0 and r["mfu"] is None
    assert 0 < r["real_tokens_per_second"] <= r["tokens_per_second"]
    # Real tokens per sequence: between [CLS] [SEP] and the 32-token max length.
    assert 2 <= r["real_tokens_per_second"] / r["sequences_per_second"] <= 32
    assert r["model_flops_per_second"] > 0
  assert results["mfu"] is None and results["peak_flops_per_device"] is None
  assert results["flops_source"] == "xla_cost_analysis"
  assert results["tokens_per_second"] > 0 and results["model_flops_per_second"] > 0
  saved = json.loads((tmp_path / "unknown_peak" / "results.json").read_text())
  assert saved["mfu"] is None and saved["tokens_per_second"] == results["tokens_per_second"]

  results, records = run("given_peak", peak_flops=2e9)
  assert results["peak_flops_per_device"] == 2e9
  assert results["mfu"] == pytest.approx(
      results["model_flops_per_second"] / (2e9 * results["num_devices"]))
  assert all(r["mfu"] is not None and r["mfu"] > 0 for r in records if "mfu" in r)
