r"""Peak memory and step time of the plain and the gradient-cached train step (issue 19).

Each (global rows, mode) point runs in its own child process (so each peak RSS is that
point's own): MiniLM (all-MiniLM-L6-v2), the chosen objective (LCL: Φ and Ψ), random
token ids at a fixed length with paired labels, AdamW, dropout on; one compile, one
warm-up step, then `--repeats` timed steps. Printed per point: compile seconds, median
seconds a step, rows/s, the child's peak RSS (ru_maxrss, GiB) and its RSS before the
first step (the model, optimiser state and batch: what is not the step's own).
The cached step's activation memory is one chunk's, so its peak should stay about
flat in the global batch while the plain step's grows linearly; its time is about
4/3 the plain step's (one more forward pass).

  taskset -c 0 python -m benchmarks.gradient_cache_benchmark --rows=32,64,128,256 \
    --chunk_size=32 --objective=lcl --length=64

A point whose child dies (e.g. killed for memory) is printed as failed, with its
exit status; the other points go on.
"""
from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time

from absl import app, flags

from benchmarks import machine

FLAGS = flags.FLAGS
flags.DEFINE_list("rows", ["32", "64", "128", "256"], "Global rows a step (2K).")
flags.DEFINE_list("modes", ["plain", "cached"], "Steps to measure.")
flags.DEFINE_integer("chunk_size", 32, "--gradient_cache_chunk_size of the cached step.")
flags.DEFINE_enum("objective", "lcl", ["ce", "scl", "lcl"], "Objective.")
flags.DEFINE_string("encoder", "minilm", "Checkpoint (dir, hub id or 'minilm').")
flags.DEFINE_integer("length", 64, "Tokens a row.")
flags.DEFINE_integer("repeats", 3, "Timed steps after the warm-up step.")
flags.DEFINE_string("output", None, "Also write the points as JSON here.")
flags.DEFINE_string("child", None, "Internal: measure one point (JSON) and print it.")


def measure(rows: int, mode: str, chunk_size: int, objective: str, encoder: str,
            length: int, repeats: int) -> dict:
  """One point in this process: compile s, step s (median), RSS before the step and peak
  (GiB)."""
  import jax  # pylint: disable=g-import-not-at-top  (the parent process never needs JAX)
  import numpy as np  # pylint: disable=g-import-not-at-top

  from lcl_jax.train import objectives, optim, steps  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(0)
  k = rows // 2
  labels = rng.integers(0, 4, size=k)
  batch = {"input_ids": rng.integers(1000, 20000, size=(rows, length)).astype(np.int32),
           "attention_mask": np.ones((rows, length), np.int32),
           "token_type_ids": np.zeros((rows, length), np.int32),
           "labels": np.concatenate([labels, labels]).astype(np.int32),
           "valid": np.ones(rows, bool),
           "example_index": np.tile(np.arange(k), 2).astype(np.int32)}
  spec = objectives.get_spec(objective)
  modules, params = objectives.build_networks(
      spec, encoder=encoder, weighting_encoder=encoder, num_classes=4, rng=jax.random.key(0))
  optimizer = optim.make_optimizer(params, learning_rate=2e-5, total_steps=1000)
  step = jax.jit(steps.make_train_step(
      spec, modules, optimizer, alpha=0.5, temperature=0.3, multilabel=False,
      dropout_key=jax.random.key(1),
      gradient_cache_chunk_size=chunk_size if mode == "cached" else 0),
      donate_argnums=(0,))
  state = steps.init_state(params, optimizer)
  batch = jax.device_put(batch)
  t0 = time.perf_counter()
  compiled = step.lower(state, batch).compile()
  compile_s = time.perf_counter() - t0
  rss_before = _rss_gib()
  state, metrics = compiled(state, batch)
  jax.block_until_ready(metrics)
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    state, metrics = compiled(state, batch)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - t0)
  return {"rows": rows, "mode": mode, "chunk_size": chunk_size if mode == "cached" else None,
          "compile_s": compile_s, "step_s": statistics.median(times),
          "loss": float(metrics["loss"]), "rss_before_gib": rss_before,
          "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def _rss_gib() -> float:
  """This process's resident set now, GiB (VmRSS, reported in KiB)."""
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith("VmRSS:"):
        return int(line.split()[1]) / 2**20
  return float("nan")


def main(argv):
  del argv
  if FLAGS.child:
    print("POINT " + json.dumps(measure(**json.loads(FLAGS.child))), flush=True)
    return
  print(f"gradient caching: {FLAGS.objective}, {FLAGS.encoder}, {FLAGS.length} tokens a row, "
        f"chunks of {FLAGS.chunk_size} rows, AdamW, dropout on; "
        f"{machine.describe_machine()}", flush=True)
  print(f"{'rows':>6s} {'mode':>7s} {'compile s':>9s} {'s/step':>8s} {'rows/s':>7s} "
        f"{'RSS before GiB':>14s} {'peak RSS GiB':>12s}", flush=True)
  points = []
  for rows in (int(r) for r in FLAGS.rows):
    for mode in FLAGS.modes:
      spec = dict(rows=rows, mode=mode, chunk_size=FLAGS.chunk_size,
                  objective=FLAGS.objective, encoder=FLAGS.encoder, length=FLAGS.length,
                  repeats=FLAGS.repeats)
      child = subprocess.run([sys.executable, "-m", "benchmarks.gradient_cache_benchmark",
                              f"--child={json.dumps(spec)}"], capture_output=True, text=True)
      lines = [l for l in child.stdout.splitlines() if l.startswith("POINT ")]
      if child.returncode or not lines:
        print(f"{rows:6d} {mode:>7s} failed (exit status {child.returncode}): "
              f"{(child.stderr.strip().splitlines() or ['?'])[-1][:160]}", flush=True)
        points.append({**spec, "failed": child.returncode})
        continue
      point = json.loads(lines[-1][len("POINT "):])
      points.append(point)
      print(f"{rows:6d} {mode:>7s} {point['compile_s']:9.1f} {point['step_s']:8.2f} "
            f"{rows / point['step_s']:7.1f} {point['rss_before_gib']:14.2f} "
            f"{point['peak_rss_gib']:12.2f}", flush=True)
  for rows in sorted({p["rows"] for p in points}):
    by_mode = {p["mode"]: p for p in points if p["rows"] == rows and "step_s" in p}
    if {"plain", "cached"} <= set(by_mode):
      print(f"rows {rows}: cached / plain time {by_mode['cached']['step_s'] / by_mode['plain']['step_s']:.2f}x, "
            f"peak RSS {by_mode['cached']['peak_rss_gib']:.2f} vs {by_mode['plain']['peak_rss_gib']:.2f} GiB")
  if FLAGS.output:
    with open(FLAGS.output, "w") as f:
      json.dump(points, f, indent=2)


if __name__ == "__main__":
  app.run(main)
