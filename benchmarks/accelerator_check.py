"""One command for a lent accelerator: numerics, fused attention, step times, MFU, memory.

  python -m benchmarks.accelerator_check --output=accelerator_check.json   # GPU, ~8 min
  python -m benchmarks.accelerator_check --smoke                           # CPU, tiny sizes

Needs only jax, flax, optax, orbax, transformers and torch (no TFDS, NLTK,
tensorboardX or scikit-learn is imported) and downloads nothing: the networks are a
random-init ELECTRA-base-sized pair (H 768, 12 layers, 12 heads, FFN 3072; C = 27
classes) written by transformers (PyTorch) into a temporary folder and loaded from it
by lcl_jax, so the JAX and PyTorch steps start from the same weights.

Sections of the JSON (and rows of the printed table):

* ``numerics``: logits and [CLS] features of the dual network, bfloat16 vs float32
  (max |difference|, argmax agreement), and JAX float32 vs transformers float32.
* ``fused_attention``: whether the compiled forward (bf16 and f32) calls cuDNN's fused
  attention (a ``__cudnn$fmha`` custom call in the optimised HLO).
* ``steps``: median seconds of one LCL training step (Φ + Ψ forward/backward, the
  objective, AdamW) at ``--rows`` rows x ``--tokens`` tokens: ours in float32 at
  matmul precision 'highest' and 'default' and in bfloat16; a PyTorch transcription of
  the release's step (two ELECTRA classifiers, LCL loss, AdamW) in float32 and with
  autocast (AMP: fp16 + GradScaler on CUDA, bf16 on CPU); and ours vmapped over S
  runs (``--vmapped_runs``: S independent copies of the state and batch in one
  jitted step; all runs share the dropout key here, which does not change the cost).
  Each with the step's FLOPs (XLA cost analysis; for PyTorch the same count as ours),
  achieved TFLOP/s and model FLOP utilisation against the device's peak (a table for
  known GPUs; null elsewhere), and peak memory (JAX: the process's running maximum of
  ``peak_bytes_in_use``, so rows are in increasing order of need; PyTorch: reset
  per row; host: running maximum RSS). An out-of-memory step (e.g. S = 32 copies of
  the ELECTRA-base pair and its AdamW state, ~115 GB) is recorded as an error row.
* ``tiled_loss``: fwd+bwd of the tiled LCL at B = ``--tiled_batch`` (65,536), D = 768.

Timing: ``--warmup`` calls (compile included, reported separately), then the median of
``--repeats`` calls ended by block_until_ready / torch.cuda.synchronize.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from typing import Any, Callable

# JAX would take 75% of the GPU at start-up; leave room for the PyTorch steps.
os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.8")
import jax  # noqa: E402
import jax.numpy as jnp
import numpy as np

NUM_CLASSES = 27
BASE = dict(hidden_size=768, embedding_size=768, num_hidden_layers=12, num_attention_heads=12,
            intermediate_size=3072)
TINY = dict(hidden_size=32, embedding_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64)


def _peak(kind: str) -> tuple[float, float, float] | None:
  """(bf16/fp16, TF32, FP32) peak FLOP/s of one device: the trainer's table
  (lcl_jax.train.throughput.PEAK_FLOPS, vendor figures), None if unlisted."""
  from lcl_jax.train import throughput  # pylint: disable=import-outside-toplevel
  return tuple(throughput.peak_flops(kind, dtype=dtype, matmul_precision=precision)
               for dtype, precision in (("bfloat16", "default"), ("float32", "default"),
                                        ("float32", "highest"))
               ) if throughput.peak_flops(kind) is not None else None


def _host_peak_mib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _device_peak_mib() -> float | None:
  stats = jax.local_devices()[0].memory_stats() or {}
  peak = stats.get("peak_bytes_in_use")
  return None if peak is None else peak / 2**20


def _time(fn: Callable[[], Any], warmup: int, repeats: int,
          sync: Callable[[Any], Any] = jax.block_until_ready) -> tuple[float, float]:
  """(seconds of the warm-up calls, median seconds of the timed calls)."""
  t0 = time.perf_counter()
  for _ in range(warmup):
    sync(fn())
  first = time.perf_counter() - t0
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    sync(fn())
    times.append(time.perf_counter() - t0)
  return first, statistics.median(times)


def _write_checkpoint(folder: str, sizes: dict[str, int]) -> None:
  import torch
  import transformers

  torch.manual_seed(0)
  config = transformers.ElectraConfig(vocab_size=30522, max_position_embeddings=512, **sizes)
  transformers.ElectraModel(config).save_pretrained(folder)


def _batch(rows: int, tokens: int, seed: int = 0) -> dict[str, np.ndarray]:
  rng = np.random.default_rng(seed)
  k = rows // 2
  labels = np.tile(rng.integers(0, NUM_CLASSES, k), 2).astype(np.int32)
  lengths = rng.integers(tokens // 2, tokens + 1, rows)
  mask = (np.arange(tokens)[None] < lengths[:, None]).astype(np.int32)
  ids = rng.integers(1000, 30000, (rows, tokens)).astype(np.int32) * mask
  ids[:, 0] = 101
  return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids),
          "labels": labels, "valid": np.ones(rows, bool),
          "example_index": np.arange(rows, dtype=np.int32) % k}


def _networks(folder: str, dtype):
  from lcl_jax.train import objectives

  spec = objectives.get_spec("lcl")
  modules, params = objectives.build_networks(
      spec, encoder=folder, weighting_encoder=folder, num_classes=NUM_CLASSES,
      rng=jax.random.key(0), dtype=dtype)
  return spec, modules, params


def check_numerics(folder: str, batch: dict[str, np.ndarray]) -> dict[str, Any]:
  import torch
  import transformers

  from lcl_jax.train import objectives

  outputs, compiled_text = {}, {}
  for name, dtype in (("float32", jnp.float32), ("bfloat16", jnp.bfloat16)):
    _, modules, params = _networks(folder, dtype)
    fwd = jax.jit(lambda p, b, modules=modules: objectives.forward(
        modules, p, b, dropout_key=None, deterministic=True))
    with jax.default_matmul_precision("highest"):
      inputs = {k: jnp.asarray(v) for k, v in batch.items()}
      compiled_text[name] = fwd.lower(params, inputs).compile().as_text()
      out = fwd(params, inputs)
    outputs[name] = {k: np.asarray(v, np.float32) for k, v in out.items()}
  f32, bf16 = outputs["float32"], outputs["bfloat16"]
  result = {
      "bf16_vs_f32_logits_max_abs": float(np.abs(bf16["logits"] - f32["logits"]).max()),
      "bf16_vs_f32_weight_logits_max_abs": float(
          np.abs(bf16["weight_logits"] - f32["weight_logits"]).max()),
      "bf16_vs_f32_argmax_agreement": float(
          np.mean(bf16["logits"].argmax(-1) == f32["logits"].argmax(-1))),
      "bf16_vs_f32_features_min_cosine": float(np.min(
          np.sum(bf16["features"] * f32["features"], -1)
          / np.linalg.norm(bf16["features"], axis=-1) / np.linalg.norm(f32["features"], axis=-1))),
      "f32_logits_max_abs": float(np.abs(f32["logits"]).max()),
  }
  # The same encoder in transformers (PyTorch, float32): the [CLS] hidden state.
  model = transformers.ElectraModel.from_pretrained(folder).eval()
  with torch.no_grad():
    hidden = model(input_ids=torch.as_tensor(batch["input_ids"], dtype=torch.long),
                   attention_mask=torch.as_tensor(batch["attention_mask"], dtype=torch.long),
                   ).last_hidden_state[:, 0].numpy()
  _, modules, params = _networks(folder, jnp.float32)
  encoder = modules["primary"]
  with jax.default_matmul_precision("highest"):
    ours = np.asarray(jax.jit(lambda p, b: encoder.apply(
        {"params": p}, b["input_ids"], b["attention_mask"], b["token_type_ids"],
        deterministic=True).features)(params["primary"], batch))
  result["jax_vs_torch_f32_cls_max_abs"] = float(np.abs(ours - hidden).max())
  fused = {name: ("__cudnn$fmha" in text) for name, text in compiled_text.items()}
  return {"numerics": result, "fused_attention": fused}


def _jax_steps(folder: str, batch: dict[str, np.ndarray], args, peaks, device_kind: str):
  from lcl_jax.train import optim, steps

  rows = []
  variants = [("jax f32 highest", jnp.float32, "highest", 1),
              ("jax f32 default", jnp.float32, "default", 1),
              ("jax bf16", jnp.bfloat16, "default", 1)]
  variants += [(f"jax bf16 vmap S={s}", jnp.bfloat16, "default", s) for s in args.vmapped_runs]
  for label, dtype, precision, runs in variants:
    try:
      spec, modules, params = _networks(folder, dtype)
      optimizer = optim.make_optimizer(params, learning_rate=2e-5, total_steps=1000)
      step = steps.make_train_step(spec, modules, optimizer, alpha=0.5, temperature=0.3,
                                   multilabel=False, dropout_key=jax.random.key(1))
      state = steps.init_state(params, optimizer)
      inputs = {k: jnp.asarray(v) for k, v in batch.items()}
      if runs > 1:
        state = jax.tree.map(lambda x: jnp.stack([x] * runs), state)
        inputs = jax.tree.map(lambda x: jnp.stack([x] * runs), inputs)
        step = jax.vmap(step)
      del params
      compiled = jax.jit(step, donate_argnums=(0,))
      with jax.default_matmul_precision(precision):
        executable = compiled.lower(state, inputs).compile()
        cost = executable.cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        flops = float((cost or {}).get("flops", float("nan")))
        holder = {"state": state}

        def run():
          holder["state"], metrics = executable(holder["state"], inputs)
          return metrics["loss"]

        first, median = _time(run, args.warmup, args.repeats)
      peak = peaks and (peaks[0] if dtype == jnp.bfloat16 else
                        peaks[1] if precision == "default" else peaks[2])
      achieved = flops / median
      rows.append({"step": label, "runs": runs, "first_calls_s": first, "median_s": median,
                   "median_s_per_run": median / runs, "flops": flops,
                   "tflops_per_s": achieved / 1e12,
                   "mfu": (achieved / peak) if peak else None,
                   "device_peak_mib": _device_peak_mib(), "host_peak_mib": _host_peak_mib()})
      del holder, state
    except Exception as error:  # e.g. out of memory at large S: recorded, not fatal
      rows.append({"step": label, "runs": runs, "error": f"{type(error).__name__}: "
                   f"{str(error)[:300]}"})
    print(f"  {rows[-1]}", flush=True)
  return rows


def _torch_steps(folder: str, batch: dict[str, np.ndarray], args, flops: float | None,
                 peaks) -> list[dict[str, Any]]:
  """A PyTorch transcription of the release's step (own code, same equations)."""
  import torch
  import transformers

  device = "cuda" if torch.cuda.is_available() else "cpu"
  rows = []
  for label, amp in (("torch f32", False), ("torch amp", True)):
    torch.manual_seed(0)
    primary = transformers.ElectraModel.from_pretrained(folder).to(device)
    head = torch.nn.Sequential(torch.nn.Dropout(0.1), torch.nn.Linear(
        primary.config.hidden_size, NUM_CLASSES)).to(device)
    weighting = transformers.ElectraForSequenceClassification.from_pretrained(
        folder, num_labels=NUM_CLASSES).to(device)
    primary.train()
    weighting.train()
    parameters = list(primary.parameters()) + list(head.parameters()) + list(
        weighting.parameters())
    optimizer = torch.optim.AdamW(parameters, lr=2e-5, eps=1e-6, weight_decay=0.01)
    amp_dtype = torch.float16 if device == "cuda" else torch.bfloat16
    scaler = torch.amp.GradScaler(device, enabled=amp and device == "cuda")
    t = {k: torch.as_tensor(v).to(device) for k, v in batch.items()
         if k in ("input_ids", "attention_mask", "labels")}
    ids, mask, labels = t["input_ids"].long(), t["attention_mask"].long(), t["labels"].long()

    def lcl(features, weight_logits, tau=0.3):
      unit = torch.nn.functional.normalize(features.float(), dim=-1)
      sim = unit @ unit.T / tau
      eye = torch.eye(len(labels), device=device, dtype=torch.bool)
      weights = torch.softmax(weight_logits.float(), -1)
      pair_w = weights[:, labels]  # w_{i, y_k}
      denominator = torch.logsumexp(sim.masked_fill(eye, -float("inf"))
                                    + torch.log(pair_w), -1)
      positive = (labels[:, None] == labels[None, :]) & ~eye
      mean_pos = (sim * positive).sum(-1) / positive.sum(-1).clamp(min=1)
      anchor_w = weights.gather(1, labels[:, None])[:, 0]
      return (anchor_w * (denominator - mean_pos)).mean()

    def step():
      optimizer.zero_grad(set_to_none=True)
      with torch.autocast(device, dtype=amp_dtype, enabled=amp):
        cls = primary(input_ids=ids, attention_mask=mask).last_hidden_state[:, 0]
        logits = head(cls)
        weight_logits = weighting(input_ids=ids, attention_mask=mask).logits
        ce = torch.nn.functional.cross_entropy(logits.float(), labels)
        wce = torch.nn.functional.cross_entropy(weight_logits.float(), labels)
        loss = 0.5 * (ce + wce) + 0.5 * lcl(cls, weight_logits)
      scaler.scale(loss).backward()
      scaler.unscale_(optimizer)
      torch.nn.utils.clip_grad_norm_(parameters, 1.0)
      scaler.step(optimizer)
      scaler.update()
      return loss

    def sync(value):
      if device == "cuda":
        torch.cuda.synchronize()
      return value

    if device == "cuda":
      torch.cuda.reset_peak_memory_stats()
    first, median = _time(step, args.warmup, args.repeats, sync=sync)
    peak = peaks and (peaks[0] if amp else peaks[2])
    rows.append({"step": label, "runs": 1, "first_calls_s": first, "median_s": median,
                 "median_s_per_run": median, "flops": flops,
                 "tflops_per_s": flops / median / 1e12 if flops else None,
                 "mfu": flops / median / peak if (flops and peak) else None,
                 "device_peak_mib": (torch.cuda.max_memory_allocated() / 2**20
                                     if device == "cuda" else None),
                 "host_peak_mib": _host_peak_mib()})
    print(f"  {rows[-1]}", flush=True)
    del primary, head, weighting, optimizer
  return rows


