"""Example stacks a user copies (examples/<name>/), planned as Fabric tests its README examples:
each README shows its stack file verbatim, the file plans clean under its own policy config, and
what it creates is checked against a reviewed inventory (tests/infra/inventory_example_<name>.json;
regenerate with `.venv/bin/python -m tests.infra.test_examples` and review the diff)."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import pytest

from tooling.plan import PlanResult, evaluate
from policy.engine import evaluate_plan, load_policy_config
from tests.infra.test_inventory import counts

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
NAMES = ("minimal", "production", "byo-agent", "livekit-cloud")
P = "gke-voice-agents:"


@functools.lru_cache(maxsize=None)
def plan_example(name: str) -> PlanResult:
    return evaluate(name, stack_dir=EXAMPLES / name)


def policy_config(name: str) -> dict[str, Any]:
    own = EXAMPLES / name / "policy.json"
    return load_policy_config("policy", own.parent) if own.exists() else load_policy_config(name)


def chosen(plan: PlanResult) -> dict[str, Any]:
    """The values a reviewer of an example wants to see move."""
    cluster = plan.one("gcp:container/cluster:Cluster")["inputs"]
    sql = plan.of_type("gcp:sql/databaseInstance:DatabaseInstance")
    agent = plan.named("agent-deployment")["inputs"]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in agent["env"]}
    return {
        "database": None if not sql else {"tier": sql[0]["inputs"]["settings"]["tier"],
                                          "availability": sql[0]["inputs"]["settings"]["availabilityType"]},
        "secretsEncryption": "databaseEncryption" in cluster,
        "binaryAuthorization": "binaryAuthorization" in cluster,
        "deletionProtection": cluster["deletionProtection"],
        "image": agent["image"],
        "agentName": env.get("AGENT_NAME"),
        "recoveryWatcher": env.get("AGENT_RECOVERY_WATCHER"),
    }


def inventory(name: str) -> dict[str, Any]:
    plan = plan_example(name)
    return {"counts": counts(plan), "chosen": chosen(plan)}


def inventory_file(name: str) -> Path:
    return ROOT / "tests" / "infra" / f"inventory_example_{name}.json"


@pytest.mark.parametrize("name", NAMES)
def test_the_example_plans_as_reviewed(name):
    assert inventory(name) == json.loads(inventory_file(name).read_text()), (
        f"regenerate with `.venv/bin/python -m tests.infra.test_examples` and review the diff for {name}")


@pytest.mark.parametrize("name", NAMES)
def test_the_example_passes_its_policy_config(name):
    plan = plan_example(name)
    violations = evaluate_plan(plan.resources, name, policy_config(name))
    assert [v for v in violations if v["severity"] == "mandatory"] == []


@pytest.mark.parametrize("name", NAMES)
def test_the_readme_shows_the_file_and_the_command(name):
    readme = (EXAMPLES / name / "README.md").read_text()
    stack = (EXAMPLES / name / f"Pulumi.{name}.yaml").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", readme, flags=re.S)
    assert blocks == [stack], "the README's block must be the stack file as committed"
    assert f"python -m tooling.plan --stack {name} --stack-dir examples/{name}" in readme


def test_minimal_is_three_keys_and_nothing_billed_that_was_not_chosen():
    config = (EXAMPLES / "minimal" / "Pulumi.minimal.yaml").read_text()
    keys = re.findall(r"^  ([\w:-]+):", config, flags=re.M)
    assert keys == ["gcp:project", "gcp:region", P + "livekitUrl"]
    c = chosen(plan_example("minimal"))
    assert c["database"] is None and c["secretsEncryption"] is False and c["binaryAuthorization"] is False
    plan = plan_example("minimal")
    assert not plan.of_type("gcp:kms/keyRing:KeyRing") and not plan.of_type("gcp:sql/databaseInstance:DatabaseInstance")
    assert not [r for r in plan.resources if r["name"].startswith(("places", "spare"))]


def test_production_chooses_every_production_part():
    c = chosen(plan_example("production"))
    assert c["database"] == {"tier": "db-custom-2-7680", "availability": "REGIONAL"}
    assert c["secretsEncryption"] and c["binaryAuthorization"] and c["deletionProtection"]


def test_examples_are_not_the_test_fixtures():
    for name in NAMES:
        text = (EXAMPLES / name / f"Pulumi.{name}.yaml").read_text()
        assert "gva-fixture" not in text and "my-project-id" in text


if __name__ == "__main__":
    for example in NAMES:
        inventory_file(example).write_text(json.dumps(inventory(example), indent=2, sort_keys=True) + "\n")
        print(f"wrote {inventory_file(example)}")
