"""Issue-12 options: config fields, matmul precision, compilation cache, accelerator check."""
import json
import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from lcl_jax.train import compilation_cache, trainer
from lcl_jax.train.config import TrainConfig

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _env(**extra):
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT)] + [
      p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
  env.update(extra)
  return env


@pytest.mark.parametrize("field,value", [
    ("contrastive_impl", "sparse"), ("contrastive_tile_size", 0),
    ("contrastive_auto_threshold", 0), ("matmul_precision", "tf32")])
def test_config_rejects_bad_scale_fields(field, value):
  with pytest.raises(ValueError, match=f"--{field}=.*TrainConfig.{field}"):
    TrainConfig(**{field: value}).resolved()
  assert TrainConfig().resolved().matmul_precision == "highest"


def test_steps_run_under_the_configured_matmul_precision():
  seen = []

  def step(x):
    seen.append(jax.config.jax_default_matmul_precision)
    return x

  for precision in ("highest", "default"):
    assert trainer._with_precision(precision, step)(3) == 3
  assert seen == ["highest", "default"]
  # And it reaches the compiled program: HIGHEST dots are marked in the HLO.
  x = np.ones((4, 4), np.float32)
  with jax.default_matmul_precision("highest"):
    text = jax.jit(lambda a: a @ a).lower(x).as_text()
  assert "HIGHEST" in text


_CACHE_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import jax, jax.numpy as jnp
    from lcl_jax.train import compilation_cache
    hits = []
    jax.monitoring.register_event_listener(
        lambda event, **kw: hits.append(event) if event.endswith("cache_hits") else None)
    folder = compilation_cache.enable(sys.argv[1], min_compile_seconds=0)
    def f(x):
      for i in range(30):
        x = jnp.sin(x) @ x.T + i
      return x
    jax.jit(f)(np.ones((8, 8), np.float32)).block_until_ready()  # the only compiled program
    print("HITS", len(hits), folder)
""")


def test_compilation_cache_is_shared_by_processes(tmp_path):
  folder = tmp_path / "cache"

  def start():
    return subprocess.Popen([sys.executable, "-c", _CACHE_SCRIPT, str(folder)],
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)

  def hits(proc):
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    line = next(l for l in out.splitlines() if l.startswith("HITS"))
    assert line.split()[2] == str(folder)
    return int(line.split()[1])

  # Two processes compiling the same program into one folder at once, then a third.
  first = [start(), start()]
  assert [hits(p) for p in first] in ([0, 0], [0, 1], [1, 0])
  entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
  assert entries, "nothing was written to the cache"
  assert hits(start()) == 1


def test_enable_arguments(tmp_path, monkeypatch):
  monkeypatch.setenv(compilation_cache.ENV_VAR, str(tmp_path / "from_env"))
  assert compilation_cache.default_dir() == tmp_path / "from_env"
  monkeypatch.setenv(compilation_cache.ENV_VAR, "")
  assert compilation_cache.default_dir() is None
  monkeypatch.delenv(compilation_cache.ENV_VAR)
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
  if sys.platform.startswith("linux"):
    assert compilation_cache.default_dir() == tmp_path / "xdg" / "lcl_jax" / "jax_cache"
  blocker = tmp_path / "a_file"
  blocker.write_text("x")
  with pytest.raises(ValueError, match="not a directory"):
    compilation_cache.enable(blocker)


def test_accelerator_check_smoke_without_tfds_nltk_tensorboard(tmp_path):
  """`--smoke` on CPU, in a process where TFDS, NLTK, tensorboardX, scikit-learn and
  matplotlib cannot be imported (the accelerator image has only jax, flax, optax,
  orbax, transformers and torch)."""
  output = tmp_path / "check.json"
  script = textwrap.dedent(f"""
      import runpy, sys
      for name in ("tensorflow_datasets", "tensorflow", "nltk", "tensorboardX", "sklearn",
                   "matplotlib"):
        sys.modules[name] = None  # import fails; find_spec reports "not installed"
      from lcl_jax.train import compilation_cache
      compilation_cache.enable()  # the tests' folder ($LCL_JAX_COMPILATION_CACHE)
      sys.argv = ["accelerator_check", "--smoke", "--output", {str(output)!r}]
      runpy.run_module("benchmarks.accelerator_check", run_name="__main__")
  """)
  proc = subprocess.run([sys.executable, "-c", script], env=_env(), capture_output=True,
                        text=True, timeout=900, cwd=tmp_path)
  assert proc.returncode == 0, proc.stderr[-4000:]
  report = json.loads(output.read_text())
  assert report["device"]["platform"] == "cpu" and report["settings"]["smoke"]
  steps = {r["step"]: r for r in report["steps"]}
  assert set(steps) == {"jax f32 highest", "jax f32 default", "jax bf16", "jax bf16 vmap S=2",
                        "torch f32", "torch amp"}
  for row in steps.values():
    assert "error" not in row, row
    assert row["median_s"] > 0 and row["flops"] > 0
  assert steps["jax bf16 vmap S=2"]["flops"] > 1.5 * steps["jax bf16"]["flops"]
  numerics = report["numerics"]
  assert numerics["jax_vs_torch_f32_cls_max_abs"] < 1e-4  # same weights, same encoder
  assert 0 < numerics["bf16_vs_f32_logits_max_abs"] < 0.5
  assert report["fused_attention"] == {"float32": False, "bfloat16": False}  # CPU
  assert report["tiled_loss"]["batch"] == 512
  assert "tiled LCL fwd+bwd" in proc.stdout
