"""The README's Python example runs and does what it says."""
import pathlib
import re

import numpy as np

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_loss_example_runs():
  blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
  assert blocks, "README has no python example"
  namespace = {}
  exec(compile(blocks[0], "README.md", "exec"), namespace)  # noqa: S102
  assert np.isfinite(float(namespace["loss"]))
  assert [g.shape for g in namespace["grads"]] == [(20, 768), (20, 5)]
