"""deploy.yml's guarantees that need more than a glance at the YAML: re-runs are no-ops for the
images but never reuse an image this pipeline did not attest, no run rolls a stage back to an
older commit, and nothing before prod's approval holds an identity or a secret.

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
              "up-prod": "Refuse an image older than the one prod runs"}


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


REUSE_STEP = "Reuse this commit's images only if this pipeline attested them"


def _run_reuse_check(script: str, tmp_path: Path, pushed: dict[str, str], attested: set[str]):
    """The build job's reuse step, run by bash with stand-ins for `docker buildx imagetools
    inspect` (prints the manifest of a pushed tag, fails for a missing one, as buildx does) and
    `gcloud container binauthz attestations list` (prints one occurrence name per attestation of
    the artifact URL, nothing when there is none)."""
    from infra.images import targets

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    (tmp_path / "pushed.txt").write_text("".join(f"{ref} {digest}\n" for ref, digest in pushed.items()))
    (tmp_path / "attested.txt").write_text("".join(f"{url}\n" for url in attested))
    (bin_dir / "docker").write_text(
        '#!/usr/bin/env bash\nref="$4"\nline=$(grep -F "$ref " "$STANDIN/pushed.txt") || exit 1\n'
        'printf \'{"digest": "%s"}\\n\' "${line#* }"\n')
    (bin_dir / "gcloud").write_text(
        '#!/usr/bin/env bash\nfor a in "$@"; do case "$a" in --artifact-url=*) url="${a#*=}" ;; esac; done\n'
        'grep -qxF "$url" "$STANDIN/attested.txt" && echo "projects/p/occurrences/1"; exit 0\n')
    for tool in ("docker", "gcloud"):
        (bin_dir / tool).chmod(0o755)
    runner_temp = tmp_path / "runner"
    runner_temp.mkdir(exist_ok=True)
    import json

    (runner_temp / "targets.json").write_text(json.dumps(targets(["dev"])))
    output = tmp_path / "output.txt"
    output.write_text("")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "STANDIN": str(tmp_path), "RUNNER_TEMP": str(runner_temp),
           "GITHUB_OUTPUT": str(output), "GITHUB_SHA": "c" * 40, "REGISTRY": "r.example/p/repo",
           "ATTESTOR": "projects/ci/attestors/built-by-ci"}
    done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], env=env, capture_output=True, text=True, timeout=60)
    return done, dict(line.split("=", 1) for line in output.read_text().splitlines())


def test_a_rerun_reuses_only_images_this_pipeline_attested(tmp_path):
    """Tags are immutable, so a re-run cannot push `:<sha>` again; it reuses what is there, but
    only with this pipeline's attestation: whoever else can write to dev's registry could have
    pushed that tag first, and prod would then run their image."""
    build = job("deploy.yml", "build")
    script = _named(build, REUSE_STEP)["run"]
    agent, places = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    sha = "c" * 40
    pushed = {f"r.example/p/repo/voice-agent:{sha}": agent, f"r.example/p/repo/places-mcp:{sha}": places}
    both = {f"r.example/p/repo/voice-agent@{agent}", f"r.example/p/repo/places-mcp@{places}"}

    done, outputs = _run_reuse_check(script, tmp_path / "ok", pushed, both)
    assert done.returncode == 0, done.stderr
    assert outputs == {"agent": agent, "places": places}

    done, outputs = _run_reuse_check(script, tmp_path / "fresh", {}, set())
    assert done.returncode == 0 and outputs == {}, "nothing pushed yet: both are built"

    done, _ = _run_reuse_check(script, tmp_path / "planted", pushed, {f"r.example/p/repo/voice-agent@{agent}"})
    assert done.returncode == 1
    assert f"r.example/p/repo/places-mcp:{sha} exists ({places}) but carries no attestation" in done.stdout


def test_the_build_reads_each_stages_registry_from_its_committed_file(tmp_path):
    """The targets step, run by bash with the real `python -m infra.images`: one output per stage
    it signs for, equal to the registryUrl the stack itself exports."""
    import sys

    from tooling.plan import evaluate

    build = job("deploy.yml", "build")
    script = build.step("targets")["run"].replace(".venv/bin/python", sys.executable)
    output = tmp_path / "output.txt"
    env = {**os.environ, "RUNNER_TEMP": str(tmp_path), "GITHUB_OUTPUT": str(output), "SIGN_FOR": build.spec["env"]["SIGN_FOR"]}
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=root, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines())
    # the step reads the committed stack files, whatever a user wrote there: the program planned
    # from the same files must create the same registry
    for stage in build.spec["env"]["SIGN_FOR"].split():
        assert outputs[stage] == evaluate(stage, stack_dir=root).outputs["registryUrl"], stage
    assert outputs["host"] == outputs["dev"].split("/")[0]


def test_the_reuse_check_runs_before_any_build():
    build = job("deploy.yml", "build")
    ids = [s.get("id") or s.get("name") for s in build.steps]
    assert _named(build, REUSE_STEP)["id"] == "existing"
    assert all(ids.index("existing") < ids.index(f"push-{key}") < ids.index("digests") for key in ("agent", "places"))


def test_nothing_before_the_approval_holds_an_identity_or_a_secret():
    """plan-prod runs before anyone approves: no environment, no OIDC token, no secret; the
    first job that can read prod is the one in the production environment."""
    plan = job("deploy.yml", "plan-prod")
    up = job("deploy.yml", "up-prod")
    assert plan.environment is None and up.environment == "production"
    assert plan.spec["permissions"] == {"contents": "read"}
    assert not plan.steps_using("google-github-actions/auth") and "secrets." not in plan.text()
    assert not plan.pulumi_commands(), "an offline plan, no pulumi command against prod's backend"
    assert any('python -m tooling.plan --stack "$STAGE"' in s.get("run", "") for s in plan.steps)
    assert "plan-prod" in up.needs, "the approval is asked only once the offline plan is on the summary"
    (apply,) = up.pulumi_commands()
    assert apply["command"] == "up" and apply["policyPacks"] == "policy" and apply["policyPackConfigs"] == "policy/prod.json"
    assert apply["config-map"] == CONFIG_MAP and stack_of(up, apply["stack-name"]) == "prod"


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
