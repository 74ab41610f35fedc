"""The mutation benchmark's driver (bench/mutation.py) on a toy module: a test that checks the
boundary kills every mutant of it, a test that checks only one far value lets the boundary
mutants live, and the survivors are named by line and mutation. Runs real pytest processes
(about ten, under a second each)."""

from __future__ import annotations

import ast
import importlib.util
import io
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("bench_mutation", ROOT / "bench" / "mutation.py")
mutation = importlib.util.module_from_spec(_spec)
sys.modules["bench_mutation"] = mutation
_spec.loader.exec_module(mutation)

TOY = '''"""A toy rule."""


def adult(age: int) -> bool:
    return age >= 18
'''


def _tree(tmp_path: Path) -> Path:
    (tmp_path / "toy.py").write_text(TOY)
    (tmp_path / "test_strong.py").write_text("from toy import adult\n\n\ndef test_boundary():\n"
                                             "    assert adult(18) is True\n    assert adult(17) is False\n")
    (tmp_path / "test_weak.py").write_text("from toy import adult\n\n\ndef test_far():\n    assert adult(40)\n")
    return tmp_path


def test_every_mutant_parses_and_differs():
    mutants = mutation.mutants_of("toy.py", TOY)
    assert sorted(m.description.split(" in ")[0] for m in mutants) == [
        "'>=' -> '<'", "'>=' -> '>'", "18 -> 17", "18 -> 19", "return value -> None"]
    for m in mutants:
        changed = m.apply(TOY)
        assert changed != TOY
        ast.parse(changed)
        assert '"""A toy rule."""' in changed and "age: int" in changed  # docstring, annotations untouched


def test_a_boundary_test_kills_them_all_and_a_far_value_test_does_not(tmp_path):
    tree = _tree(tmp_path)
    suite = mutation.Suite(sys.executable, ".")
    mutants = mutation.mutants_of("toy.py", TOY)

    strong = mutation.run_target(tree, mutation.Target("toy.py", suite, ("test_strong.py",)), mutants, out=io.StringIO())
    assert (strong.mutants, strong.killed, strong.skipped) == (5, 5, "")

    printed = io.StringIO()
    weak = mutation.run_target(tree, mutation.Target("toy.py", suite, ("test_weak.py",)), mutants, out=printed)
    assert (weak.mutants, weak.killed) == (5, 2)
    assert printed.getvalue().splitlines() == [
        "SURVIVED toy.py:5:11: '>=' -> '>' in `age >= 18`",
        "SURVIVED toy.py:5:18: 18 -> 17 in `18`",
        "SURVIVED toy.py:5:18: 18 -> 19 in `18`",
    ]
    assert (tree / "toy.py").read_text() == TOY, "the module is restored after the run"


SUPPRESSED = '''"""A toy rule with one equivalent site."""


def adult(age: int) -> bool:
    slack = 0  # pragma: no mutate: toy reason
    return age >= 18 + slack


NOTE, LIMIT = "# pragma: no mutate: only words in a string", 3
'''


def test_a_pragma_line_yields_no_mutants_and_they_are_counted_apart():
    """mutmut's `# pragma: no mutate`: that line's mutants are set apart (still drawn, so a seed
    draws the same sample with or without the pragma), with the reason; the other lines keep all
    of theirs, and a string holding the words is no pragma."""
    every = mutation.mutants_of("toy.py", SUPPRESSED)
    quiet = mutation.suppressed_of("toy.py", SUPPRESSED)
    assert {m.line for m in quiet} == {5} and len(quiet) == 2  # 0 -> 1, 0 -> -1
    assert {m.line for m in every if m not in quiet} == {6, 9}
    assert mutation.suppressions("toy.py", SUPPRESSED) == {5: "toy reason"}


def test_a_pragma_without_its_reason_stops_the_run():
    source = SUPPRESSED.replace("# pragma: no mutate: toy reason", "# pragma: no mutate")
    with pytest.raises(SystemExit, match=r"toy.py:5: `# pragma: no mutate` needs its reason"):
        mutation.suppressions("toy.py", source)
