"""Numbers and names the docs state must be the code's (issue 19, item 10): a doc that drifted
from the code sends a user the wrong way exactly when they trust it."""

from __future__ import annotations

import re
from pathlib import Path

from domain.capacity import SHUTDOWN_BUDGET_S
from k8s.pod import TMP_SIZE_LIMIT
from policy.rules import MANDATORY, RULES

ROOT = Path(__file__).resolve().parent.parent


def _doc(name: str) -> str:
    return (ROOT / name).read_text()


def test_policy_doc_lists_every_rule_with_its_level():
    rows = dict(re.findall(r"^\| ([a-z0-9-]+) \| (mandatory|advisory)", _doc("docs/policy.md"), re.MULTILINE))
    assert rows == {rule.id: rule.severity for rule in RULES}


def test_policy_doc_counts_the_rules():
    mandatory = sum(rule.severity == MANDATORY for rule in RULES)
    sentence = f"{len(RULES)} rules: {mandatory} mandatory (breaks calls or security), {len(RULES) - mandatory} advisory."
    assert sentence in _doc("docs/policy.md")


def test_docs_state_the_shutdown_budget_the_code_uses():
    """docs/policy.md once said 80 s while the grace period added 100 s."""
    for name in ("docs/policy.md", "docs/workload.md"):
        stated = {int(n) for n in re.findall(r"(\d+) s shutdown", _doc(name))}
        assert stated <= {SHUTDOWN_BUDGET_S}, (name, stated)
    assert f"{SHUTDOWN_BUDGET_S} s shutdown" in _doc("docs/policy.md")


def test_agent_doc_states_the_tmp_size_limit_the_manifest_sets():
    """docs/agent.md once said 256Mi while the Deployment set 512Mi."""
    stated = set(re.findall(r"`sizeLimit` of (\d+Mi)", _doc("docs/agent.md")))
    assert stated == {TMP_SIZE_LIMIT}


def test_readme_does_not_promise_the_setup_touches_nothing_else():
    """The test command installs Debian packages; the README once said nothing else is touched."""
    readme = _doc("README.md")
    assert "nothing else is touched" not in readme
    assert "apt-get" in readme.split("## What this is")[0]


def test_settings_tables_name_only_settings_that_exist():
    """A table row for a removed setting (spotPods) once outlived the setting."""
    from domain.stackfiles import project_declarations

    declared = {key.split(":", 1)[1] for key in project_declarations()}
    text = _doc("docs/workload.md")
    table = text.split("## Config errors of the workload")[1].split("\n## ")[0]
    rows = re.findall(r"^\| `([A-Za-z]+)` \|", table, re.MULTILINE)
    assert rows and set(rows) <= declared, set(rows) - declared
