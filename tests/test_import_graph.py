"""The import graph of the whole lcl_jax package (issue 21, item 7): no import circle
between its modules (deferred, in-function imports included), and the layers import
downwards only: the pure layers (losses, metrics, thresholds, data, models) never import
the trainer, inference or the studies.

Read from the sources with `ast` (nothing is imported), as
/work/shared/hooks/house_report.py reads them: an edge m -> t for every `import t` /
`from t import x` (t.x when that is a module) of another lcl_jax module, a package
meaning its __init__; a module's own parent packages are not edges (Python runs them
first anyway).
"""
import ast
import pathlib

import pytest

import lcl_jax
from import_cycles import first_cycle  # tests/ is on sys.path (rootdir conftest)

ROOT = pathlib.Path(lcl_jax.__file__).resolve().parent

# Lower layers and what they may never import (prefixes of dotted module names).
UPPER = ("lcl_jax.train", "lcl_jax.inference", "lcl_jax.studies", "lcl_jax.studies")
LOWER = ("lcl_jax.losses", "lcl_jax.metrics", "lcl_jax.thresholds", "lcl_jax.data",
         "lcl_jax.models", "lcl_jax.tiled_losses")


def _modules() -> dict[str, pathlib.Path]:
  mods = {}
  for path in ROOT.rglob("*.py"):
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    mods[".".join(parts)] = path
  return mods


def _graph() -> dict[str, set[str]]:
  mods = _modules()
  graph = {m: set() for m in mods}
  for m, path in mods.items():
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
      targets = []
      if isinstance(node, ast.ImportFrom) and node.module and not node.level:
        targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
      elif isinstance(node, ast.Import):
        targets = [a.name for a in node.names]
      for t in targets:
        if t in mods and t != m and not m.startswith(t + "."):
          graph[m].add(t)
  return graph


def _within(module: str, prefixes) -> bool:
  return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_the_graph_sees_the_package():
  graph = _graph()
  assert len(graph) > 60
  assert "lcl_jax.train.evaluation" in graph["lcl_jax.train.mixing"]
  assert "lcl_jax.losses.contrastive" in graph["lcl_jax.losses.tiled"]
  assert "lcl_jax.train.trainer" in graph["lcl_jax.studies.sweep"]  # a deferred import


def test_no_import_circle():
  # A package's __init__ importing its own submodules is not a circle with them.
  cycle = first_cycle(_graph(), follow=lambda module, dep: not dep.startswith(module + "."))
  if cycle:
    pytest.fail("import circle: " + " -> ".join(cycle))


def test_lower_layers_never_import_upper_layers():
  graph = _graph()
  bad = sorted(f"{m} -> {t}" for m, deps in graph.items() if _within(m, LOWER)
               for t in deps if _within(t, UPPER))
  assert not bad, "lower layers import the trainer / inference / studies: " + "; ".join(bad)


def test_the_top_level_package_imports_only_the_losses():
  """`from lcl_jax import lcl_loss` stays light: no Flax models, data or trainer."""
  graph = _graph()
  assert all(_within(t, ("lcl_jax.losses",)) for t in graph["lcl_jax"]), graph["lcl_jax"]
