"""The import-circle search shared by tests/test_import_graph.py (the whole package) and
tests/test_data_readers.py (lcl_jax.data's modules)."""
from typing import Callable, Mapping


def first_cycle(graph: Mapping[str, set[str]],
                follow: Callable[[str, str], bool] = lambda module, dep: True
                ) -> list[str] | None:
  """The first import circle of ``graph`` (module -> the modules it imports) met by a
  depth-first search in sorted order, as ``[m, ..., m]``; None when there is none.
  ``follow(module, dep)`` False skips that edge (e.g. a package's __init__ importing
  its own submodules)."""
  done, on_path = set(), []

  def visit(module):
    if module in on_path:
      return on_path[on_path.index(module):] + [module]
    if module in done:
      return None
    on_path.append(module)
    for dep in sorted(graph[module]):
      if follow(module, dep):
        cycle = visit(dep)
        if cycle:
          return cycle
    on_path.pop()
    done.add(module)
    return None

  for module in sorted(graph):
    cycle = visit(module)
    if cycle:
      return cycle
  return None
