"""deploy.yml's guarantees that need more than a glance at the YAML: re-runs are no-ops for the
image, no run rolls a stage back to an older commit, and prod applies the plan reviewers saw.

The order check is the workflow's own `run:` script, executed by bash in a real git repository
with a stand-in `pulumi` that answers `stack output agentImageTag` the way the CLI does (prints
the value, or exits 255 with an error when the output does not exist)."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.ci.test_workflows import CONFIG_MAP
from tests.ci.workflows import QUALIFIED_PREFIX, job, jobs, stack_of

ORDER_STEP = {"up-dev": "Refuse an image older than the one dev runs",
              "plan-prod": "Refuse an image older than the one prod runs"}


def _named(j, name: str) -> dict:
    (step,) = [s for s in j.steps if s.get("name") == name]
    return step


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> dict[str, object]:
    """main: a -> b -> c, and a side branch off a (a commit main never had)."""
    repo = tmp_path_factory.mktemp("repo")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.email", "ci@example.com")
    _git(repo, "config", "user.name", "ci")
    shas = {}
    for name in ("a", "b", "c"):
        (repo / name).write_text(name)
        _git(repo, "add", name)
        _git(repo, "commit", "-q", "-m", name)
        shas[name] = _git(repo, "rev-parse", "HEAD")
    _git(repo, "checkout", "-q", "-b", "side", shas["a"])
    (repo / "s").write_text("s")
    _git(repo, "add", "s")
    _git(repo, "commit", "-q", "-m", "s")
    shas["side"] = _git(repo, "rev-parse", "HEAD")
    return {"repo": repo, **shas}


def _run_order_check(script: str, repo: Path, running: str | None, this_run: str, tmp_path: Path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "pulumi"
    answer = (f'echo "{running}"' if running is not None
              else 'echo "error: current stack does not have output property \'agentImageTag\'" >&2; exit 255')
    fake.write_text(f'#!/usr/bin/env bash\ncase "$1 $2 $3" in\n  "stack output agentImageTag") {answer} ;;\n  login*) ;;\n  *) exit 3 ;;\nesac\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "GITHUB_SHA": this_run,
           "STACK": "organization/gke-voice-agents/dev", "PULUMI_BACKEND_URL": "gs://b"}
    return subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("job_id", sorted(ORDER_STEP))
@pytest.mark.parametrize(("running", "this_run", "allowed"), [
    ("a", "c", True),       # newer commit over older: the normal case
    ("c", "c", True),       # re-run of the commit the stage runs
    ("c", "b", False),      # an older run re-run after a newer one deployed
    ("side", "c", False),   # the stage runs a commit main does not contain
    (None, "c", True),      # first deploy: no output yet
    ("0.1.0", "c", True),   # deployed by hand with a version tag: nothing to order against
])
def test_no_run_deploys_an_image_older_than_the_stage_runs(history, tmp_path, job_id, running, this_run, allowed):
    script = _named(job("deploy.yml", job_id), ORDER_STEP[job_id])["run"]
    sha = history.get(running, running) if running is not None else None
    done = _run_order_check(script, history["repo"], sha, history[this_run], tmp_path)
    assert (done.returncode == 0) == allowed, done.stdout + done.stderr
    if not allowed:
        assert "refusing to deploy an older image" in done.stdout


def test_the_order_check_runs_before_the_stage_changes_and_sees_the_whole_history():
    for job_id, name in ORDER_STEP.items():
        j = job("deploy.yml", job_id)
        names = [s.get("name") or s.get("uses", "").split("@")[0] for s in j.steps]
        command = next(i for i, s in enumerate(j.steps) if "command" in s.get("with", {}))
        assert names.index(name) < command, f"{job_id}: the check must run before pulumi"
        (checkout,) = j.steps_using("actions/checkout")
        assert checkout["with"]["fetch-depth"] == 0, f"{job_id}: merge-base needs the history"
        assert "agentImageTag --stack \"$STACK\"" in _named(j, name)["run"]


def test_a_rerun_reuses_the_commits_image_instead_of_pushing_again():
    """Tags are immutable: a second push of `:<sha>` with a new digest is refused."""
    build = job("deploy.yml", "build")
    existing = build.step("existing")
    (push,) = build.steps_using("docker/build-push-action")
    assert existing["env"]["REF"] == push["with"]["tags"], "the probe looks up the very tag the build pushes"
    assert "imagetools inspect \"$REF\"" in existing["run"] and "digest=" in existing["run"]
    assert push["if"] == "steps.existing.outputs.digest == ''"
    names = [s.get("id") for s in build.steps]
    assert names.index("existing") < names.index("push") < names.index("image")


def test_reviewers_see_the_prod_plan_before_they_approve_and_up_applies_it():
    plan = job("deploy.yml", "plan-prod")
    up = job("deploy.yml", "up-prod")
    assert plan.environment == "production-plan" and up.environment == "production"
    assert "plan-prod" in up.needs, "the approval is asked only once the plan exists"
    (preview,) = plan.pulumi_commands()
    (apply,) = up.pulumi_commands()
    assert preview["command"] == "preview" and apply["command"] == "up"
    assert preview["policyPacks"] == apply["policyPacks"] == "policy"
    assert preview["policyPackConfigs"] == apply["policyPackConfigs"] == "policy/prod.json"
    assert preview["comment-on-summary"] is True, "the preview is on the run's summary page"
    assert preview["config-map"] == apply["config-map"] == CONFIG_MAP
    assert stack_of(plan, preview["stack-name"]) == stack_of(up, apply["stack-name"]) == "prod"
    # The saved plan travels from the plan job to the up job, which applies it (`--plan`).
    (upload,) = plan.steps_using("actions/upload-artifact")
    (download,) = up.steps_using("actions/download-artifact")
    assert upload["with"]["name"] == download["with"]["name"]
    assert upload["with"]["path"] == preview["plan"] == apply["plan"] == "${{ runner.temp }}/prod-update-plan.json"
    assert download["with"]["path"] == "${{ runner.temp }}"
    (auth,) = plan.steps_using("google-github-actions/auth")
    assert auth["with"]["service_account"] == "${{ vars.GCP_PLAN_SERVICE_ACCOUNT }}", "the plan job only reads"


def test_the_approved_up_refuses_when_prod_state_moved_since_the_plan():
    plan = job("deploy.yml", "plan-prod")
    up = job("deploy.yml", "up-prod")
    assert plan.spec["outputs"]["state"] == "${{ steps.state.outputs.digest }}"
    fingerprint = plan.step("state")["run"]
    check = _named(up, "Refuse if prod's state moved since the plan")
    assert check["env"]["PLANNED"] == "${{ needs.plan-prod.outputs.state }}"
    assert 'pulumi stack export --stack "$STACK" | sha256sum' in fingerprint
    assert 'pulumi stack export --stack "$STACK" | sha256sum' in check["run"]
    steps = [s.get("name") or s.get("uses", "") for s in up.steps]
    assert steps.index(check["name"]) < next(i for i, s in enumerate(up.steps) if "command" in s.get("with", {}))
    preview_at = next(i for i, s in enumerate(plan.steps) if "command" in s.get("with", {}))
    assert [s.get("id") for s in plan.steps].index("state") < preview_at, "fingerprint first: a later change is caught"


def test_every_stack_name_is_fully_qualified():
    for j in jobs():
        for command in j.pulumi_commands():
            if j.workflow == "pull-request.yml":
                assert command["stack-name"] == "${{ matrix.qualified }}"
            else:
                assert stack_of(j, command["stack-name"]) in {"dev", "prod"}
        if "STACK" in j.spec.get("env", {}):
            assert j.spec["env"]["STACK"].startswith(QUALIFIED_PREFIX)
        for step in j.steps:
            assert "--stack dev" not in step.get("run", "") and "--stack prod" not in step.get("run", "")


def test_deploy_tokens_never_reach_a_pull_request():
    """Environment secrets (PULUMI_ACCESS_TOKEN, PULUMI_CONFIG_PASSPHRASE) are only used by jobs
    that declare an environment; pull requests get the read-only preview secrets."""
    for j in jobs():
        text = j.text()
        for name in ("secrets.PULUMI_ACCESS_TOKEN", "secrets.PULUMI_CONFIG_PASSPHRASE"):
            if name in text:
                assert j.environment is not None, f"{j.workflow}:{j.id} reads {name} outside an environment"
    preview = job("pull-request.yml", "preview").text()
    assert "secrets.PULUMI_PREVIEW_ACCESS_TOKEN" in preview and "secrets.PULUMI_PREVIEW_CONFIG_PASSPHRASE" in preview
