r"""Times one jitted training step per objective, and the dropout RNG choice.

Prints, for each objective (ce, scl, lcl, bert_ce) and each dropout key
implementation (threefry2x32, philox4x32, rbg, unsafe_rbg): compile time, median step time over
repeats, and sequences/s, at the paper's batch (10 texts + 10 views) and a fixed
sequence length. Usage:

  python -m benchmarks.train_step_benchmark --encoder=minilm --length=64 --repeats=10
"""
from __future__ import annotations

import statistics
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("encoder", "minilm", "Checkpoint (dir, hub id or 'minilm').")
flags.DEFINE_list("objectives", ["ce", "scl", "lcl", "bert_ce"], "Objectives to time.")
flags.DEFINE_list("rng_impls", ["none", "threefry2x32", "philox4x32", "rbg", "unsafe_rbg"],
                  "Dropout key impls ('none': dropout off, the cost baseline).")
flags.DEFINE_integer("rows", 20, "Rows per step (2K).")
flags.DEFINE_integer("length", 64, "Sequence length.")
flags.DEFINE_integer("repeats", 10, "Timed steps after compilation.")
flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "Compute dtype.")
flags.DEFINE_bool("remat", False, "Rematerialise layers.")


def main(argv):
  del argv
  import jax
  import jax.numpy as jnp
  import numpy as np

  from lcl_jax.train import objectives, optim, steps

  rng = np.random.default_rng(0)
  rows, length = FLAGS.rows, FLAGS.length
  batch = {
      "input_ids": rng.integers(1000, 20000, size=(rows, length)).astype(np.int32),
      "attention_mask": np.ones((rows, length), np.int32),
      "token_type_ids": np.zeros((rows, length), np.int32),
      "labels": np.tile(np.arange(rows // 2) % 4, 2).astype(np.int32),
      "valid": np.ones(rows, bool),
      "example_index": np.arange(rows, dtype=np.int32),
  }
  batch = jax.device_put(batch)
  dtype = jnp.bfloat16 if FLAGS.dtype == "bfloat16" else jnp.float32
  print(f"device: {jax.devices()[0].device_kind} x{len(jax.devices())}, jax {jax.__version__}, "
        f"batch {rows}x{length}, dtype {FLAGS.dtype}, encoder {FLAGS.encoder}")
  print(f"{'objective':10s} {'rng':11s} {'compile s':>9s} {'step ms':>9s} {'seq/s':>8s}")
  for objective in FLAGS.objectives:
    spec = objectives.get_spec(objective)
    modules, params = objectives.build_networks(
        spec, encoder=FLAGS.encoder, weighting_encoder=FLAGS.encoder, num_classes=4,
        rng=jax.random.key(0), dtype=dtype, remat=FLAGS.remat)
    optimizer = optim.make_optimizer(params, learning_rate=2e-5, total_steps=1000)
    for impl in FLAGS.rng_impls:
      step = jax.jit(steps.make_train_step(
          spec, modules, optimizer, alpha=0.5, temperature=0.3, multilabel=False,
          dropout_key=jax.random.key(1, impl="rbg" if impl == "none" else impl),
          use_dropout=impl != "none"), donate_argnums=(0,))
      state = steps.init_state(jax.tree.map(jnp.copy, params), optimizer)
      t0 = time.perf_counter()
      compiled = step.lower(state, batch).compile()
      compile_s = time.perf_counter() - t0
      state, m = compiled(state, batch)
      jax.block_until_ready(m)
      times = []
      for _ in range(FLAGS.repeats):
        t0 = time.perf_counter()
        state, m = compiled(state, batch)
        jax.block_until_ready(m)
        times.append(time.perf_counter() - t0)
      med = statistics.median(times)
      print(f"{objective:10s} {impl:11s} {compile_s:9.1f} {1e3 * med:9.1f} {rows / med:8.1f}")


if __name__ == "__main__":
  app.run(main)
