"""docs/ci.md works when followed in order on a fresh project: every command runs against a
backend that holds the stack it needs, and every setting, stack output, environment, secret,
URN and file it names exists (tests/ci/docs_replay.py)."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.ci.bootstrap_harness import evaluate_bootstrap
from tests.ci.docs_replay import ROOT, Facts, command_lines, replay
from tests.ci.workflows import jobs

DOC = ROOT / "docs" / "ci.md"
SECRET = re.compile(r"\bsecrets\.(\w+)")


def _urns(plan) -> set[str]:
    by_name = {r["name"]: r for r in plan.resources}

    def chain(resource) -> list[str]:
        parent = by_name.get(resource["parent"]) if resource["parent"] else None
        return (chain(parent) if parent else []) + [resource["type"]]

    return {f"urn:pulumi:{plan.stack}::gke-voice-agents::{'$'.join(chain(r))}::{r['name']}" for r in plan.resources}


@pytest.fixture(scope="module")
def facts(request) -> Facts:
    from tests.conftest import _evaluated_once

    settings = set(yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"])
    env_secrets = {s for j in jobs() if j.environment for s in SECRET.findall(j.text())}
    repo_secrets = {s for j in jobs() if not j.environment for s in SECRET.findall(j.text())} - {"GITHUB_TOKEN"}
    return Facts(
        bootstrap_outputs=evaluate_bootstrap().outputs,
        main_settings=settings,
        urns={stack: _urns(_evaluated_once(stack)) for stack in ("dev", "prod")},
        workflow_environments={j.environment for j in jobs() if j.environment},
        environment_secrets=env_secrets,
        repository_secrets=repo_secrets,
        job_names={j.spec.get("name", j.id) for j in jobs()},
    )


def test_docs_ci_runs_in_order_on_a_fresh_project(facts):
    assert replay(DOC.read_text(), facts) == []


def test_the_replay_covers_every_step():
    """The page's commands are really read: bootstrap up and move, both stacks, both registries."""
    lines = command_lines(DOC.read_text())
    assert sum("pulumi up --stack" in line for line in lines) == 2
    assert sum(" stack init " in line for line in lines) == 2 + 2  # bootstrap twice, dev, prod
    assert any(line.startswith("pulumi login \"$bootstrap_state\"") for line in lines)


BROKEN_ORDER = """
```bash
cd bootstrap
```
"""

OLD_STEP_THREE = """
```bash
pulumi login --local
pulumi -C bootstrap stack init ci
pulumi -C bootstrap up
pulumi login "gs://bucket"
backend="$(pulumi -C bootstrap stack output stateBackendUrls --json | jq -r ".dev")"
```
"""


@pytest.mark.parametrize(("markdown", "problem"), [
    # The page before this change: step 3 logged in to the bucket, then read the bootstrap's
    # outputs, which stayed on the local backend.
    (OLD_STEP_THREE, "the bootstrap stack is not on the current backend (gs://bucket)"),
    (BROKEN_ORDER, "the replay does not know this command"),
    ("```bash\npulumi -C bootstrap up\n```\n", "stack bootstrap:ci does not exist on backend None"),
    ("```bash\npulumi login --local\npulumi -C bootstrap stack init ci\npulumi -C bootstrap up\n"
     "x=\"$(pulumi -C bootstrap stack output stateBackendUrl)\"\n```\n", "the bootstrap has no stack output stateBackendUrl"),
    ("```bash\npulumi login --local\npulumi stack init dev\npulumi config set --stack dev agentSise L\n```\n",
     "Pulumi.yaml declares no setting agentSise"),
    ("```bash\npulumi login --local\npulumi stack init dev\npulumi up --stack dev\n```\n",
     "every update runs the policy pack"),
    ("```bash\npulumi login --local\npulumi stack init dev\npulumi up --stack dev --policy-pack policy "
     "--policy-pack-config policy/dev.json --target urn:pulumi:dev::gke-voice-agents::x::y\n```\n",
     "the offline plan has no resource urn:pulumi:dev::gke-voice-agents::x::y"),
    ("```bash\ngit add Pulumi.qa.yaml\n```\n", "names Pulumi.qa.yaml, which does not exist"),
    ("```bash\ngh secret set PULUMI_ACCESS_TOKEN --repo x\n```\n", "no non-environment job reads secret PULUMI_ACCESS_TOKEN"),
    ("```bash\ngh secret set PULUMI_ACCESS_TOKEN --env staging\n```\n", "no workflow job runs in environment staging"),
])
def test_the_replay_catches_what_would_fail(facts, markdown, problem):
    """Negative controls: each broken page is reported, with the reason."""
    found = replay(markdown, facts)
    assert any(problem in p for p in found), found


