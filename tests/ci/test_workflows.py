"""The GitHub workflows, linted for real (actionlint, GitHub's workflow schema) and held to the
properties a platform team relies on: least privilege, no racing or cancelled deploys, pinned
actions, a gated prod, one image promoted by digest, no long-lived keys."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from infra.images import IMAGES
from tests.ci.workflows import NAMES, ROOT, WORKFLOWS, job, jobs, load, stack_of, uses_lines

ACTIONLINT = ROOT / ".tools" / "bin" / "actionlint"

# Each release's commit, read from the action's own repository: `git rev-parse <tag>^{commit}`
# on a snapshot of the repository (the major tag points at the same commit in every case).
PINS = {
    "actions/checkout": ("3d3c42e5aac5ba805825da76410c181273ba90b1", "v7.0.1"),
    "actions/setup-python": ("5fda3b95a4ea91299a34e894583c3862153e4b97", "v7.0.0"),
    "actions/setup-go": ("b7ad1dad31e06c5925ef5d2fc7ad053ef454303e", "v7.0.0"),
    "actions/upload-artifact": ("bbbca2ddaa5d8feaa63e36b76fdaad77386f024f", "v7.0.0"),
    "google-github-actions/auth": ("7c6bc770dae815cd3e89ee6cdf493a5fab2cc093", "v3.0.0"),
    "google-github-actions/setup-gcloud": ("aa5489c8933f4cc7a4f7d45035b3b1440c9c10db", "v3.0.1"),
    "docker/setup-buildx-action": ("37fe631027851001ddb9b187196cc803df7f5f0e", "v4.3.0"),
    "docker/build-push-action": ("53b7df96c91f9c12dcc8a07bcb9ccacbed38856a", "v7.3.0"),
    "docker/login-action": ("4907a6ddec9925e35a0a9e82d7399ccc52663121", "v4.1.0"),
    "pulumi/actions": ("8e5e406f4007fca908480587cb9893c07090f58d", "v7.0.0"),
}

# Input names declared by each pinned release's action.yml. actionlint cannot check inputs of an
# action pinned by commit, so a misspelt input (silently ignored by the runner) is caught here.
INPUTS = {
    "actions/checkout": {"repository", "ref", "token", "ssh-key", "ssh-known-hosts", "ssh-strict", "ssh-user",
                         "persist-credentials", "path", "clean", "filter", "sparse-checkout",
                         "sparse-checkout-cone-mode", "fetch-depth", "fetch-tags", "show-progress", "lfs",
                         "submodules", "set-safe-directory", "github-server-url", "allow-unsafe-pr-checkout"},
    "actions/setup-python": {"python-version", "python-version-file", "cache", "architecture", "check-latest",
                             "token", "cache-dependency-path", "update-environment", "allow-prereleases",
                             "freethreaded", "pip-version"},
    "actions/setup-go": {"go-version", "go-version-file", "check-latest", "token", "cache",
                         "cache-dependency-path", "architecture", "go-download-base-url"},
    "actions/upload-artifact": {"name", "path", "if-no-files-found", "retention-days", "compression-level",
                                "overwrite", "include-hidden-files", "archive"},
    "google-github-actions/auth": {"project_id", "workload_identity_provider", "service_account", "audience",
                                   "credentials_json", "create_credentials_file", "export_environment_variables",
                                   "token_format", "delegates", "universe", "request_reason", "cleanup_credentials",
                                   "access_token_lifetime", "access_token_scopes", "access_token_subject",
                                   "id_token_audience", "id_token_include_email"},
    "google-github-actions/setup-gcloud": {"version", "project_id", "install_components", "skip_install", "cache"},
    "docker/setup-buildx-action": {"version", "driver", "driver-opts", "buildkitd-flags", "buildkitd-config",
                                   "buildkitd-config-inline", "use", "name", "endpoint", "platforms", "append",
                                   "keep-state", "cache-binary", "cleanup"},
    "docker/build-push-action": {"add-hosts", "allow", "annotations", "attests", "build-args", "build-contexts",
                                 "builder", "cache-from", "cache-to", "call", "cgroup-parent", "context", "file",
                                 "labels", "load", "network", "no-cache", "no-cache-filters", "outputs",
                                 "platforms", "provenance", "pull", "push", "sbom", "secrets", "secret-envs",
                                 "secret-files", "shm-size", "ssh", "tags", "target", "ulimit", "github-token"},
    "docker/login-action": {"registry", "username", "password", "ecr", "scope", "logout", "registry-auth"},
    "pulumi/actions": {"command", "stack-name", "pulumi-version", "pulumi-version-file", "work-dir", "comment-on-pr",
                       "comment-on-pr-number", "comment-on-summary", "github-token", "cloud-url", "secrets-provider",
                       "parallel", "message", "config-map", "expect-no-changes", "diff", "replace", "exclude",
                       "exclude-dependents", "target", "target-dependents", "policyPacks", "policyPackConfigs",
                       "refresh", "upsert", "remove", "edit-pr-comment", "color", "exclude-protected", "plan",
                       "suppress-outputs", "suppress-progress", "always-include-summary", "continue-on-error",
                       "log-verbosity", "log-flow", "debug"},
}

# What both up jobs and the prod plan hand the program: the digest built once, and the commit
# (agentImageTag) that the stack then reports as running, for the order check of later runs.
CONFIG_MAP = ("{agentImageDigest: {value: '${{ needs.build.outputs.agent-digest }}', secret: false}, "
              "placesImageDigest: {value: '${{ needs.build.outputs.places-digest }}', secret: false}, "
              "agentImageTag: {value: '${{ github.sha }}', secret: false}}")

BROKEN_WORKFLOW = """\
on: push
permissions: {}
jobs:
  a:
    runs-on: ubuntu-24.04
    permissions:
      id-token: admin
    steps:
      - run: echo "${{ github.nonexistent.thing }}"
