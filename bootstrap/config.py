"""The bootstrap stack's settings, parsed and validated once.

Every problem is reported at once, one line each, naming the key, the value and what would be
accepted (the same `Problem`/`ConfigError` shape the main program uses). A key the bootstrap does
not read is an error with the closest known key, never silently ignored.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from typing import Any, Mapping

from domain.settings import ConfigError, Problem
from infra.names import stack_account_ids

PROJECT = "gke-voice-agents-bootstrap"
MAIN_PROJECT = "gke-voice-agents"  # the main program's Pulumi project name (../Pulumi.yaml)

STATE_BACKENDS = ("gcs", "pulumi-cloud")
SECRETS_PROVIDERS = ("gcpkms", "passphrase")
# The DIY (gcs) backend accepts fully qualified stack names only with this literal organisation
# (Pulumi docs, "State and backends": `organization/<project>/<stack>`).
DIY_ORGANIZATION = "organization"
# Google STS refuses a token whose mapped google.subject is longer than 127 bytes
# (IAM docs, workload identity federation: attribute mappings, google.subject).
MAX_SUBJECT_BYTES = 127
BOOTSTRAP_BUCKET_SUFFIX = "bootstrap"

# Every setting of ours, with the rule shown when it is misspelt. The one list the unknown-key
# check, `read_pulumi_config` and the docs test read.
SETTINGS = (
    "githubRepository", "githubRepositoryOwnerId", "githubRepositoryId", "deployBranch", "deployWorkflow",
    "poolId", "providerId", "stateBackend", "pulumiOrganization", "stateBucketPrefix", "stateLocation",
    "stateNoncurrentDays", "secretsProvider", "kmsLocation", "secretsKeyUsers", "environments", "previewStacks",
    "buildEnvironment",
)
# Provider settings the bootstrap reads; any other `gcp:` key would be ignored, so it is refused.
PROVIDER_SETTINGS = ("gcp:project",)
ENVIRONMENT_KEYS = ("project", "githubEnvironment", "promoteFrom")
# Environment settings removed on purpose: the reason beats "unknown".
RETIRED_ENVIRONMENT_KEYS = {
    "planEnvironment": "a job that runs before the approval must not decrypt the stage's secrets or read its state, so "
                       "the gated stage's preview now runs after the approval, in its githubEnvironment (docs/ci.md); "
                       "delete the line and the GitHub environment",
}

# Identifier rules from the GCP API references (workloadIdentityPools.create,
# serviceAccounts.create, bucket naming, project ids) and GitHub's `owner/name` form.
_PROJECT_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_POOL_OR_PROVIDER_ID = re.compile(r"^[a-z0-9][a-z0-9-]{2,30}[a-z0-9]$")
_REPOSITORY = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")
_NUMERIC_ID = re.compile(r"^[0-9]{1,20}$")
# A stack key becomes part of a service account id (`ci-deploy-<stack>`, at most 30 chars).
_STACK_KEY = re.compile(r"^[a-z](?:[a-z0-9-]{0,18}[a-z0-9])?$")
# GitHub environment names land verbatim in the OIDC subject; keep them to safe characters.
_GITHUB_ENVIRONMENT = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
_BRANCH = re.compile(r"^[A-Za-z0-9._/-]{1,200}$")
_WORKFLOW = re.compile(r"^\.github/workflows/[A-Za-z0-9._-]+\.ya?ml$")
_ORGANIZATION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")
_LOCATION = re.compile(r"^[a-z]+[a-z0-9-]*[a-z0-9]$|^[A-Z]+[A-Z0-9-]*$")
_MEMBER = re.compile(r"^(user|group|serviceAccount|domain|principal|principalSet):\S+$")


def key(name: str) -> str:
    """Full config key of a bootstrap setting."""
    return f"{PROJECT}:{name}"


@dataclass(frozen=True)
class Environment:
    """One stack of the main project and the GitHub environments allowed to touch it."""

    stack: str  # the main project's stack (dev, prod)
    project: str  # that stack's gcp:project
    github_environment: str  # only jobs running in this GitHub environment may deploy it
    promote_from: str | None = None  # stack whose registry the image is copied from

    @property
    def gated(self) -> bool:
        """A promoted stage deploys only what an earlier stage ran, after its environment's
        required reviewers approve (docs/ci.md step 5): nothing before that approval may
        read its state or decrypt its secrets."""
        return self.promote_from is not None


@dataclass(frozen=True)
class BootstrapConfig:
    home_project: str  # dedicated CI project: pool, CI service accounts, state buckets, keys
    github_repository: str  # owner/name: the only repository whose tokens are accepted
    github_owner_id: str  # numeric ids: survive a renamed, deleted or re-registered owner/repository
    github_repository_id: str
    environments: tuple[Environment, ...]
    preview_stacks: tuple[str, ...]  # stacks pull requests preview: the previewer reads only these
    # GitHub environment of the deploy workflow's build job: the one identity that pushes new
    # images and signs their attestations (bootstrap/attestation.py).
    build_environment: str = "build"
    deploy_branch: str = "main"
    deploy_workflow: str = ".github/workflows/deploy.yml"
    pool_id: str = "github"
    provider_id: str = "github-actions"
    state_backend: str = "gcs"
    pulumi_organization: str = DIY_ORGANIZATION
    state_bucket_prefix: str = ""
    state_location: str = "US"
    state_noncurrent_days: int = 90
    secrets_provider: str = "gcpkms"
    kms_location: str = "global"
    secrets_key_users: tuple[str, ...] = ()  # people/groups who run `pulumi stack init` and local ups

    def environment(self, stack: str) -> Environment:
        return next(e for e in self.environments if e.stack == stack)

    @property
    def build_stacks(self) -> tuple[str, ...]:
        """Stages the build job pushes new images to: those promoted from nothing."""
        return tuple(e.stack for e in self.environments if not e.gated)

    def state_bucket(self, stack: str) -> str:
        """Each stage's own bucket, and the bootstrap's (`stack == "bootstrap"`)."""
        return f"{self.state_bucket_prefix}-{stack}"

    def qualified_stack(self, stack: str) -> str:
        return f"{self.pulumi_organization}/{MAIN_PROJECT}/{stack}"


class _Reader:
    """Collects problems instead of stopping at the first one."""

    def __init__(self, raw: Mapping[str, str]):
        self.raw = raw
        self.problems: list[Problem] = []

    def text(self, full_key: str, default: str | None, pattern: re.Pattern[str], rule: str) -> str:
        value = self.raw.get(full_key, default)
        if value is None:
            self.problems.append(Problem(full_key, None, f"required: {rule}"))
            return ""
        if not pattern.match(value):
            self.problems.append(Problem(full_key, value, rule))
        return value

    def choice(self, full_key: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self.raw.get(full_key, default)
        if value not in allowed:
            self.problems.append(Problem(full_key, value, f"must be one of {', '.join(allowed)}"))
        return value

    def integer(self, full_key: str, default: int, low: int, high: int) -> int:
        value = self.raw.get(full_key, str(default))
        try:
            number = int(value)
        except ValueError:
            self.problems.append(Problem(full_key, value, f"must be a whole number in [{low}, {high}]"))
            return default
        if not low <= number <= high:
            self.problems.append(Problem(full_key, value, f"must be in [{low}, {high}]"))
        return number

    def json(self, full_key: str, default: Any) -> Any:
        value = self.raw.get(full_key)
        if value is None:
            return default
        try:
            return json.loads(value)
        except ValueError:
            self.problems.append(Problem(full_key, value, "must be a YAML/JSON value (set it with `pulumi config set --path`)"))
            return default


def did_you_mean(name: str, known: tuple[str, ...]) -> str:
    """The closest known key: a truncated or extended name first (stateBucket -> stateBucketPrefix),
    else the most similar spelling."""
    extended = [k for k in known if k.startswith(name) or name.startswith(k)]
    close = extended[:1] or difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else f"; known: {', '.join(known)}"


def _unknown_keys(reader: _Reader) -> None:
    """A misspelt key would be ignored and its default used; refuse it instead."""
    ours = tuple(key(n) for n in SETTINGS)
    for full_key in sorted(reader.raw):
        namespace = full_key.partition(":")[0]
        if namespace == PROJECT and full_key not in ours:
            reader.problems.append(Problem(full_key, reader.raw[full_key],
                                           "is not a bootstrap setting" + did_you_mean(full_key, ours)))
        elif namespace == "gcp" and full_key not in PROVIDER_SETTINGS:
            reader.problems.append(Problem(full_key, reader.raw[full_key],
                                           "the bootstrap reads only gcp:project (every resource names its project and location)"
                                           + did_you_mean(full_key, PROVIDER_SETTINGS)))


def _environment(reader: _Reader, where: str, stack: str, settings: Any) -> Environment | None:
    if not _STACK_KEY.match(stack) or stack == BOOTSTRAP_BUCKET_SUFFIX:
        reader.problems.append(Problem(where, stack, "stack names are 1-20 lower-case letters, digits or dashes "
                                       f"(they name service accounts and buckets), not {BOOTSTRAP_BUCKET_SUFFIX}"))
    if not isinstance(settings, dict):
        reader.problems.append(Problem(where, settings, "must be a map with project and githubEnvironment"))
        return None
    for unknown in sorted(set(settings) - set(ENVIRONMENT_KEYS)):
        rule = (f"is no longer a setting: {RETIRED_ENVIRONMENT_KEYS[unknown]}" if unknown in RETIRED_ENVIRONMENT_KEYS
                else "is not an environment setting" + did_you_mean(unknown, ENVIRONMENT_KEYS))
        reader.problems.append(Problem(f"{where}.{unknown}", settings[unknown], rule))
    project = settings.get("project")
    if not isinstance(project, str) or not _PROJECT_ID.match(project):
        reader.problems.append(Problem(f"{where}.project", project, "must be a GCP project id (6-30 lower-case letters, digits, dashes)"))
    github_environment = settings.get("githubEnvironment")
    if not isinstance(github_environment, str) or not _GITHUB_ENVIRONMENT.match(github_environment):
        reader.problems.append(Problem(f"{where}.githubEnvironment", github_environment,
                                       "must be a GitHub environment name (letters, digits, . _ -)"))
    return Environment(stack, str(project), str(github_environment or ""), settings.get("promoteFrom"))


def _environments(reader: _Reader) -> tuple[Environment, ...]:
    full_key = key("environments")
    raw = reader.json(full_key, None)
    example = "{dev: {project: my-dev, githubEnvironment: dev}, prod: {project: my-prod, githubEnvironment: production, promoteFrom: dev}}"
    if not isinstance(raw, dict) or not raw:
        reader.problems.append(Problem(full_key, raw, f"required: a map of stack -> settings, e.g. {example}"))
        return ()
    found = [env for stack, settings in sorted(raw.items())
             if (env := _environment(reader, f"{full_key}.{stack}", stack, settings)) is not None]
    stacks = {e.stack for e in found}
    for env in found:
        if env.promote_from is not None and (env.promote_from not in stacks or env.promote_from == env.stack):
            reader.problems.append(Problem(f"{full_key}.{env.stack}.promoteFrom", env.promote_from,
                                           f"must name another stack of this map: {', '.join(sorted(stacks - {env.stack}))}"))
    accounts: dict[tuple[str, str], str] = {}
    for env in found:
        for account_id in stack_account_ids(env.stack).values():
            other = accounts.setdefault((env.project, account_id), env.stack)
            if other != env.stack:
                reader.problems.append(Problem(f"{full_key}.{env.stack}", env.stack, (
                    f"shares project {env.project} with stack {other} and their names agree in the characters that "
                    f"name service accounts ({account_id}): one stack's deployer would administer the other's "
                    "accounts; rename one stack or give it its own project")))
                break
    names = [e.github_environment for e in found if e.github_environment]
    if len(set(names)) != len(names):
        reader.problems.append(Problem(full_key, names, "each stack needs its own GitHub environment, "
                                       "or one identity's jobs could act as another"))
    return tuple(found)


def _members(reader: _Reader) -> tuple[str, ...]:
    full_key = key("secretsKeyUsers")
    raw = reader.json(full_key, [])
    if not isinstance(raw, list) or not all(isinstance(m, str) and _MEMBER.match(m) for m in raw):
        reader.problems.append(Problem(full_key, raw, "must be a list of IAM members such as group:platform@example.com"))
        return ()
    return tuple(raw)


def _preview_stacks(reader: _Reader, environments: tuple[Environment, ...]) -> tuple[str, ...]:
    """Default: the first stages (promoted from nothing). A pull request can run any code as the
    previewer, so whatever it previews it can read, secrets included."""
    full_key = key("previewStacks")
    stacks = sorted(e.stack for e in environments)
    default = [e.stack for e in environments if e.promote_from is None]
    raw = reader.json(full_key, default)
    if not isinstance(raw, list) or not raw or not all(isinstance(s, str) and s in stacks for s in raw):
        reader.problems.append(Problem(full_key, raw, f"must be a non-empty list of stacks from environments: {', '.join(stacks)}"))
        return ()
    if len(set(raw)) != len(raw):
        reader.problems.append(Problem(full_key, raw, "lists a stack twice"))
    for stack in raw:
        env = next(e for e in environments if e.stack == stack)
        if env.gated:
            reader.problems.append(Problem(
                full_key, raw, f"lists {stack}, which is promoted from {env.promote_from} behind its environment's "
                               f"reviewers: pull-request code runs as the previewer, so it could read {stack}'s state and "
                               f"decrypt its secrets before any approval; preview only stages promoted from nothing"))
    return tuple(raw)


def _home_is_dedicated(reader: _Reader, home: str, environments: tuple[Environment, ...]) -> None:
    """Each deployer administers service accounts and grants project roles in its own stage's
    project; if the CI identities, the pool or the state lived there, that deployer could take
    them over. They live in a project where no CI identity holds any project-level role."""
    for env in environments:
        if env.project == home:
            reader.problems.append(Problem(
                "gcp:project", home,
                f"is also the project of stack {env.stack}: its deployer could take over the CI identities, the pool "
                "and the state kept there; use a dedicated CI project (e.g. my-voice-agents-ci) that no stack deploys to"))


def environment_subject(repository: str, github_environment: str) -> str:
    """GitHub's default `sub` claim for a job that declares `environment:`."""
    return f"repo:{repository}:environment:{github_environment}"


