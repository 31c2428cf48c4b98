"""Issue 18 items 1-13 ("Robustness and fidelity, round 3"): each test feeds the exact
input of the issue and checks the clear error (or the fixed behaviour)."""
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _squash(text: str) -> str:
  return " ".join(text.split())


# -- item 13: the temperature checks and docstrings say the same thing ------------------


@pytest.mark.parametrize("name", ["supcon_loss", "lcl_loss"])
def test_temperature_error_and_docstring_agree_and_strings_are_named(name):
  from lcl_jax.losses import contrastive
  loss = getattr(contrastive, name)
  f = jnp.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-0.6, 0.8]])
  y = jnp.array([0, 0, 1, 1])
  args = (f, y) if name == "supcon_loss" else (f, y, jnp.zeros((4, 2)))
  rule = "one <= 0 makes the loss NaN"
  with pytest.raises(ValueError) as error:
    loss(*args, temperature=0.0)
  assert rule in _squash(str(error.value))
  assert rule in _squash(loss.__doc__)
  # The traced case the docstring describes: NaN, not an error.
  assert np.isnan(jax.jit(lambda t: loss(*args, temperature=t))(0.0))
  with pytest.raises(ValueError, match="`temperature` must be a real number"):
    loss(*args, temperature="0.3")
