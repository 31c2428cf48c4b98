"""The public LCL (`lcl_jax.lcl_loss`) dense vs tiled, and the ring: time and peak memory
of fwd+bwd.

Default: the table of issue 19 -- the public loss at B = 4,096 / 16,384 / 65,536 and
D = 64 / 768 with impl='dense' and impl='tiled' (default tile size), plus what
impl='auto' picks. Each row runs in its own subprocess: it compiles ahead of time
(`jit(...).lower().compile()`, timed apart; XLA's `memory_analysis()` gives the
argument / output / temporary bytes) and then calls the compiled program once; rows
whose call took under `--repeat_below` seconds are called twice more and report the
median. A dense row whose compiled buffers exceed `--memory_limit_gb` (default: 80% of
MemAvailable) is not run: it prints "skipped: needs N GB". GFLOP/s counts the
algorithm's matmul FLOPs (dense 6 B^2 D + 4 B^2 C, tiled 8 B^2 D + 6 B^2 C: its
backward recomputes the tiles); XLA's `cost_analysis()` counts a `scan` body once,
not once per tile, so it is recorded in the JSON but not used.

`--cases` instead runs the issue-12 cases below (the first call, then the median of
`--repeats` calls).

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
  taskset -c 1 python -m benchmarks.tiled_loss_benchmark       # the issue-19 table
  python -m benchmarks.tiled_loss_benchmark --batches 1024,2048,4096 --dims 64,768
  python -m benchmarks.tiled_loss_benchmark --cases all        # the issue-12 cases
  python -m benchmarks.tiled_loss_benchmark --float64_check 65536,64  # value vs float64
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
  from lcl_jax.losses import api
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
  contrastive = api.Contrastive(impl, tile_size=tile, mesh=dp.mesh,
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


def _run_table_row(batch: int, dim: int, impl: str, repeat_below: float,
                   memory_limit_gb: float) -> dict:
  """One row of the table: the public `lcl_loss(impl=...)` fwd+bwd at [batch, dim]."""
  import jax
  import numpy as np

  import lcl_jax
  from lcl_jax.losses import api

  rng = np.random.default_rng(0)
  labels = np.tile(rng.integers(0, 27, batch // 2), 2).astype(np.int32)  # paired views
  features = rng.standard_normal((batch, dim), dtype=np.float32)
  weight_logits = rng.standard_normal((batch, 27), dtype=np.float32)
  loss = lambda x, y, w: lcl_jax.lcl_loss(x, y, w, temperature=0.3, impl=impl)
  step = jax.jit(jax.value_and_grad(loss, argnums=(0, 2)))
  record = {"batch": batch, "dim": dim, "impl": impl,
            "auto_picks": api.choose_impl("auto", batch)}
  t0 = time.perf_counter()
  compiled = step.lower(features, labels, weight_logits).compile()
  record["compile_s"] = time.perf_counter() - t0
  memory = compiled.memory_analysis()
  needed = sum(getattr(memory, f"{k}_size_in_bytes") for k in ("argument", "output", "temp"))
  record["compiled_gb"] = needed / 1e9
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  record["xla_flops"] = float(cost.get("flops", float("nan"))) if cost else None
  # Matmul FLOPs of the algorithm (XLA's count covers a scan's body once, not per tile):
  # dense: S = H H^T, dS H, dS^T H (6 B^2 D) + the class weights' pair matmul and its
  # gradient (4 B^2 C); tiled: the backward recomputes S (8 B^2 D + 6 B^2 C).
  per_pair = (6 * dim + 4 * 27) if impl == "dense" else (4 * dim + 6 * 27)
  record["matmul_flops"] = float(batch) ** 2 * per_pair
  if needed > memory_limit_gb * 1e9:
    return {**record, "skipped": f"needs {needed / 1e9:.1f} GB"}
  features, labels, weight_logits = jax.device_put((features, labels, weight_logits))
  times = []
  while len(times) < 3 and (not times or times[0] < repeat_below):
    t0 = time.perf_counter()
    value, _ = jax.block_until_ready(compiled(features, labels, weight_logits))
    times.append(time.perf_counter() - t0)
  return {**record, "loss": float(value), "seconds": statistics.median(times),
          "calls": len(times),
          "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9}


def _float64_lcl(features, labels, weight_logits, temperature: float, chunk: int = 512) -> float:
  """The release's LCL in float64 NumPy, anchor rows in chunks (memory O(chunk x B)):
  L_i = -w_{i,y_i} / |P_i| sum_p [s_ip - log sum_{k != i} w_{i,y_k} exp(s_ik)], the mean
  over anchors with |P_i| > 0; w_i = softmax(weight_logits_i), s = cosine / temperature."""
  import numpy as np

  unit = features.astype(np.float64)
  unit /= np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-12)
  logits = weight_logits.astype(np.float64)
  log_w = logits - logits.max(1, keepdims=True)
  log_w -= np.log(np.exp(log_w).sum(1, keepdims=True))
  total, anchors = 0.0, 0
  for start in range(0, len(unit), chunk):
    rows = np.arange(start, min(start + chunk, len(unit)))
    s = unit[rows] @ unit.T / temperature
    z = s + log_w[rows][:, labels]  # log(w_{i,y_k}) + s_ik
    z[np.arange(len(rows)), rows] = -np.inf  # k != i
    top = z.max(1, keepdims=True)
    log_denominator = np.log(np.exp(z - top).sum(1)) + top[:, 0]
    positive = labels[rows][:, None] == labels[None, :]
    positive[np.arange(len(rows)), rows] = False
    count = positive.sum(1)
    mean_s = np.where(positive, s, 0).sum(1) / np.maximum(count, 1)
    weight = np.exp(log_w[rows, labels[rows]])
    total += np.sum(np.where(count > 0, weight * (log_denominator - mean_s), 0))
    anchors += int(np.sum(count > 0))
  return total / max(anchors, 1)


def _float64_check(batch: int, dim: int) -> None:
  """The default public lcl_loss against `_float64_lcl` on the table's inputs."""
  import jax
  import numpy as np

  import lcl_jax

  rng = np.random.default_rng(0)  # the same inputs as a table row
  labels = np.tile(rng.integers(0, 27, batch // 2), 2).astype(np.int32)
  features = rng.standard_normal((batch, dim), dtype=np.float32)
  weight_logits = rng.standard_normal((batch, 27), dtype=np.float32)
  t0 = time.perf_counter()
  got = float(jax.jit(lambda x, y, w: lcl_jax.lcl_loss(x, y, w, temperature=0.3))(
      features, labels, weight_logits))
  got_s = time.perf_counter() - t0
  t0 = time.perf_counter()
  want = _float64_lcl(features, labels, weight_logits, 0.3)
  print(f"B = {batch}, D = {dim}: lcl_jax.lcl_loss (auto: "
        f"{lcl_jax.losses.choose_impl('auto', batch)}) {got:.8f} in {got_s:.1f} s; float64 "
        f"reference {want:.8f} in {time.perf_counter() - t0:.1f} s; |difference| "
        f"{abs(got - want):.2e} (relative {abs(got - want) / abs(want):.2e})")


def _memory_available_gb() -> float:
  with open("/proc/meminfo") as f:
    for line in f:
      if line.startswith("MemAvailable:"):
        return int(line.split()[1]) * 1024 / 1e9
  return 8.0


def _table(args) -> None:
  """Runs the rows of the public-loss table, each in a subprocess, and prints it."""
  limit = args.memory_limit_gb or 0.8 * _memory_available_gb()
  print(describe_machine())
  print(f"public lcl_jax.lcl_loss fwd+bwd (value_and_grad w.r.t. features and weight logits), "
        f"C = 27, paired labels, default tile size; memory limit {limit:.1f} GB")
  print(f"{'B':>6} {'D':>4} {'impl':6} {'auto':6} {'compile s':>9} {'run s':>9} {'calls':>5} "
        f"{'GFLOP':>10} {'GFLOP/s':>8} {'XLA buffers GB':>14} {'peak RSS GB':>11} "
        f"{'loss':>10}")
  started = time.perf_counter()
  for batch in (int(b) for b in args.batches.split(",")):
    for dim in (int(d) for d in args.dims.split(",")):
      for impl in args.impls.split(","):
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.tiled_loss_benchmark", "--row",
             f"{batch},{dim},{impl}", "--repeat_below", str(args.repeat_below),
             "--memory_limit_gb", str(limit)],
            capture_output=True, text=True, check=False)
        if out.returncode:
          print(f"{batch:6d} {dim:4d} {impl:6} failed: {out.stderr[-1500:]}", flush=True)
          continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        flops = r["matmul_flops"]
        head = (f"{r['batch']:6d} {r['dim']:4d} {r['impl']:6} {r['auto_picks']:6} "
                f"{r['compile_s']:9.1f}")
        if "skipped" in r:
          print(f"{head} skipped: {r['skipped']} (XLA's memory analysis)", flush=True)
          continue
        print(f"{head} {r['seconds']:9.2f} {r['calls']:5d} {flops / 1e9:10.0f} "
              f"{flops / 1e9 / r['seconds']:8.1f} {r['compiled_gb']:14.2f} "
              f"{r['peak_rss_gb']:11.2f} {r['loss']:10.6f}", flush=True)
  print(f"table wall time {time.perf_counter() - started:.0f} s")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--cases", default=None,
                      help="the issue-12 cases, comma-separated, or 'all' (with --train_step: "
                           "default dense8k,ring8k); without it (and --train_step): the table")
  parser.add_argument("--dim", type=int, default=768)
  parser.add_argument("--tile", type=int, default=256)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--compile_only", action="store_true",
                      help="only compile each case and print XLA's memory analysis of the "
                           "program (argument / output / temporary buffers)")
  parser.add_argument("--train_step", action="store_true",
                      help="time the trainer's whole LCL jit step (tiny ELECTRA, 16 tokens) "
                           "instead of the loss alone")
  parser.add_argument("--batches", default="4096,16384,65536",
                      help="table: batch sizes B")
  parser.add_argument("--dims", default="64,768", help="table: feature widths D")
  parser.add_argument("--impls", default="dense,tiled", help="table: impl= of the public loss")
  parser.add_argument("--repeat_below", type=float, default=10.0,
                      help="table: rows whose call takes less (s) are called 3 times (median)")
  parser.add_argument("--memory_limit_gb", type=float, default=0.0,
                      help="table: skip rows whose XLA buffers exceed this (0: 80%% of "
                           "MemAvailable)")
  parser.add_argument("--float64_check", metavar="B,D",
                      help="compare the default public lcl_loss (value) with a float64 "
                           "NumPy reference of the release's LCL on a table row's inputs")
  parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one case here
  parser.add_argument("--row", help=argparse.SUPPRESS)  # internal: one table row here
  args = parser.parse_args()
  if args.float64_check:
    print(describe_machine())
    _float64_check(*(int(v) for v in args.float64_check.split(",")))
    return
  if args.row:
    batch, dim, impl = args.row.split(",")
    print(json.dumps(_run_table_row(int(batch), int(dim), impl, args.repeat_below,
                                    args.memory_limit_gb)))
    return
  if args.cases is None and not args.train_step:
    _table(args)
    return
  if args.cases == "all":
    args.cases = None
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