def preview_subject(repository: str) -> str:
    """GitHub's default `sub` claim for a job triggered by `pull_request`."""
    return f"repo:{repository}:pull_request"


def github_subjects(repository: str, environments: tuple[Environment, ...],
                    extra_environments: tuple[str, ...] = ()) -> dict[str, str]:
    """Every OIDC `sub` the bootstrap binds (GitHub's default subject template): job kind -> sub."""
    subjects = {"pull_request": preview_subject(repository)}
    for name in (*(env.github_environment for env in environments), *extra_environments):
        if name:
            subjects[name] = environment_subject(repository, name)
    return subjects


def _subject_lengths(reader: _Reader, repository: str, environments: tuple[Environment, ...], build: str) -> None:
    for name, subject in github_subjects(repository, environments, (build,)).items():
        size = len(subject.encode())
        if size > MAX_SUBJECT_BYTES:
            where = key("githubRepository") if name == "pull_request" else f"{key('environments')} ({name})"
            reader.problems.append(Problem(
                where, subject,
                f"is {size} bytes as an OIDC subject; Google accepts at most {MAX_SUBJECT_BYTES}: shorten the "
                "GitHub environment or repository name"))


def _state(r: _Reader, home: str, environments: tuple[Environment, ...]) -> tuple[str, str, str]:
    backend = r.choice(key("stateBackend"), "gcs", STATE_BACKENDS)
    organization = r.raw.get(key("pulumiOrganization"))
    if backend == "pulumi-cloud":
        organization = r.text(key("pulumiOrganization"), None, _ORGANIZATION,
                              "the Pulumi Cloud organisation that owns the stacks (stack names are <org>/gke-voice-agents/<stack>)")
    elif organization is not None:
        r.problems.append(Problem(key("pulumiOrganization"), organization,
                                  f"applies to stateBackend pulumi-cloud only; the gcs backend's organisation is always {DIY_ORGANIZATION}"))
    prefix = r.text(key("stateBucketPrefix"), f"{home}-pulumi", _BUCKET, "must start a bucket name: lower-case letters, digits, dashes, dots")
    if prefix.startswith("goog"):
        r.problems.append(Problem(key("stateBucketPrefix"), prefix, "bucket names may not start with goog"))
    for suffix in [BOOTSTRAP_BUCKET_SUFFIX, *(e.stack for e in environments)]:
        if len(f"{prefix}-{suffix}") > 63:
            r.problems.append(Problem(key("stateBucketPrefix"), prefix,
                                      f"makes bucket {prefix}-{suffix} longer than 63 characters; shorten the prefix"))
    return backend, organization or DIY_ORGANIZATION, prefix


