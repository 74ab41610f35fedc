"""docs/cost.md's fixed-monthly-cost table is what the plans compute (issue 24: docs that match)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from domain.config import parse_stack_config
from domain.cost import fixed_monthly_costs, prices_for
from tooling.plan import evaluate
from domain.stackfiles import load_stack_values
from tests.conftest import FIXTURE_STACKS
from tests.infra.test_examples import EXAMPLES

DOC = Path(__file__).resolve().parents[2] / "docs" / "cost.md"
# the doc's row -> the plan's item(s)
ROWS = {
    "cluster fee": ("cluster fee",),
    "agent pods at the HPA minimum": ("pods agent-deployment",),
    "metrics adapter pod": ("pods metrics-adapter-deployment",),
    "spare capacity": ("pods spare-buffer", "pods spare-placeholders"),
    "Places tool server pods": ("pods places-deployment",),
    "Cloud SQL checkpoint database": ("checkpoints-instance",),
    "Cloud NAT (one node, one IP)": ("network-nat",),
    "KMS key version (GKE secrets)": ("secrets-key-key",),
    "KMS key version (checkpoints)": ("checkpoint-key-key",),
    "Secret Manager versions": ("secret versions",),
    "alert conditions": ("alert conditions",),
    "registry storage (estimate)": ("registry storage",),
}
STACKS = {"minimal": EXAMPLES / "minimal", "dev": FIXTURE_STACKS, "prod": FIXTURE_STACKS}


def doc_table() -> dict[str, list[str]]:
    table = DOC.read_text().split("<!-- fixed-cost:", 1)[1].split("\n\n", 1)[0]
    return {m[0].strip(): [c.strip() for c in m[1:]] for m in re.findall(r"^\| ([^|]+) \| ([^|]+) \| ([^|]+) \| ([^|]+) \|$",
                                                                          table, flags=re.M)}


def computed(stack: str) -> dict[str, float]:
    values = load_stack_values(stack, stack_dir=STACKS[stack])
    cfg = parse_stack_config(stack, values.config, values.secret_keys)
    plan = evaluate(stack, stack_dir=STACKS[stack])
    items = fixed_monthly_costs(plan.resources, cfg.region, prices_for(cfg.region, cfg.workload.gemini_model),
                                cfg.workload.cpu_bursting, registry_images=cfg.registry.keep_recent)
    return {i.item: i.usd_month for i in items}


@pytest.mark.parametrize("column, stack", enumerate(STACKS))
def test_the_doc_states_what_the_plan_computes(column, stack):
    doc = doc_table()
    got = computed(stack)
    for row, items in ROWS.items():
        value = next((got[i] for i in items if i in got), None)
        assert doc[row][column] == ("-" if value is None else f"${value:.2f}"), (stack, row)
    assert doc["total"][column] == f"${sum(got.values()):.2f}"
    assert set(got) <= {i for items in ROWS.values() for i in items}, "a billed item the doc has no row for"
