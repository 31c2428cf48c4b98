"""Time per fwd+bwd call of the jitted dense contrastive losses (impl="dense") versus the
batch size (benchmarks/tiled_loss_benchmark.py compares dense and tiled).

For each batch size B it times ``jax.jit(jax.value_and_grad(loss))`` -- with respect
to the embeddings and, for LCL, the weighting network's logits too -- on random
float32 inputs of width D (768 = BERT/ELECTRA-base), and prints:

* the compile time (ahead-of-time ``lower().compile()``, measured separately),
* the median wall time of the calls made in ``--seconds_per_case`` (at least 3, after 3
  warm-up calls; each ended by ``block_until_ready``),
* the flop scale B^2 * D and the achieved GFLOP/s, counting the three B x B x D
  matmuls of a fwd+bwd call (forward H H^T, backward dS H and dS^T H) as 6 B^2 D.

``--torch_release`` also times a transcription of the authors' released PyTorch
``LCL.forward`` (github.com/varsha33/LCL_loss, loss.py), whose Python double loop
fills ``weighted_mask[i, j] = weights[i, labels[j]]``, at B = 20 and 256, and
checks that it gives the same value as ``lcl_loss``.

Usage:
  python benchmarks/loss_benchmark.py                       # the default table
  python benchmarks/loss_benchmark.py --torch_release       # + the release's loop
  python benchmarks/loss_benchmark.py --batch_sizes 20,64 --seconds_per_case 1
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.machine import describe_machine
from benchmarks.torch_reference import release_lcl_loss
from lcl_jax import losses


def _problem(batch: int, dim: int, num_classes: int, seed: int = 0):
  """Paired batch like training: K examples and their K augmented views (same labels)."""
  rng = np.random.default_rng(seed)
  embeddings = rng.normal(size=(batch, dim)).astype(np.float32)
  half = rng.integers(0, num_classes, size=(batch + 1) // 2)
  labels = np.concatenate([half, half])[:batch].astype(np.int32)
  weight_logits = rng.normal(size=(batch, num_classes)).astype(np.float32)
  return jnp.asarray(embeddings), jnp.asarray(labels), jnp.asarray(weight_logits)


def _time_calls(call: Callable[[], object], *, seconds: float, max_calls: int) -> tuple[float, int]:
  """Median seconds per call: at least 3 calls, then more until `seconds` or `max_calls`."""
  for _ in range(3):  # warm-up (allocations, caches, thread pools)
    jax.block_until_ready(call())
  times = []
  start = time.perf_counter()
  while len(times) < 3 or (len(times) < max_calls and time.perf_counter() - start < seconds):
    t0 = time.perf_counter()
    jax.block_until_ready(call())
    times.append(time.perf_counter() - t0)
  return statistics.median(times), len(times)


def _jax_case(name: str, batch: int, args: argparse.Namespace) -> dict[str, float]:
  embeddings, labels, weight_logits = _problem(batch, args.dim, args.num_classes)
  tau = args.temperature
  if name == "lcl_loss":
    fn = jax.value_and_grad(
        lambda e, w, y: losses.lcl_loss(e, y, w, temperature=tau, impl="dense"), argnums=(0, 1)
    )
    inputs = (embeddings, weight_logits, labels)
  else:
    fn = jax.value_and_grad(lambda e, y: losses.supcon_loss(e, y, temperature=tau, impl="dense"))
    inputs = (embeddings, labels)
  t0 = time.perf_counter()
  compiled = jax.jit(fn).lower(*inputs).compile()
  compile_s = time.perf_counter() - t0
  seconds, count = _time_calls(lambda: compiled(*inputs), seconds=args.seconds_per_case,
                               max_calls=args.max_calls)
  flops = 6.0 * batch * batch * args.dim
  return {"compile_s": compile_s, "seconds": seconds, "count": count, "gflops": flops / seconds / 1e9}


def _torch_case(batch: int, args: argparse.Namespace) -> dict[str, float]:
  import torch

  embeddings, labels, weight_logits = _problem(batch, args.dim, args.num_classes)
  raw = torch.tensor(np.asarray(embeddings), requires_grad=True)
  logits = torch.tensor(np.asarray(weight_logits), requires_grad=True)
  label_tensor = torch.tensor(np.asarray(labels), dtype=torch.long)

  def call():
    raw.grad = logits.grad = None
    # The release normalises the [CLS] vector in the model (F.normalize), then the loss.
    loss = release_lcl_loss(torch.nn.functional.normalize(raw, dim=1), label_tensor, logits,
                            args.temperature, loops=True)  # the release as it runs
    loss.backward()
    return loss.item()

  seconds, count = _time_calls(call, seconds=args.seconds_per_case, max_calls=args.max_calls)
  ours = float(losses.lcl_loss(embeddings, labels, weight_logits, temperature=args.temperature))
  return {"seconds": seconds, "count": count, "value": call(), "ours": ours,
          "threads": torch.get_num_threads(), "version": torch.__version__}


def _format_seconds(seconds: float) -> str:
  if seconds < 1e-3:
    return f"{seconds * 1e6:8.1f} us"
  if seconds < 1.0:
    return f"{seconds * 1e3:8.2f} ms"
  return f"{seconds:8.2f} s "


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--batch_sizes", default="20,64,256,1024,4096",
                      help="comma-separated batch sizes B (rows: K texts + K views)")
  parser.add_argument("--dim", type=int, default=768, help="feature width D")
  parser.add_argument("--num_classes", type=int, default=32, help="C (32 = Empathetic Dialogues)")
  parser.add_argument("--temperature", type=float, default=0.3)
  parser.add_argument("--seconds_per_case", type=float, default=3.0,
                      help="keep timing calls for this long (at least 3 calls), report the median")
  parser.add_argument("--max_calls", type=int, default=2000, help="at most this many timed calls")
  parser.add_argument("--losses", default="lcl_loss,supcon_loss")
  parser.add_argument("--torch_release", action="store_true",
                      help="also time the authors' PyTorch release loop (needs torch)")
  parser.add_argument("--torch_batch_sizes", default="20,256")
  args = parser.parse_args(argv)

  print(describe_machine())
  print(f"D = {args.dim}, C = {args.num_classes}, tau = {args.temperature}; median over "
        f"~{args.seconds_per_case:g} s of fwd+bwd calls (>= 3) after 3 warm-up calls; "
        "GFLOP/s counts 6*B^2*D\n")
  header = f"{'loss':<12} {'B':>5} {'compile':>9} {'fwd+bwd':>11} {'calls':>5} {'B^2*D':>9} {'GFLOP/s':>8}"
  print(header)
  print("-" * len(header))
  for name in args.losses.split(","):
    for batch in (int(b) for b in args.batch_sizes.split(",")):
      result = _jax_case(name, batch, args)
      print(f"{name:<12} {batch:>5} {result['compile_s']:>8.2f}s {_format_seconds(result['seconds']):>11} "
            f"{result['count']:>5} {batch * batch * args.dim:>9.2e} {result['gflops']:>8.2f}", flush=True)

  if args.torch_release:
    try:
      import torch  # noqa: F401
    except ImportError:
      print("\ntorch is not installed: skipping the release comparison", file=sys.stderr)
      return
    print("\nAuthors' release LCL (PyTorch, Python double loop), fwd+bwd:")
    for batch in (int(b) for b in args.torch_batch_sizes.split(",")):
      result = _torch_case(batch, args)
      print(f"release_lcl  {batch:>5} {_format_seconds(result['seconds']):>21} {result['count']:>5}   "
            f"torch {result['version']}, {result['threads']} threads; value {result['value']:.6f} "
            f"vs lcl_loss {result['ours']:.6f}", flush=True)


if __name__ == "__main__":
  main()