def check_tiled(batch: int, dim: int, tile: int, warmup: int, repeats: int) -> dict[str, Any]:
  from lcl_jax.losses import tiled as tiled_losses

  rng = np.random.default_rng(0)
  features = jnp.asarray(rng.normal(size=(batch, dim)), jnp.float32)
  labels = jnp.asarray(np.tile(rng.integers(0, NUM_CLASSES, batch // 2), 2), jnp.int32)
  weight_logits = jnp.asarray(rng.normal(size=(batch, NUM_CLASSES)), jnp.float32)
  fn = jax.jit(jax.value_and_grad(lambda x, w: tiled_losses.lcl_loss(
      x, labels, w, temperature=0.3, tile_size=tile), argnums=(0, 1)))
  first, median = _time(lambda: fn(features, weight_logits), warmup, repeats)
  return {"batch": batch, "dim": dim, "tile": tile, "first_calls_s": first, "median_s": median,
          "device_peak_mib": _device_peak_mib(), "host_peak_mib": _host_peak_mib()}


def main(argv: list[str] | None = None) -> dict[str, Any]:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--smoke", action="store_true",
                      help="tiny sizes (2-layer H=32 networks, 8 rows x 16 tokens, B=512 "
                           "tiled loss): the CPU check of CI")
  parser.add_argument("--output", default="accelerator_check.json", help="the JSON to write")
  parser.add_argument("--rows", type=int, default=20, help="rows per step (10 texts + 10 views)")
  parser.add_argument("--tokens", type=int, default=128)
  parser.add_argument("--vmapped_runs", default="8,32", help="S values of the vmapped steps")
  parser.add_argument("--tiled_batch", type=int, default=65536)
  parser.add_argument("--tile", type=int, default=1024)
  parser.add_argument("--warmup", type=int, default=2)
  parser.add_argument("--repeats", type=int, default=10)
  args = parser.parse_args(argv)
  sizes = BASE
  if args.smoke:
    sizes = TINY
    args.rows, args.tokens, args.tiled_batch, args.tile = 8, 16, 512, 128
    args.vmapped_runs, args.warmup, args.repeats = "2", 1, 2
  args.vmapped_runs = [int(s) for s in str(args.vmapped_runs).split(",") if s.strip()]
  output = os.path.abspath(args.output)
  if os.path.isdir(output):
    parser.error(f"--output={args.output} is a directory")
  os.makedirs(os.path.dirname(output) or ".", exist_ok=True)

  device = jax.local_devices()[0]
  device_kind = getattr(device, "device_kind", str(device))
  peaks = _peak(device_kind) if device.platform in ("gpu", "tpu") else None
  report: dict[str, Any] = {
      "device": {"platform": device.platform, "kind": device_kind,
                 "count": jax.local_device_count(), "peak_flops": peaks},
      "versions": {"jax": jax.__version__, "python": platform.python_version()},
      "settings": {"smoke": args.smoke, "rows": args.rows, "tokens": args.tokens,
                   "encoder_sizes": sizes, "num_classes": NUM_CLASSES,
                   "vmapped_runs": args.vmapped_runs, "warmup": args.warmup,
                   "repeats": args.repeats},
  }
  print(f"device {device_kind} ({device.platform}); writing {output}", flush=True)
  report["tiled_loss"] = check_tiled(args.tiled_batch, 768, args.tile, args.warmup, args.repeats)
  print(f"  tiled loss {report['tiled_loss']}", flush=True)
  batch = _batch(args.rows, args.tokens)
  with tempfile.TemporaryDirectory() as folder:
    _write_checkpoint(folder, sizes)
    report.update(check_numerics(folder, batch))
    report["steps"] = _jax_steps(folder, batch, args, peaks, device_kind)
    ours = next((r for r in report["steps"] if r["step"] == "jax f32 highest"), {})
    report["steps"] += _torch_steps(folder, batch, args, ours.get("flops"), peaks)
  import torch
  report["versions"]["torch"] = torch.__version__

  tmp = output + ".tmp"
  with open(tmp, "w") as f:
    json.dump(report, f, indent=2)
  os.replace(tmp, output)
  print(format_table(report))
  return report


def format_table(report: dict[str, Any]) -> str:
  lines = [f"device: {report['device']['kind']} ({report['device']['platform']})"]
  for key, value in {**report["numerics"],
                     **{f"cudnn_fused_attention_{k}": v
                        for k, v in report["fused_attention"].items()}}.items():
    lines.append(f"  {key:40} {value}")
  lines.append(f"{'step':24} {'runs':>4} {'median s':>9} {'s/run':>9} {'TFLOP/s':>8} "
               f"{'MFU':>6} {'dev MiB':>8} {'host MiB':>8}")
  fmt = lambda v, spec: "-" if v is None else format(v, spec)
  for r in report["steps"]:
    if "error" in r:
      lines.append(f"{r['step']:24} {r['runs']:4d}  {r['error'][:60]}")
      continue
    lines.append(f"{r['step']:24} {r['runs']:4d} {r['median_s']:9.4f} "
                 f"{r['median_s_per_run']:9.4f} {fmt(r['tflops_per_s'], '8.2f')} "
                 f"{fmt(r['mfu'], '6.1%')} {fmt(r['device_peak_mib'], '8.0f')} "
                 f"{r['host_peak_mib']:8.0f}")
  t = report["tiled_loss"]
  lines.append(f"tiled LCL fwd+bwd B={t['batch']} D={t['dim']} tile={t['tile']}: "
               f"{t['median_s']:.3f} s, device peak {fmt(t['device_peak_mib'], '.0f')} MiB, "
               f"host peak {t['host_peak_mib']:.0f} MiB")
  return "\n".join(lines)


if __name__ == "__main__":
  main()
  sys.exit(0)