"""


def _actionlint() -> str:
    found = str(ACTIONLINT) if ACTIONLINT.exists() else shutil.which("actionlint")
    assert found, "actionlint is not installed: run `bash scripts/setup-tools.sh`"
    return found


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=ROOT)


def _schema_check(paths: list[Path]) -> subprocess.CompletedProcess[str]:
    """check-jsonschema validates against the GitHub workflow schema it ships (no network)."""
    try:
        import check_jsonschema  # noqa: F401
    except ImportError:
        pytest.fail("check-jsonschema is missing from the infra venv: it belongs in requirements.txt")
    return _run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                 *map(str, paths)])


def _workflow_files() -> list[Path]:
    found = sorted(WORKFLOWS.glob("*.y*ml"))
    assert {p.name for p in found} == set(NAMES), "a workflow was added or renamed: extend tests/ci"
    return found


# --- real linters --------------------------------------------------------------------------------

def test_actionlint_reports_nothing():
    """actionlint (with shellcheck when present) type-checks expressions, needs, outputs and run scripts."""
    done = _run([_actionlint(), "-color=false", *map(str, _workflow_files())])
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_reports_a_broken_workflow(tmp_path):
    """Negative control: the linter really runs and really fails."""
    broken = tmp_path / "broken.yml"
    broken.write_text(BROKEN_WORKFLOW)
    done = _run([_actionlint(), "-color=false", str(broken)])
    assert done.returncode == 1 and "nonexistent" in done.stdout, done.stdout + done.stderr


def test_workflows_match_githubs_workflow_schema():
    done = _schema_check(_workflow_files())
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_schema_check_rejects_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(BROKEN_WORKFLOW)
    done = _schema_check([broken])
    assert done.returncode == 1 and "id-token" in done.stdout + done.stderr, done.stdout + done.stderr


# --- pinned actions ------------------------------------------------------------------------------

def test_every_action_is_pinned_to_a_verified_commit_with_its_version_beside_it():
    seen = set()
    for workflow, reference, comment in uses_lines():
        action, _, ref = reference.partition("@")
        assert action in PINS, f"{workflow}: {action} is not a verified pin; add its commit to PINS"
        sha, version = PINS[action]
        assert re.fullmatch(r"[0-9a-f]{40}", ref), f"{workflow}: {reference} is not pinned to a full commit"
        assert ref == sha, f"{workflow}: {action}@{ref} is not the verified commit of {version} ({sha})"
        assert comment == version, f"{workflow}: {action} needs `# {version}` beside its commit, found {comment!r}"
        seen.add(action)
    assert seen == set(PINS), f"pins never used: {sorted(set(PINS) - seen)}"


def test_every_action_input_exists_in_the_pinned_release():
    for j in jobs():
        for step in j.steps:
            if "uses" in step:
                action = step["uses"].split("@")[0]
                unknown = set(step.get("with", {})) - INPUTS[action]
                assert not unknown, f"{j.workflow}:{j.id} passes {sorted(unknown)} to {action}, which has no such input"


# --- least privilege -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_permissions_default_to_nothing_and_each_job_asks_for_what_it_uses(name):
    assert load(name)["permissions"] == {}, f"{name}: top-level permissions must be {{}}"
    for j in jobs(name):
        perms = j.spec.get("permissions")
        assert isinstance(perms, dict), f"{name}:{j.id} must declare its own permissions"
        assert perms.get("contents") == "read", f"{name}:{j.id}: contents must be read-only"
        authenticates = bool(j.steps_using("google-github-actions/auth"))
        assert (perms.get("id-token") == "write") == authenticates, \
            f"{name}:{j.id}: id-token: write exactly where GCP auth happens (auth: {authenticates})"
        comments = any(c.get("comment-on-pr") is True for c in j.pulumi_commands())
        assert (perms.get("pull-requests") == "write") == comments, \
            f"{name}:{j.id}: pull-requests: write only for the preview comment"
        assert set(perms) <= {"contents", "id-token", "pull-requests"}, f"{name}:{j.id} asks for {sorted(perms)}"


def test_checkout_never_leaves_a_token_in_the_workspace():
    for j in jobs():
        for step in j.steps_using("actions/checkout"):
            assert step.get("with", {}).get("persist-credentials") is False, f"{j.workflow}:{j.id}"


def test_auth_runs_after_checkout():
    """auth writes its (short-lived, keyless) credentials file into the workspace; a checkout
    after it would clean it away."""
    for j in jobs():
        actions = [s.get("uses", "").split("@")[0] for s in j.steps]
        if "google-github-actions/auth" in actions:
            assert actions.index("actions/checkout") < actions.index("google-github-actions/auth"), f"{j.workflow}:{j.id}"


def test_no_long_lived_keys_anywhere():
    """Only Workload Identity Federation: no JSON key input, no key file, no key resource."""
    forbidden = ("credentials_json", "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CREDENTIALS", "private_key",
                 "serviceaccount.Key", "service_account_key", "gcloud iam service-accounts keys create")
    checked = [*WORKFLOWS.glob("*.yml"), *(ROOT / "bootstrap").glob("*.py"), *(ROOT / "bootstrap").glob("*.yaml")]
    for path in checked:
        text = path.read_text()
        for word in forbidden:
            assert word not in text, f"{path.relative_to(ROOT)} mentions {word}"
    for j in jobs():
        for step in j.steps_using("google-github-actions/auth"):
            given = step["with"]
            assert given["workload_identity_provider"] == "${{ vars.GCP_WORKLOAD_IDENTITY_PROVIDER }}"
            assert given["service_account"].startswith("${{ vars."), f"{j.workflow}:{j.id}"


def test_every_job_has_a_timeout():
    for j in jobs():
        assert 0 < j.spec.get("timeout-minutes", 0) <= 90, f"{j.workflow}:{j.id} needs timeout-minutes"


# --- pull requests -------------------------------------------------------------------------------

def test_pull_requests_test_plan_build_and_preview_every_stack():
    doc = load("pull-request.yml")
    # pull_request (never pull_request_target): untrusted code gets no secrets from forks, and
    # the OIDC subject is `repo:<owner>/<name>:pull_request`, the previewer's binding.
    assert doc["on"] == {"pull_request": {"branches": ["main"]}}
    assert {"run": "bash scripts/test.sh"} in job("pull-request.yml", "test").steps

    plan = job("pull-request.yml", "plan")
    assert plan.spec["strategy"]["matrix"]["stack"] == ["dev", "prod"]
    assert any("python -m tooling.plan --stack \"$STACK\"" in s.get("run", "") for s in plan.steps)

    image = job("pull-request.yml", "image")
    builds = image.steps_using("docker/build-push-action")
    assert all(b["with"]["push"] is False for b in builds)
    assert {(b["with"]["context"], b["with"]["file"]) for b in builds} == {(i.context, i.dockerfile) for i in IMAGES.values()}, \
        "every image infra/images.py lists is built on every pull request"

    preview = job("pull-request.yml", "preview")
    # The previewed stacks are the bootstrap's previewStacks, each with its own backend.
    assert preview.spec["strategy"]["matrix"] == "${{ fromJSON(vars.PREVIEW_MATRIX) }}"
    assert preview.spec["if"] == "github.event.pull_request.head.repo.full_name == github.repository"
    assert set(preview.needs) == {"test", "plan"}
    (command,) = preview.pulumi_commands()
    assert command["command"] == "preview" and command["stack-name"] == "${{ matrix.qualified }}"
    assert command["cloud-url"] == "${{ matrix.backend }}"
    assert command["policyPacks"] == "policy"
    assert command["policyPackConfigs"] == "policy/${{ matrix.stack }}.json"
    assert command["comment-on-pr"] is True
    (auth,) = preview.steps_using("google-github-actions/auth")
    assert auth["with"]["service_account"] == "${{ vars.GCP_PREVIEW_SERVICE_ACCOUNT }}"
    assert preview.environment is None, "previews run without an environment: the preview identity is read-only"


def test_pull_requests_change_nothing():
    for j in jobs("pull-request.yml"):
        for command in j.pulumi_commands():
            assert command["command"] == "preview", f"{j.id} runs pulumi {command['command']}"
        for step in j.steps_using("docker/build-push-action"):
            assert step["with"].get("push") is False, j.id
        assert not j.steps_using("docker/login-action"), f"{j.id} logs in to a registry"


def test_policy_configs_exist_for_every_previewed_and_deployed_stack():
    for stack in ("dev", "prod"):
        assert (ROOT / "policy" / f"{stack}.json").is_file()
    assert (ROOT / "policy" / "PulumiPolicy.yaml").is_file()


# --- deploys -------------------------------------------------------------------------------------

def _commands(kind: str) -> dict[str, tuple[str, dict]]:
    """stack -> (job id, pulumi/actions inputs) for every `pulumi <kind>` of deploy.yml."""
    found: dict[str, tuple[str, dict]] = {}
    for j in jobs("deploy.yml"):
        for command in j.pulumi_commands():
            if command["command"] == kind:
                stack = stack_of(j, command["stack-name"])
                assert stack not in found, f"two jobs run {kind} for {stack}"
                found[stack] = (j.id, command)
    return found


def _up_jobs() -> dict[str, tuple[str, dict]]:
    return _commands("up")


def test_every_up_is_serialised_per_stack_and_never_cancelled():
    ups = _up_jobs()
    assert set(ups) == {"dev", "prod"}
    for stack, (job_id, command) in ups.items():
        spec = job("deploy.yml", job_id).spec
        assert spec["concurrency"] == {"group": f"deploy-{stack}", "cancel-in-progress": False}, job_id
        assert command["policyPacks"] == "policy" and command["policyPackConfigs"] == f"policy/{stack}.json"
    groups = [j.spec["concurrency"]["group"] for j in jobs("deploy.yml") if "concurrency" in j.spec]
    assert len(groups) == len(set(groups)), f"one concurrency group per stack: {groups}"
    assert "concurrency" not in load("deploy.yml"), "a workflow-level group would hold dev behind prod approvals"


def test_pull_requests_never_join_a_deploy_group():
    """GitHub keeps one pending job per group and cancels the older one: a preview queued in a
    deploy group could cancel a waiting deploy."""
    groups = [load("pull-request.yml")["concurrency"]["group"]]
    groups += [j.spec["concurrency"]["group"] for j in jobs("pull-request.yml") if "concurrency" in j.spec]
    assert all(not g.startswith("deploy-") for g in groups), groups


def test_builds_run_in_push_order():
    """Deploy jobs queue in the order their build finished; serialised builds keep that the
    commit order, so an older image is never deployed after a newer one."""
    build = job("deploy.yml", "build")
    assert build.spec["concurrency"] == {"group": "deploy-build", "cancel-in-progress": False}


def test_every_image_is_built_once_and_both_stacks_deploy_its_digest():
    """One build per entry of infra/images.py, all in the build job, each by an immutable
    per-commit tag; both ups get every digest (agentImageDigest, placesImageDigest)."""
    doc = load("deploy.yml")
    assert doc["on"] == {"push": {"branches": ["main"]}}
    pushes = [(j.id, s) for j in jobs("deploy.yml") for s in j.steps_using("docker/build-push-action")]
    assert {job_id for job_id, _ in pushes} == {"build"}, "every build is in the build job"
    built = {(s["with"]["context"], s["with"]["file"], s["with"]["tags"]) for _, s in pushes}
    expected = {(i.context, i.dockerfile, f"${{{{ steps.targets.outputs.dev }}}}/{i.name}:${{{{ github.sha }}}}")
                for i in IMAGES.values()}
    assert built == expected, "one build per image infra/images.py lists, tagged with the commit"
    assert all(s["with"]["push"] is True for _, s in pushes)

    build = job("deploy.yml", "build")
    for key in IMAGES:
        push = build.step(f"push-{key}")
        assert push["if"] == f"steps.existing.outputs.{key} == ''"
        assert build.spec["outputs"][f"{key}-digest"] == f"${{{{ steps.digests.outputs.{key} }}}}"
        assert build.step("digests")["env"][key.upper()] == (
            f"${{{{ steps.existing.outputs.{key} || steps.push-{key}.outputs.digest }}}}")
    assert "^sha256:[0-9a-f]{64}$" in build.step("digests")["run"], "each digest is validated before it is handed on"

    for stack, (job_id, command) in _up_jobs().items():
        assert "build" in job("deploy.yml", job_id).needs, job_id
        assert command["config-map"] == CONFIG_MAP, job_id
    for key, image in IMAGES.items():
        assert f"{image.digest_setting}: {{value: '${{{{ needs.build.outputs.{key}-digest }}}}'" in CONFIG_MAP


def test_every_image_has_its_build_context_and_dockerfile():
    for image in IMAGES.values():
        assert (ROOT / image.context).is_dir() and (ROOT / image.dockerfile).is_file(), image
        assert image.dockerfile.startswith(image.context + "/"), image


def test_every_pushed_digest_is_scanned_and_signed_for_every_stage():
    build = job("deploy.yml", "build")
    names = [s.get("name") or s.get("id") or s.get("uses", "") for s in build.steps]
    scan, sign = (next(s for s in build.steps if s.get("name") == n) for n in ("Scan each image", "Sign each digest for each stage"))
    assert names.index(scan["name"]) < names.index(sign["name"]), "a digest that fails the scan is never signed"
    assert "gcloud artifacts docker images scan \"$ref\" --remote" in scan["run"]
    assert "gcloud beta container binauthz attestations sign-and-create" in sign["run"]
    assert '--attestor="$ATTESTOR" --keyversion="$KEY_VERSION"' in sign["run"]
    assert sign["env"]["ATTESTOR"] == "${{ vars.BUILD_ATTESTOR }}" and sign["env"]["KEY_VERSION"] == "${{ vars.BUILD_KEY_VERSION }}"
    for image in IMAGES.values():
        assert f'"{image.name}@$' in sign["run"] and f'"$REGISTRY/{image.name}@$' in scan["run"], image.name
    assert build.spec["env"]["SIGN_FOR"].split() == ["dev", "prod"], "an attestation names the image at each stage's path"


def test_prod_is_promoted_from_dev_behind_the_production_environment():
    up_prod = job("deploy.yml", _up_jobs()["prod"][0])
    assert up_prod.environment == "production"
    assert "build" in up_prod.needs and "plan-prod" in up_prod.needs
    assert up_prod.spec["env"]["AGENT_DIGEST"] == "${{ needs.build.outputs.agent-digest }}"
    assert up_prod.spec["env"]["PLACES_DIGEST"] == "${{ needs.build.outputs.places-digest }}"
    assert up_prod.spec["env"]["SOURCE_REGISTRY"] == "${{ needs.build.outputs.registry }}"
    (copy,) = [s for s in up_prod.steps if "imagetools create" in s.get("run", "")]
    assert '"$SOURCE_REGISTRY/$image"' in copy["run"], "copies the images dev ran, by digest"
    assert 'describe "$target@$digest"' in copy["run"], "proves prod holds the very digests dev ran"
    for image in IMAGES.values():
        assert f'"{image.name}@$' in copy["run"], f"{image.name} is promoted too"
    assert not up_prod.steps_using("docker/build-push-action"), "prod never rebuilds"


def test_only_environment_jobs_act_as_a_ci_identity():
    """The deployer and builder bindings name a GitHub environment; a job outside one could not
    use them anyway, and declaring it keeps the environment's reviewers and branch rule in force."""
    for j in jobs():
        for step in j.steps_using("google-github-actions/auth"):
            if step["with"]["service_account"] == "${{ vars.GCP_DEPLOY_SERVICE_ACCOUNT }}":
                assert j.environment in {"dev", "production"}, f"{j.workflow}:{j.id}"
            elif step["with"]["service_account"] == "${{ vars.GCP_BUILD_SERVICE_ACCOUNT }}":
                assert j.environment == "build", f"{j.workflow}:{j.id}"
            else:
                assert j.environment is None, f"{j.workflow}:{j.id}"