def load_bootstrap_config(raw: Mapping[str, str]) -> BootstrapConfig:
    """`raw` maps full keys (`gcp:project`, `gke-voice-agents-bootstrap:...`) to the engine's
    string form (objects as JSON). Raises ConfigError listing every problem."""
    r = _Reader(raw)
    _unknown_keys(r)
    home = r.text("gcp:project", None, _PROJECT_ID, "must be a GCP project id (6-30 lower-case letters, digits, dashes)")
    repository = r.text(key("githubRepository"), None, _REPOSITORY, "must be the repository as owner/name, e.g. my-org/gke-voice-agents")
    owner_id = r.text(key("githubRepositoryOwnerId"), None, _NUMERIC_ID, "the numeric owner id: gh api repos/<owner>/<name> --jq .owner.id")
    repository_id = r.text(key("githubRepositoryId"), None, _NUMERIC_ID, "the numeric repository id: gh api repos/<owner>/<name> --jq .id")
    branch = r.text(key("deployBranch"), "main", _BRANCH, "must be a branch name such as main")
    workflow = r.text(key("deployWorkflow"), ".github/workflows/deploy.yml", _WORKFLOW, "must be a path like .github/workflows/deploy.yml")
    pool_id = r.text(key("poolId"), "github", _POOL_OR_PROVIDER_ID, "must be 4-32 lower-case letters, digits or dashes")
    if pool_id.startswith("gcp-"):
        r.problems.append(Problem(key("poolId"), pool_id, "the gcp- prefix is reserved by Google"))
    provider_id = r.text(key("providerId"), "github-actions", _POOL_OR_PROVIDER_ID, "must be 4-32 lower-case letters, digits or dashes")
    environments = _environments(r)
    backend, organization, prefix = _state(r, home, environments)
    location = r.text(key("stateLocation"), "US", _LOCATION, "must be a Cloud Storage location such as US, EU or us-central1")
    noncurrent_days = r.integer(key("stateNoncurrentDays"), 90, 1, 3650)
    secrets = r.choice(key("secretsProvider"), "gcpkms", SECRETS_PROVIDERS)
    kms_location = r.text(key("kmsLocation"), "global", _LOCATION, "must be a Cloud KMS location such as global or us-central1")
    key_users = _members(r)
    preview_stacks = _preview_stacks(r, environments) if environments else ()
    build = r.text(key("buildEnvironment"), "build", _GITHUB_ENVIRONMENT, "must be a GitHub environment name (letters, digits, . _ -)")
    if build in {e.github_environment for e in environments}:
        r.problems.append(Problem(key("buildEnvironment"), build, "is also a stage's deploy environment: the build job "
                                  "signs attestations, which no deployer may do; give it its own environment"))
    _home_is_dedicated(r, home, environments)
    _subject_lengths(r, repository, environments, build)
    if r.problems:
        raise ConfigError(r.problems)
    return BootstrapConfig(
        home_project=home, github_repository=repository, github_owner_id=owner_id,
        github_repository_id=repository_id, environments=environments, preview_stacks=preview_stacks,
        deploy_branch=branch, deploy_workflow=workflow, pool_id=pool_id, provider_id=provider_id,
        state_backend=backend, pulumi_organization=organization, state_bucket_prefix=prefix,
        state_location=location, state_noncurrent_days=noncurrent_days, secrets_provider=secrets,
        kms_location=kms_location, secrets_key_users=key_users, build_environment=build,
    )


def read_pulumi_config() -> dict[str, str]:
    """Every setting the engine hands the program, ours and the provider's, so that keys the
    bootstrap does not know are seen (and refused) rather than skipped."""
    from pulumi.runtime.config import CONFIG, get_config_env

    everything = {**get_config_env(), **CONFIG.get()}
    return {k: v for k, v in everything.items() if k.partition(":")[0] in (PROJECT, "gcp")}
