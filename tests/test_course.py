"""The course harness: exercises are generated from solutions and fail only at their stubs."""
import nbformat
import pytest
from nbclient import NotebookClient

from tinyvdm import course

EXERCISES = sorted(course.EXERCISES.glob("*.ipynb"))


def test_strip_solutions_keeps_indentation_and_the_rest():
    src = "def f(x):\n    y = 1\n    ### BEGIN SOLUTION\n    return x + y\n    ### END SOLUTION\nprint(f)"
    assert course.strip_solutions(src) == f"def f(x):\n    y = 1\n    {course.STUB}\nprint(f)"


@pytest.mark.parametrize("src, msg", [
    ("### BEGIN SOLUTION\nx = 1", "never closed"),
    ("x = 1\n### END SOLUTION", "without"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "inside another"),
])
def test_unbalanced_markers_are_errors(src, msg):
    with pytest.raises(ValueError, match=msg):
        course.strip_solutions(src, "nb.ipynb, cell 3")


def test_exercises_are_up_to_date_with_solutions():
    stale = course.stale()
    assert not stale, f"exercises/ is out of date for {stale}: run `python -m tinyvdm build-exercises`"


def test_every_solution_has_answers_and_no_exercise_keeps_one():
    def code(path):
        return "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")

    for path in sorted(course.SOLUTIONS.glob("*.ipynb")):
        assert course.BEGIN in code(path), f"{path.name} marks no answer"
    for path in EXERCISES:
        assert course.BEGIN not in code(path) and course.STUB in code(path), path.name


@pytest.mark.parametrize("path", EXERCISES, ids=[p.name for p in EXERCISES])
def test_exercise_fails_only_at_its_stubs(path):
    """Run the learner's version: every error must be the stub's NotImplementedError."""
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, allow_errors=True, resources={"metadata": {"path": str(path.parent)}}).execute()
    errors = [(k, o.ename) for k, c in enumerate(nb.cells) if c.cell_type == "code"
              for o in c.outputs if o.output_type == "error"]
    assert errors, f"{path.name} ran without any error: its stubs are never called"
    wrong = [(k, e) for k, e in errors if e != "NotImplementedError"]
    assert not wrong, f"{path.name}: cells fail with something other than the stub's NotImplementedError: {wrong}"


def test_find_and_check_report_missing_notebooks(capsys):
    with pytest.raises(FileNotFoundError, match="99_"):
        course.find("99")
    assert course.main(["check", "99"]) == 2
    assert course.main(["nonsense"]) == 2
