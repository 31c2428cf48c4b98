r"""S runs in one vmapped program versus the same S runs one after another (issue 12).

Times the trainer's own steps: S separately jitted `steps.make_train_step` programs
(one per run: its own init, dropout key, batches), each stepped `--steps` times in
turn, against ONE `steps.make_group_train_step` program (jax.vmap over the runs,
compiled on `parallel.RunsDataParallel`'s ('runs', 'data') mesh) stepped `--steps`
times on the stacked states and batches. Same networks, same batches, same number of
updates per run. Compilation is timed separately (first call); the step times are
wall seconds with block_until_ready after every step. Prints the totals and the
ratio vmapped / sequential (< 1: the program of S runs is faster).

  python -m benchmarks.runs_per_program_benchmark --runs=4 --steps=10
  python -m benchmarks.runs_per_program_benchmark --encoder=minilm --rows=20 --length=64

On a CPU the ratio is expected near 1 (the cores are already busy with one run's
matmuls); the gain is on accelerators, where one run at the paper's batch (20 rows)
leaves most of the chip idle.
"""
from __future__ import annotations

import json
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("encoder", "minilm", "Checkpoint of both networks (dir, hub id, 'minilm').")
flags.DEFINE_string("objective", "lcl", "Objective (ce, scl, lcl, bert_ce).")
flags.DEFINE_integer("runs", 4, "S: runs (seeds).")
flags.DEFINE_integer("steps", 10, "Timed steps of each run (after the compile step).")
flags.DEFINE_integer("rows", 20, "Rows per step (2K: K texts + K views).")
flags.DEFINE_integer("length", 64, "Sequence length (tokens).")
flags.DEFINE_string("json", None, "Also write the figures to this JSON file.")


def _batches(rng, runs: int, steps: int, rows: int, length: int):
  import numpy as np
  out = []
  for _ in range(steps + 1):
    per_run = []
    for _ in range(runs):
      lengths = rng.integers(length // 2, length + 1, size=rows)
      per_run.append({
          "input_ids": rng.integers(1000, 20000, size=(rows, length)).astype(np.int32),
          "attention_mask": (np.arange(length)[None] < lengths[:, None]).astype(np.int32),
          "token_type_ids": np.zeros((rows, length), np.int32),
          "labels": np.tile(rng.integers(0, 4, rows // 2), 2).astype(np.int32),
          "valid": np.ones(rows, bool),
          "example_index": np.arange(rows, dtype=np.int32),
      })
    out.append(per_run)
  return out


def main(argv):
  del argv
  import jax
  import jax.numpy as jnp
  import numpy as np

  from lcl_jax.train import data_pipeline, objectives, optim, parallel, steps

  runs, n_steps = FLAGS.runs, FLAGS.steps
  spec = objectives.get_spec(FLAGS.objective)
  encoder = data_pipeline.resolve_checkpoint(FLAGS.encoder)
  networks = [objectives.build_networks(spec, encoder=encoder, weighting_encoder=encoder,
                                        num_classes=4, rng=jax.random.key(seed))
              for seed in range(runs)]
  modules = networks[0][0]
  optimizer = optim.make_optimizer(networks[0][1], learning_rate=2e-5,
                                   total_steps=10 * n_steps)
  batches = _batches(np.random.default_rng(0), runs, n_steps, FLAGS.rows, FLAGS.length)
  options = dict(multilabel=False)
  print(f"devices: {jax.devices()[0].device_kind} x{len(jax.devices())}, jax {jax.__version__}; "
        f"{FLAGS.objective}, encoder {FLAGS.encoder}, S = {runs} runs x {n_steps} steps of "
        f"{FLAGS.rows} x {FLAGS.length} tokens")

  # S runs one after another: each its own jitted program (as S processes would be).
  dp = parallel.JitDataParallel()
  sequential = {"compile_s": 0.0, "steps_s": 0.0}
  for run in range(runs):
    step = dp.compile_train_step(steps.make_train_step(
        spec, modules, optimizer, alpha=0.5, temperature=0.3,
        dropout_key=jax.random.key(run + 1), **options))
    # A copy: the step donates its state (the group below needs the initial params).
    state = dp.put_state(steps.init_state(jax.tree.map(jnp.copy, networks[run][1]),
                                          optimizer))
    t0 = time.perf_counter()
    state, metrics = step(state, dp.put_batch(batches[0][run]))
    jax.block_until_ready(metrics)
    sequential["compile_s"] += time.perf_counter() - t0
    for s in range(1, n_steps + 1):
      t0 = time.perf_counter()
      state, metrics = step(state, dp.put_batch(batches[s][run]))
      jax.block_until_ready(metrics)
      sequential["steps_s"] += time.perf_counter() - t0
    del state

  # The same S runs in one program.
  group = parallel.RunsDataParallel(runs)
  step = group.compile_train_step(steps.make_group_train_step(spec, modules, optimizer,
                                                              **options))
  state = group.put_state([steps.init_state(p, optimizer) for _, p in networks])
  keys = np.stack([jax.random.key_data(jax.random.key(run + 1)) for run in range(runs)])
  run_args = group.put_run_args({
      "alpha": np.full(runs, 0.5, np.float32), "temperature": np.full(runs, 0.3, np.float32),
      "dropout_key": jax.random.wrap_key_data(keys), "active": np.ones(runs, bool)})
  stacked = [data_pipeline.stack_run_batches(b, pad_token_id=0) for b in batches]
  vmapped = {"compile_s": 0.0, "steps_s": 0.0}
  t0 = time.perf_counter()
  state, metrics = step(state, group.put_batch(stacked[0]), run_args)
  jax.block_until_ready(metrics)
  vmapped["compile_s"] = time.perf_counter() - t0
  for s in range(1, n_steps + 1):
    t0 = time.perf_counter()
    state, metrics = step(state, group.put_batch(stacked[s]), run_args)
    jax.block_until_ready(metrics)
    vmapped["steps_s"] += time.perf_counter() - t0

  ratio = vmapped["steps_s"] / sequential["steps_s"]
  print(f"{'':24s} {'compile s':>10s} {'steps s':>9s} {'per run-step ms':>16s}")
  for name, figures in (("sequential (S programs)", sequential),
                        ("vmapped (1 program)", vmapped)):
    print(f"{name:24s} {figures['compile_s']:10.1f} {figures['steps_s']:9.2f} "
          f"{1e3 * figures['steps_s'] / (runs * n_steps):16.1f}")
  print(f"time ratio vmapped / sequential (steps): {ratio:.3f}; "
        f"mesh runs x data = {dict(group.mesh.shape)}")
  if FLAGS.json:
    with open(FLAGS.json, "w", encoding="utf-8") as f:
      json.dump({"runs": runs, "steps": n_steps, "rows": FLAGS.rows, "length": FLAGS.length,
                 "encoder": FLAGS.encoder, "objective": FLAGS.objective,
                 "sequential": sequential, "vmapped": vmapped, "ratio": ratio,
                 "devices": len(jax.devices()), "jax": jax.__version__}, f, indent=2)


if __name__ == "__main__":
  app.run(main)