def test_the_environment_steps_turn_admin_bypass_off_and_protect_main():
    text = DOC.read_text()
    bodies = re.findall(r"<<'?JSON'?\n(.*?)\nJSON", text, re.S)
    environments = [b for b in bodies if "deployment_branch_policy" in b]
    assert len(environments) == 2 and all('"can_admins_bypass": false' in b for b in environments)
    (protection,) = [b for b in bodies if "required_status_checks" in b]
    assert '"enforce_admins": true' in protection and '"allow_force_pushes": false' in protection
    contexts = re.search(r'"contexts": \[(.*?)\]', protection).group(1)
    assert {c.strip(' "') for c in contexts.split(",")} <= {j.spec.get("name", j.id) for j in jobs("pull-request.yml")}
    assert "repos/$repo/branches/main/protection" in text


def test_the_identity_table_lists_every_ci_identity(facts):
    outputs = facts.bootstrap_outputs
    emails = [outputs["previewServiceAccount"], *outputs["deployServiceAccounts"].values(), outputs["buildServiceAccount"]]
    text = DOC.read_text()
    for email in emails:
        assert f"| `{email.split('@')[0]}` |" in text, f"docs/ci.md's table misses {email}"


def test_every_file_the_page_names_exists():
    text = DOC.read_text()
    named = set(re.findall(r"`((?:[\w.-]+/)+[\w.-]+\.(?:ya?ml|json|py|sh|md))`", text))
    named |= set(re.findall(r"`(Pulumi\.\w+\.yaml)`", text)) - {"Pulumi.<stack>.yaml"}
    missing = sorted(p for p in named if "<" not in p and not (ROOT / p).exists())
    assert not missing, missing


def _listed(text: str, lead: str) -> tuple[int, set[str]]:
    """The count in `lead (N):` and the backticked names of the bullet it opens."""
    start = text.index(lead)
    bullet = text[start:text.index("\n- ", start + 1) if "\n- " in text[start + 1:] else len(text)]
    bullet = bullet.split("\n\n")[0]
    count = int(re.search(r"\((\d+)", bullet).group(1))
    return count, set(re.findall(r"`([a-z0-9.]+)`", bullet))


def test_the_api_lists_and_counts_are_the_codes():
    """docs/ci.md names the APIs the bootstrap enables, with their counts: both from the code."""
    from bootstrap.apis import ATTESTATION_APIS, HOME_APIS, KMS_APIS, STACK_APIS, STATE_APIS

    text = DOC.read_text()
    home = {a.split(".")[0] for a in (*HOME_APIS, *KMS_APIS, *ATTESTATION_APIS, *STATE_APIS)}
    count, names = _listed(text, "in the CI project (")
    assert (count, names) == (len(home), home)
    count, names = _listed(text, "in each stack's project (")
    stack = {a.split(".")[0] for a in STACK_APIS}
    assert (count, names - {"infra/apis.py", "ondemandscanning"}) == (len(stack), stack)
    from bootstrap.apis import BUILD_APIS

    assert {a.split(".")[0] for a in BUILD_APIS} <= names


def test_the_deployer_roles_and_count_are_the_codes():
    from bootstrap.roles import DEPLOYER_ROLES, PROJECT_IAM_ADMIN

    text = DOC.read_text()
    start = text.index("- Deployer roles (`bootstrap/roles.py`), ")
    bullet = text[start:text.index("\n- ", start + 1)]
    count = int(re.search(r"\), (\d+) in the stage's own project", bullet).group(1))
    named = set(re.findall(r"`(roles/[\w.]+)`", bullet))
    expected = {u.role for u in DEPLOYER_ROLES} | {PROJECT_IAM_ADMIN}
    assert (count, named) == (len(expected), expected)
