r"""Forward and forward+backward time of one encoder, JAX (ours) vs transformers' PyTorch.

For each configuration it builds our `TransformerEncoder` and transformers'
PyTorch ``BertModel`` / ``ElectraModel`` with the same architecture (and the
same weights for MiniLM), feeds both the same padded batch (``--batch`` rows of
random token ids, lengths drawn in [length/4, length], padded to ``--length``),
and prints:

* ``compile``: ahead-of-time ``jit(...).lower().compile()`` seconds of the
  forward and of the training step;
* ``fwd``: ms of an evaluation forward (deterministic, no dropout; torch:
  ``eval()`` under ``no_grad``);
* ``fwd+bwd``: ms of a training step's forward and backward with dropout as in
  the config (loss = mean of the squared last hidden states; JAX:
  ``jit(value_and_grad)`` w.r.t. all parameters; torch: ``train()``,
  ``loss.backward()``);
* ``jax/torch``: ratio of the medians (below 1: JAX faster).

Times are the median (and minimum) of ``--iters`` calls after two warm-ups;
the JAX and torch calls are interleaved so both see the same background load.

Configurations: ``minilm`` (the real all-MiniLM-L6-v2 weights, 6 x 384) and
``electra-base`` (random weights, 12 x 768, ELECTRA-base-discriminator shape).
``--dtype=bfloat16`` computes in bf16 (float32 params) for GPU runs, where
attention uses cuDNN; torch is then not timed (it runs on the CPU here).

Usage::

  python -m benchmarks.encoder_benchmark                      # both configs, CPU, f32
  python -m benchmarks.encoder_benchmark --configs=minilm --iters=20
  python -m benchmarks.encoder_benchmark --dtype=bfloat16 --torch=no   # on a GPU
"""
from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from absl import app, flags
import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.machine import describe_machine
from lcl_jax import models
from lcl_jax.models import pretrained

_CONFIGS = flags.DEFINE_list("configs", ["minilm", "electra-base"],
                             "Which encoders: minilm, electra-base.")
_BATCH = flags.DEFINE_integer("batch", 20, "Rows per batch (the paper's 10 texts + 10 views).")
_LENGTH = flags.DEFINE_integer("length", 64, "Padded sequence length.")
_ITERS = flags.DEFINE_integer("iters", 10, "Timed calls per measurement (after 2 warm-ups).")
_DTYPE = flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "JAX compute dtype.")
_REMAT = flags.DEFINE_bool("remat", False, "Rematerialise each layer in the backward pass.")
_ATTENTION = flags.DEFINE_enum("attention_implementation", "auto", ["auto", "xla", "cudnn"],
                               "jax.nn.dot_product_attention implementation.")
_ATTENTION_DROPOUT = flags.DEFINE_float(
    "attention_dropout", None,
    "Override attention_probs_dropout_prob (0 keeps training on the fused attention).")
_TORCH = flags.DEFINE_enum("torch", "auto", ["auto", "yes", "no"],
                           "Time transformers' PyTorch model too (auto: on CPU in float32).")
_JSON_OUT = flags.DEFINE_string("json_out", None, "Also write the results as JSON here.")

ELECTRA_BASE = dict(model_type="electra", vocab_size=30522, hidden_size=768,
                    embedding_size=768, num_hidden_layers=12, num_attention_heads=12,
                    intermediate_size=3072, max_position_embeddings=512)


def interleaved_ms(calls: dict[str, Callable[[], Any]], iters: int) -> dict[str, dict[str, float]]:
  """Median and minimum wall time (ms) of each call, the calls timed in turn.

  Interleaving (a, b, a, b, ...) makes every call see the same background load, so
  ratios stay meaningful on a shared machine; the minimum is the least disturbed run.
  """
  for fn in calls.values():
    fn()
    fn()  # two warm-ups each
  times: dict[str, list[float]] = {name: [] for name in calls}
  for _ in range(iters):
    for name, fn in calls.items():
      start = time.perf_counter()
      fn()
      times[name].append((time.perf_counter() - start) * 1e3)
  return {name: {"median_ms": statistics.median(t), "min_ms": min(t)}
          for name, t in times.items()}