def test_registries_come_from_the_stack_or_its_committed_file_never_a_second_setting():
    """up-prod reads prod's registry from prod's stack (it may read prod); the build job, which
    may read no stage's state, computes them from the committed stack files (infra/images.py),
    with the function the registry component itself uses (tests/ci/test_ci_consistency.py)."""
    up = job("deploy.yml", "up-prod")
    assert 'pulumi stack output registryUrl --stack "$STACK"' in up.step("registry")["run"]
    assert stack_of(up, up.spec["env"]["STACK"]) == "prod"
    targets = job("deploy.yml", "build").step("targets")["run"]
    assert ".venv/bin/python -m infra.images" in targets
    assert "pulumi" not in targets


def test_the_pulumi_cli_matches_the_sdk_pin():
    pinned = re.search(r"^pulumi==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M)
    assert pinned, "requirements.txt pins pulumi"
    for name in NAMES:
        assert load(name)["env"]["PULUMI_VERSION"] == pinned.group(1), name
    for j in jobs():
        for step in j.steps_using("pulumi/actions"):
            assert step["with"]["pulumi-version"] == "${{ env.PULUMI_VERSION }}", f"{j.workflow}:{j.id}"


def test_the_cluster_is_reached_with_the_gke_auth_plugin():
    for j in jobs():
        if any(c["command"] in {"preview", "up"} for c in j.pulumi_commands()):
            (gcloud,) = j.steps_using("google-github-actions/setup-gcloud")
            assert gcloud["with"]["install_components"] == "gke-gcloud-auth-plugin", f"{j.workflow}:{j.id}"
            assert {"run": "bash scripts/setup-infra.sh"} in j.steps, f"{j.workflow}:{j.id} needs the infra venv"


def test_the_image_name_is_the_one_the_program_deploys():
    """The build pushes `<registry>/<name>` for each entry of infra/images.py; the program pulls
    `<registry>/<agentImageName>` and `<registry>/<tool server app name>`."""
    import yaml

    from k8s.tool_server import app_name

    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]["agentImageName"]["default"]
    for stack in ("dev", "prod"):
        assert "gke-voice-agents:agentImageName" not in (yaml.safe_load(
            (ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]), f"stack {stack} overrides the image name"
    assert IMAGES["agent"].name == declared
    assert IMAGES["places"].name == app_name("places")
