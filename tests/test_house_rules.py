"""House rules of the repository's layout (issue 21): checked from the sources."""
import ast
import pathlib

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_every_binary_reports_user_errors_in_one_line():
  """Each experiments/ binary runs `app.run(cli.report_user_errors(main))`, so a bad flag
  or input prints one `error: ...` line, not a traceback."""
  binaries = sorted(p for p in (PROJECT_ROOT / "experiments").glob("*.py")
                    if p.name != "__init__.py" and "app.run(" in p.read_text(encoding="utf-8"))
  assert len(binaries) >= 10
  bad = []
  for path in binaries:
    calls = [node for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
             if isinstance(node, ast.Call) and ast.unparse(node.func) == "app.run"]
    if not calls or any(ast.unparse(c.args[0]) != "cli.report_user_errors(main)" for c in calls):
      bad.append(path.name)
  assert not bad, f"binaries whose main is not wrapped in cli.report_user_errors: {bad}"


def test_one_describe_machine_for_the_benchmarks():
  defining = sorted(p.name for p in (PROJECT_ROOT / "benchmarks").glob("*.py")
                    if "def describe_machine" in p.read_text(encoding="utf-8")
                    or "def _describe_machine" in p.read_text(encoding="utf-8"))
  assert defining == ["machine.py"], defining