def make_batch(vocab_size: int, batch: int, length: int) -> dict[str, np.ndarray]:
  """Random token ids with [CLS]-like first token, random lengths, right padding."""
  rng = np.random.default_rng(0)
  ids = rng.integers(1000, vocab_size, size=(batch, length)).astype(np.int32)
  lengths = rng.integers(max(2, length // 4), length + 1, size=batch)
  lengths[0] = length
  mask = (np.arange(length)[None, :] < lengths[:, None]).astype(np.int32)
  ids[:, 0] = 101
  ids[mask == 0] = 0
  return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


def build(name: str, overrides: dict[str, Any]):
  """(config, params, torch model or None) for a named configuration."""
  if name == "minilm":
    directory = pretrained.minilm_checkpoint_dir()
    module, params = models.from_pretrained(directory, config_overrides=overrides)
    return module.config, params, directory
  if name == "electra-base":
    config = models.EncoderConfig(**ELECTRA_BASE).replace(**overrides)
    return config, pretrained.init_encoder_params(config, jax.random.PRNGKey(0)), None
  raise ValueError(f"unknown config {name!r}")


def jax_calls(config, params, batch, *, dtype, remat, attention):
  """Compile seconds, and callables running our compiled forward and training step."""
  module = models.TransformerEncoder(config, dtype=dtype, remat=remat,
                                     attention_implementation=attention)
  args = (batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])

  def forward(p, ids, mask, types):
    return module.apply({"params": p}, ids, mask, types)

  def loss(p, key, ids, mask, types):
    hidden = module.apply({"params": p}, ids, mask, types, deterministic=False,
                          rngs={"dropout": key})
    return jnp.mean(jnp.square(hidden.astype(jnp.float32)))

  key = jax.random.PRNGKey(0)
  start = time.perf_counter()
  forward_compiled = jax.jit(forward).lower(params, *args).compile()
  compile_forward = time.perf_counter() - start
  start = time.perf_counter()
  step_compiled = jax.jit(jax.value_and_grad(loss)).lower(params, key, *args).compile()
  compile_step = time.perf_counter() - start
  device_args = jax.device_put(args)
  compile_times = {"compile_forward_s": compile_forward, "compile_step_s": compile_step}
  calls = {
      "forward": lambda: forward_compiled(params, *device_args).block_until_ready(),
      "forward_backward": lambda: jax.block_until_ready(
          step_compiled(params, key, *device_args)),
  }
  return compile_times, calls


def torch_calls(config, directory, batch):
  """Callables running transformers' PyTorch forward (eval) and forward+backward (train)."""
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  if config.model_type == "bert":
    cls, hf_config = transformers.BertModel, transformers.BertConfig(**config.to_dict())
    kwargs = {"add_pooling_layer": False}  # ours has no pooler either
  else:
    cls, hf_config = transformers.ElectraModel, transformers.ElectraConfig(**config.to_dict())
    kwargs = {}
  if directory is not None:
    model = cls.from_pretrained(str(directory), config=hf_config, **kwargs)
  else:
    torch.manual_seed(0)
    model = cls(hf_config, **kwargs)
  inputs = {k: torch.tensor(v, dtype=torch.long) for k, v in batch.items()}

  def forward():
    model.eval()
    with torch.no_grad():
      model(**inputs)

  def forward_backward():
    model.train()
    model.zero_grad(set_to_none=True)
    hidden = model(**inputs).last_hidden_state
    hidden.square().mean().backward()

  attention = model.config._attn_implementation  # pylint: disable=protected-access
  return {"forward": forward, "forward_backward": forward_backward}, attention


def _fmt(timing: dict[str, float]) -> str:
  return f"{timing['median_ms']:.0f} ms (min {timing['min_ms']:.0f})"


def main(argv):
  del argv
  dtype = jnp.bfloat16 if _DTYPE.value == "bfloat16" else jnp.float32
  attention = None if _ATTENTION.value == "auto" else _ATTENTION.value
  use_torch = _TORCH.value == "yes" or (
      _TORCH.value == "auto" and jax.default_backend() == "cpu" and _DTYPE.value == "float32")
  overrides = ({} if _ATTENTION_DROPOUT.value is None
               else {"attention_probs_dropout_prob": _ATTENTION_DROPOUT.value})
  print(describe_machine(torch=True))
  print(f"batch {_BATCH.value} x length {_LENGTH.value}, dtype {_DTYPE.value}, "
        f"remat {_REMAT.value}, attention {_ATTENTION.value}, {_ITERS.value} timed calls")
  rows = []
  for name in _CONFIGS.value:
    config, params, directory = build(name, overrides)
    batch = make_batch(config.vocab_size, _BATCH.value, _LENGTH.value)
    compile_times, calls = jax_calls(config, params, batch, dtype=dtype, remat=_REMAT.value,
                                     attention=attention)
    row = {"config": name, "dtype": _DTYPE.value, "batch": _BATCH.value,
           "length": _LENGTH.value, "remat": _REMAT.value, **compile_times}
    if use_torch:
      torch_fns, row["torch_attention"] = torch_calls(config, directory, batch)
      calls.update({f"torch_{k}": fn for k, fn in torch_fns.items()})
    row["timings"] = interleaved_ms(calls, _ITERS.value)
    rows.append(row)
    timings = row["timings"]
    line = (f"{name:>12}: compile fwd {row['compile_forward_s']:.1f} s, step "
            f"{row['compile_step_s']:.1f} s | jax fwd {_fmt(timings['forward'])}, "
            f"fwd+bwd {_fmt(timings['forward_backward'])}")
    if use_torch:
      for kind in ("forward", "forward_backward"):
        row[f"ratio_{kind}"] = (timings[kind]["median_ms"]
                                / timings[f"torch_{kind}"]["median_ms"])
      line += (f" | torch fwd {_fmt(timings['torch_forward'])}, fwd+bwd "
               f"{_fmt(timings['torch_forward_backward'])} | jax/torch (medians) fwd "
               f"{row['ratio_forward']:.2f}, fwd+bwd {row['ratio_forward_backward']:.2f}")
    print(line, flush=True)
  if _JSON_OUT.value:
    with open(_JSON_OUT.value, "w") as f:
      json.dump({"machine": describe_machine(torch=True), "rows": rows}, f, indent=2)


if __name__ == "__main__":
  app.run(main)
