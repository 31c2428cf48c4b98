"""Tiled / ring LCL versus the dense [B, B] LCL: time and peak memory of fwd+bwd.

Each case runs in its own subprocess so that its peak resident memory (``ru_maxrss``
of the child, in MiB) is its own. A case times ``jax.jit(jax.value_and_grad(lcl_loss,
argnums=(features, weight_logits)))`` on random float32 features of width D and
C = 27 classes (GoEmotions), paired labels; the first call (compile) is timed
separately; then the median of ``--repeats`` calls, each ended by block_until_ready.

Cases (the issue-12 benchmarks):
  dense4k / tiled4k : one device, B = 4,096, D = 768           (time ratio, peak RSS)
  tiled64k          : one device, B = 65,536, D = 768          (time, peak RSS; < 2 GB)
  ring8k / dense8k  : 8 virtual CPU devices, global B = 8,192, batch sharded over a
                      1-D mesh; ring = shard_map + ppermute, dense = the [B, B] loss
                      under jit (XLA all-gathers the column operand).

With ``--train_step`` a case times the trainer's whole LCL training step instead
(`steps.make_train_step` under `parallel.JitDataParallel`, as `trainer.train` compiles
it: a tiny random-init ELECTRA, 2 layers, hidden 32, as both networks; 16 tokens a
row; forward, the dense / ring contrastive term, backward, AdamW update), so the
ring-vs-gathered-dense comparison includes everything else a step does; default cases
then ``dense8k,ring8k``. Calls chain the state (each one's output state is the next
one's input, donated); "loss" is the first call's, from the same initial state.

Usage:
  python -m benchmarks.tiled_loss_benchmark                    # all cases
  python -m benchmarks.tiled_loss_benchmark --train_step       # 8 devices, B = 8,192 steps
  python -m benchmarks.tiled_loss_benchmark --cases dense4k,tiled4k --repeats 3
  python -m benchmarks.tiled_loss_benchmark --compile_only   # XLA buffer sizes, no run
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

from benchmarks.machine import describe_machine

CASES = {
    # name: (batch, devices, implementation)
    "dense4k": (4096, 1, "dense"),
    "tiled4k": (4096, 1, "tiled"),
    "tiled64k": (65536, 1, "tiled"),
    "dense8k": (8192, 8, "dense"),
    "ring8k": (8192, 8, "ring"),
    "dense64k": (65536, 1, "dense"),  # --compile_only: 17 GB of [B, B] buffers otherwise
}


def _run_train_step_case(name: str, tile: int, repeats: int, compile_only: bool) -> dict:
  """The trainer's jit LCL step at the case's global batch (see the module docstring)."""
  import tempfile

  import jax

  from benchmarks import accelerator_check
  from lcl_jax.losses import tiled as tiled_losses
  from lcl_jax.train import objectives, optim, parallel, steps

  batch_rows, devices, impl = CASES[name]
  hidden, tokens = 32, 16
  with tempfile.TemporaryDirectory() as folder:
    accelerator_check._write_checkpoint(folder, dict(  # pylint: disable=protected-access
        hidden_size=hidden, embedding_size=hidden, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=2 * hidden))
    spec = objectives.get_spec("lcl")
    modules, params = objectives.build_networks(
        spec, encoder=folder, weighting_encoder=folder,
        num_classes=accelerator_check.NUM_CLASSES, rng=jax.random.key(0))
  optimizer = optim.make_optimizer(params, learning_rate=1e-4, total_steps=100)
  dp = parallel.JitDataParallel(jax.devices()[:devices])
  contrastive = tiled_losses.Contrastive(impl, tile_size=tile, mesh=dp.mesh,
                                         axis_name=parallel.DATA_AXIS)
  step = dp.compile_train_step(steps.make_train_step(
      spec, modules, optimizer, alpha=0.5, temperature=0.3, multilabel=False,
      dropout_key=jax.random.key(1), axis_name=dp.axis_name, contrastive=contrastive))
  host_batch = accelerator_check._batch(batch_rows, tokens)  # pylint: disable=protected-access
  host_batch.pop("example_index")
  state = dp.put_state(steps.init_state(params, optimizer))
  batch = dp.put_batch(host_batch)
  t0 = time.perf_counter()
  compiled = step.lower(state, batch).compile()
  compile_s = time.perf_counter() - t0
  memory = compiled.memory_analysis()
  compiled_mib = {name: getattr(memory, f"{name}_size_in_bytes") / 2**20
                  for name in ("argument", "output", "temp")} if memory is not None else None
  record = {"case": name, "batch": batch_rows, "dim": hidden, "devices": devices, "impl": impl,
            "tile": tile if impl != "dense" else None, "compile_s": compile_s,
            "compiled_mib": compiled_mib, "what": "train_step", "tokens": tokens}
  if compile_only:
    return record
  t0 = time.perf_counter()
  state, metrics = jax.block_until_ready(step(state, batch))
  first = time.perf_counter() - t0
  first_metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
  times = [first] if not repeats else []
  for _ in range(repeats):
    t0 = time.perf_counter()
    state, metrics = jax.block_until_ready(step(state, batch))
    times.append(time.perf_counter() - t0)
  return {**record, "loss": first_metrics["loss"],
          "grad_norm_primary": first_metrics.get("grad_norm_primary"),
          "first_call_s": first, "median_s": statistics.median(times), "repeats": repeats,
          "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _run_case(name: str, dim: int, tile: int, repeats: int, compile_only: bool) -> dict:
  import jax
  import jax.numpy as jnp
  import numpy as np

  from lcl_jax import losses
  from lcl_jax.losses import tiled as tiled_losses

  batch, devices, impl = CASES[name]
  rng = np.random.default_rng(0)
  labels = np.tile(rng.integers(0, 27, batch // 2), 2).astype(np.int32)
  features = rng.standard_normal((batch, dim), dtype=np.float32)  # no float64 copy
  weight_logits = rng.standard_normal((batch, 27), dtype=np.float32)
  mesh = None
  if devices > 1:
    mesh = jax.make_mesh((devices,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    rows = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    features, labels, weight_logits = jax.device_put((features, labels, weight_logits), rows)
  if impl == "dense":
    loss = lambda x, y, w: losses.lcl_loss(x, y, w, temperature=0.3)
  else:
    loss = lambda x, y, w: tiled_losses.lcl_loss(x, y, w, temperature=0.3, tile_size=tile,
                                                 mesh=mesh)
  step = jax.jit(jax.value_and_grad(loss, argnums=(0, 2)))
  t0 = time.perf_counter()
  memory = step.lower(features, labels, weight_logits).compile().memory_analysis()
  compiled_mib = {name: getattr(memory, f"{name}_size_in_bytes") / 2**20
                  for name in ("argument", "output", "temp")} if memory is not None else None
  compile_s = time.perf_counter() - t0
  if compile_only:
    return {"case": name, "batch": batch, "dim": dim, "devices": devices, "impl": impl,
            "tile": tile if impl != "dense" else None, "compile_s": compile_s,
            "compiled_mib": compiled_mib}
  features, labels, weight_logits = jax.device_put((features, labels, weight_logits))
  t0 = time.perf_counter()
  jax.block_until_ready(step(features, labels, weight_logits))
  first = time.perf_counter() - t0
  times = [first]  # --repeats=0: the first call (compile + run) is the only figure
  if repeats:
    times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    value, _ = jax.block_until_ready(step(features, labels, weight_logits))
    times.append(time.perf_counter() - t0)
  return {"case": name, "batch": batch, "dim": dim, "devices": devices, "impl": impl,
          "tile": tile if impl != "dense" else None, "loss": float(value),
          "first_call_s": first, "median_s": statistics.median(times), "repeats": repeats,
          "compile_s": compile_s, "compiled_mib": compiled_mib,
          "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--cases", default=None,
                      help="comma-separated; default: all (with --train_step: dense8k,ring8k)")
  parser.add_argument("--dim", type=int, default=768)
  parser.add_argument("--tile", type=int, default=256)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--compile_only", action="store_true",
                      help="only compile each case and print XLA's memory analysis of the "
                           "program (argument / output / temporary buffers)")
  parser.add_argument("--train_step", action="store_true",
                      help="time the trainer's whole LCL jit step (tiny ELECTRA, 16 tokens) "
                           "instead of the loss alone")
  parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one case here
  args = parser.parse_args()
  if args.one:
    if args.train_step:
      print(json.dumps(_run_train_step_case(args.one, args.tile, args.repeats, args.compile_only)))
    else:
      print(json.dumps(_run_case(args.one, args.dim, args.tile, args.repeats, args.compile_only)))
    return
  if args.cases is None:
    args.cases = "dense8k,ring8k" if args.train_step else ",".join(CASES)
  names = [c for c in args.cases.split(",") if c]
  unknown = sorted(set(names) - set(CASES))
  if unknown:
    parser.error(f"--cases: unknown {unknown}; known {sorted(CASES)}")
  print(describe_machine())
  results = {}
  for name in names:
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                        f" --xla_force_host_platform_device_count={CASES[name][1]}").strip()
    out = subprocess.run([sys.executable, "-m", "benchmarks.tiled_loss_benchmark", "--one", name,
                          "--dim", str(args.dim), "--tile", str(args.tile),
                          "--repeats", str(args.repeats)]
                         + (["--compile_only"] if args.compile_only else [])
                         + (["--train_step"] if args.train_step else []),
                         env=env, capture_output=True, text=True, check=False)
    if out.returncode:
      print(f"{name}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
      continue
    results[name] = json.loads(out.stdout.strip().splitlines()[-1])
  if args.compile_only:
    print(f"{'case':10} {'B':>6} {'dev':>3} {'impl':6} {'tile':>5} {'compile s':>9} "
          f"{'args MiB':>9} {'out MiB':>8} {'temp MiB':>9}")
    for r in results.values():
      m = r["compiled_mib"] or {}
      print(f"{r['case']:10} {r['batch']:6d} {r['devices']:3d} {r['impl']:6} "
            f"{str(r['tile'] or '-'):>5} {r['compile_s']:9.1f} {m.get('argument', 0):9.1f} "
            f"{m.get('output', 0):8.1f} {m.get('temp', 0):9.1f}")
    return
  print(f"{'case':10} {'B':>6} {'D':>4} {'dev':>3} {'impl':6} {'tile':>5} {'first s':>8} "
        f"{'median s':>9} {'peak RSS MiB':>12} {'loss':>10}")
  for r in results.values():
    print(f"{r['case']:10} {r['batch']:6d} {r['dim']:4d} {r['devices']:3d} {r['impl']:6} "
          f"{str(r['tile'] or '-'):>5} {r['first_call_s']:8.2f} {r['median_s']:9.3f} "
          f"{r['peak_rss_mib']:12.0f} {r['loss']:10.5f}")
  for a, b in (("tiled4k", "dense4k"), ("ring8k", "dense8k")):
    if a in results and b in results:
      print(f"{a}/{b}: time ratio {results[a]['median_s'] / results[b]['median_s']:.2f}, "
            f"peak RSS ratio {results[a]['peak_rss_mib'] / results[b]['peak_rss_mib']:.2f}, "
            f"|loss difference| {abs(results[a]['loss'] - results[b]['loss']):.2e}")


if __name__ == "__main__":
  main()
