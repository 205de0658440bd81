"""environment.yml (for conda users) names the same packages as pyproject.toml."""
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"pytorch-cpu": "torch"}  # conda-forge name -> PyPI name


def _names(specs):
    return {re.split(r"[<>=!~\[ ]", s.strip(), maxsplit=1)[0].lower() for s in specs}


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = _names(project["dependencies"] + extras["notebooks"] + extras["tests"])
    listed = set()
    text = (ROOT / "environment.yml").read_text()
    for line in text[text.index("dependencies:"):].splitlines():
        m = re.match(r"\s+- ([A-Za-z][\w.-]*)", line)
        if m and m.group(1) not in ("python", "pip"):
            name = m.group(1).lower()
            listed.add(CONDA_NAMES.get(name, name))
    assert wanted == listed, \
        f"only in pyproject: {sorted(wanted - listed)}; only in environment.yml: {sorted(listed - wanted)}"


def test_setup_pins_the_cpu_torch_before_anything_else():
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert setup.index('"torch==') < setup.index("pip install -q -e")
