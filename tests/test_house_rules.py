"""House rules of the repository's layout (issue 21): checked from the sources."""
import ast
import pathlib

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_every_binary_reports_user_errors_in_one_line():
  """Each experiments/ binary runs `cli.run(main)` (absl's app.run with `cli.parse_flags`
  and `cli.report_user_errors`), so a bad flag or input prints one `error: ...` line,
  not a traceback (tests/test_robustness_round3.py runs each one)."""
  binaries = sorted(p for p in (PROJECT_ROOT / "experiments").glob("*.py")
                    if p.name != "__init__.py")
  assert len(binaries) >= 10
  bad = []
  for path in binaries:
    calls = [ast.unparse(node) for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
             if isinstance(node, ast.Call) and ast.unparse(node.func) in ("app.run", "cli.run")]
    if calls != ["cli.run(main)"]:
      bad.append(path.name)
  assert not bad, f"binaries whose main does not run under cli.run: {bad}"


def test_one_describe_machine_for_the_benchmarks():
  defining = sorted(p.name for p in (PROJECT_ROOT / "benchmarks").glob("*.py")
                    if "def describe_machine" in p.read_text(encoding="utf-8")
                    or "def _describe_machine" in p.read_text(encoding="utf-8"))
  assert defining == ["machine.py"], defining


def _defined_run_flags() -> dict[str, dict]:
  """name -> {'kind', 'default'} of every flag `run_flags.define_run_flags` defines
  (recorded, not defined: absl's global FLAGS is left alone)."""
  from unittest import mock

  from absl import flags

  from lcl_jax.train import run_flags

  defined = {}

  def recorder(kind):
    def define(name, default, *args, **kwargs):
      del args, kwargs
      defined[name] = {"kind": kind, "default": default}
    return define

  kinds = ("string", "integer", "float", "bool", "enum", "list")
  with mock.patch.multiple(flags, **{f"DEFINE_{k}": recorder(k) for k in kinds}):
    run_flags.define_run_flags(encoder_default="minilm", encoder_help="h")
  return defined


def test_one_definition_per_setting_fields_and_flags_agree():
  """Every TrainConfig field is a run flag (or, flag=None, a flag each binary defines
  itself: experiments/train.py has them all); every run flag is a field (but the process
  settings); the flag's default is the field's default."""
  import dataclasses

  from absl import flags

  import experiments.train  # noqa: F401  (defines its flags: --dataset, --seed, ...)
  from lcl_jax.train import config, run_flags

  defined = _defined_run_flags()
  fields = {f.name: f for f in dataclasses.fields(config.TrainConfig)}
  assert set(fields) == {f.name for f in config.settings()}
  no_flag = sorted(n for n, f in fields.items() if f.metadata.get("flag") is None)
  assert no_flag == ["classes", "dataset", "objective", "seed", "workdir"], no_flag
  assert all(name in flags.FLAGS for name in no_flag)
  assert sorted(set(fields) - set(defined) - set(no_flag)) == []  # a field without a flag
  assert sorted(set(defined) - set(fields)) == list(run_flags._PROCESS_FLAGS)  # a flag, no field
  for name, flag in defined.items():
    if name in run_flags._PROCESS_FLAGS or name == "encoder":  # encoder: each binary's
      continue
    field = fields[name]
    assert flag["kind"] == field.metadata["flag"], name
    # (run_config caps --length_buckets at --max_length; the defaults compare uncapped.)
    value = run_flags.flag_to_field(field, flag["default"], {"max_length": 10**9})
    assert value == field.default, (name, flag["default"], field.default)
    if field.metadata["choices"] is not None:
      assert field.default in field.metadata["choices"], name


def test_every_package_has_a_docstring():
  packages = [p for root in ("lcl_jax", "experiments", "benchmarks")
              for p in (PROJECT_ROOT / root).rglob("__init__.py")]
  assert len(packages) >= 9
  missing = [str(p.relative_to(PROJECT_ROOT)) for p in packages
             if not ast.get_docstring(ast.parse(p.read_text(encoding="utf-8")))]
  assert not missing, f"packages without a docstring: {missing}"


