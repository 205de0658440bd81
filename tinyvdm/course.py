"""The course mechanics: exercises are generated from solutions, and a learner checks one.

A solution notebook marks each answer, inside a function body, with the nbgrader markers

    ### BEGIN SOLUTION
    ...the answer...
    ### END SOLUTION

`build()` writes `exercises/` with each answer replaced by `raise NotImplementedError`
and all outputs cleared. `check("00")` runs an exercise under nbval, as a learner would:
`pytest --nbval-lax --nbval-current-env exercises/00_….ipynb`.
"""
from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS, EXERCISES = ROOT / "solutions", ROOT / "exercises"
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = 'raise NotImplementedError("exercise: replace this line with your code")'


def strip_solutions(source: str, where: str = "cell") -> str:
    """Replace every BEGIN…END block by a stub at the marker's indentation."""
    out, inside = [], False
    for n, line in enumerate(source.splitlines(), 1):
        mark = line.strip()
        if mark == BEGIN:
            if inside:
                raise ValueError(f"{where}, line {n}: {BEGIN} inside another solution block")
            inside = True
            out.append(line[: len(line) - len(line.lstrip())] + STUB)
        elif mark == END:
            if not inside:
                raise ValueError(f"{where}, line {n}: {END} without a {BEGIN} before it")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{where}: {BEGIN} is never closed by {END}")
    return "\n".join(out)


def make_exercise(solution: nbformat.NotebookNode, name: str = "notebook") -> nbformat.NotebookNode:
    """The learner's version of a solution notebook: answers stubbed, outputs cleared."""
    nb = copy.deepcopy(solution)
    for k, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            cell.source = strip_solutions(cell.source, f"{name}, cell {k}")
            cell.outputs, cell.execution_count = [], None
    return nb


def expected_exercises(solutions: Path = SOLUTIONS) -> dict[str, str]:
    """File name -> the exact text each generated exercise notebook should have."""
    out = {}
    for path in sorted(solutions.glob("*.ipynb")):
        nb = make_exercise(nbformat.read(path, as_version=4), path.name)
        out[path.name] = nbformat.writes(nb) + "\n"
    return out


def build(solutions: Path = SOLUTIONS, exercises: Path = EXERCISES) -> list[Path]:
    """(Re)write exercises/ from solutions/; exercises with no solution are removed."""
    exercises.mkdir(exist_ok=True)
    wanted = expected_exercises(solutions)
    for old in exercises.glob("*.ipynb"):
        if old.name not in wanted:
            old.unlink()
    for name, text in wanted.items():
        (exercises / name).write_text(text)
    return [exercises / name for name in wanted]


def stale(solutions: Path = SOLUTIONS, exercises: Path = EXERCISES) -> list[str]:
    """Names of exercises that are missing, extra, or differ from what build() would write."""
    wanted = expected_exercises(solutions)
    have = {p.name: p.read_text() for p in exercises.glob("*.ipynb")}
    return sorted(n for n in set(wanted) | set(have) if wanted.get(n) != have.get(n))


def find(number: str, folder: Path = EXERCISES) -> Path:
    """`"00"`, `"0"` or a file name -> the notebook in `folder`."""
    key = f"{int(number):02d}_" if re.fullmatch(r"\d+", number) else number
    hits = sorted(p for p in folder.glob("*.ipynb") if p.name.startswith(key))
    if not hits:
        names = ", ".join(p.name for p in sorted(folder.glob("*.ipynb"))) or "none"
        raise FileNotFoundError(f"no notebook starting with {key!r} in {folder}; there are: {names}")
    return hits[0]


def check(number: str, solution: bool = False) -> int:
    """Run one exercise (or its solution) under nbval, as a learner would; returns pytest's exit code."""
    path = find(number, SOLUTIONS if solution else EXERCISES)
    cmd = [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider", str(path)]
    print("$", " ".join(cmd[2:]))
    return subprocess.call(cmd, cwd=ROOT)


def main(argv: list[str]) -> int:
    usage = "usage: python -m tinyvdm.course build | python -m tinyvdm.course check NN [--solution]"
    if argv == ["build"]:
        for p in build():
            print("wrote", p.relative_to(ROOT))
        return 0
    if argv[:1] == ["check"] and len(argv) in (2, 3) and argv[2:] in ([], ["--solution"]):
        try:
            return check(argv[1], solution=argv[2:] == ["--solution"])
        except FileNotFoundError as e:
            print(e, file=sys.stderr)
            return 2
    print(usage, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