def test_config_choices_equal_their_owners():
  """lcl_jax.train.config keeps copies of the registries' names (importing the owners
  would put Flax / JAX into every binary's --help); each copy equals its owner."""
  from lcl_jax.data import batching, goemotions
  from lcl_jax.losses import tiled
  from lcl_jax.models import baselines, classifiers, heads
  from lcl_jax.train import config, objectives, optim

  assert config.OBJECTIVES == tuple(objectives.OBJECTIVE_SPECS)
  assert config.FEATURE_POOLINGS == tuple(heads.FEATURE_POOLINGS)
  assert config.PRIMARY_HEADS == tuple(classifiers.PRIMARY_HEADS)
  assert config.CONTRASTIVE_IMPLS == tuple(tiled.IMPLEMENTATIONS)
  assert config.ADAM_EPSILON_MODES == tuple(optim.EPSILON_MODES)
  assert config.BASELINE_ENCODERS == tuple(baselines.BASELINES)
  assert config.AUX_TASKS == ("none", *goemotions.COARSE_GROUPINGS)
  assert config.DEFAULT_LENGTH_BUCKETS == tuple(batching.DEFAULT_BUCKETS)


def test_config_choices_are_their_owners_tuples_written_once():
  """The shared names are one object (lcl_jax.choices, or the owner itself), not copies;
  OBJECTIVES is derived from the objective registry; and config.py reads them without
  Flax, the data package or optax (checked in a fresh interpreter)."""
  import subprocess
  import sys

  from lcl_jax import choices
  from lcl_jax.data import batching, goemotions
  from lcl_jax.losses import tiled
  from lcl_jax.models import classifiers, heads
  from lcl_jax.train import config, objective_specs, objectives, optim

  assert config.FEATURE_POOLINGS is heads.FEATURE_POOLINGS is choices.FEATURE_POOLINGS
  assert config.PRIMARY_HEADS is classifiers.PRIMARY_HEADS is choices.PRIMARY_HEADS
  assert config.CONTRASTIVE_IMPLS is tiled.IMPLEMENTATIONS
  assert config.ADAM_EPSILON_MODES is optim.EPSILON_MODES is choices.ADAM_EPSILON_MODES
  assert config.BASELINE_ENCODERS is choices.BASELINE_ENCODERS
  assert goemotions.COARSE_GROUPINGS is choices.COARSE_GROUPINGS
  assert config.DEFAULT_LENGTH_BUCKETS is batching.DEFAULT_BUCKETS
  assert objectives.OBJECTIVE_SPECS is objective_specs.OBJECTIVE_SPECS
  source = (PROJECT_ROOT / "lcl_jax" / "train" / "config.py").read_text(encoding="utf-8")
  for name in ("FEATURE_POOLINGS", "PRIMARY_HEADS", "BASELINE_ENCODERS", "OBJECTIVES",
               "ADAM_EPSILON_MODES", "CONTRASTIVE_IMPLS", "DEFAULT_LENGTH_BUCKETS"):
    assert f"\n{name} = (" not in source, f"config.py writes {name} out again"
  probe = ("import sys, lcl_jax.train.config; "
           "print(sorted(m for m in ('flax', 'optax', 'lcl_jax.data', 'lcl_jax.models') "
           "if m in sys.modules))")
  loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True, cwd=PROJECT_ROOT).stdout.strip()
  assert loaded == "[]", loaded


def test_every_objective_carries_its_implementation():
  """Adding an objective = one registry entry: its loss function and networks."""
  from lcl_jax.train import objective_specs

  for name, spec in objective_specs.OBJECTIVE_SPECS.items():
    assert spec.name == name and callable(spec.main_loss), name
    assert spec.primary_head_for("dense1") in ("dense1", spec.primary_head), name


def _function_lengths(root: pathlib.Path) -> list[tuple[int, str]]:
  """(lines from `def` to the last line, docstring included; `path:Class.method`) of every
  function and method under `root`, longest first."""
  out = []

  def visit(node, path, prefix):
    for child in ast.iter_child_nodes(node):
      if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
        out.append((child.end_lineno - child.lineno + 1, f"{path}:{prefix}{child.name}"))
        visit(child, path, f"{prefix}{child.name}.")
      elif isinstance(child, ast.ClassDef):
        visit(child, path, f"{prefix}{child.name}.")

  for path in sorted(root.rglob("*.py")):
    visit(ast.parse(path.read_text(encoding="utf-8")), path.relative_to(PROJECT_ROOT), "")
  return sorted(out, reverse=True)


def test_no_function_in_the_package_over_80_lines():
  """Issue 21: no function or method in lcl_jax/ longer than ~80 lines (split it into
  named helpers by role); BUILD_NOTES "Renovation" lists the largest five."""
  lengths = _function_lengths(PROJECT_ROOT / "lcl_jax")
  assert len(lengths) > 500  # the walk sees the package (nested functions included)
  too_long = [(n, name) for n, name in lengths if n > 80]
  assert not too_long, too_long
