"""The bootstrap stack's settings, parsed and validated once.

Every problem is reported at once, one line each, naming the key, the value and what would be
accepted (the same `Problem`/`ConfigError` shape the main program uses).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Mapping

from infra.settings import ConfigError, Problem

PROJECT = "gke-voice-agents-bootstrap"

STATE_BACKENDS = ("gcs", "pulumi-cloud")
SECRETS_PROVIDERS = ("gcpkms", "passphrase")

# Identifier rules from the GCP API references (workloadIdentityPools.create,
# serviceAccounts.create, bucket naming, project ids) and GitHub's `owner/name` form.
_PROJECT_ID = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_POOL_OR_PROVIDER_ID = re.compile(r"^[a-z0-9][a-z0-9-]{2,30}[a-z0-9]$")
_REPOSITORY = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")
_OWNER_ID = re.compile(r"^[0-9]{1,20}$")
# A stack key becomes part of a service account id (`ci-deploy-<stack>`, at most 30 chars).
_STACK_KEY = re.compile(r"^[a-z](?:[a-z0-9-]{0,18}[a-z0-9])?$")
# GitHub environment names land verbatim in the OIDC subject; keep them to safe characters.
_GITHUB_ENVIRONMENT = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")
_LOCATION = re.compile(r"^[a-z]+[a-z0-9-]*[a-z0-9]$|^[A-Z]+[A-Z0-9-]*$")
_MEMBER = re.compile(r"^(user|group|serviceAccount|domain|principal|principalSet):\S+$")


def key(name: str) -> str:
    """Full config key of a bootstrap setting."""
    return f"{PROJECT}:{name}"


@dataclass(frozen=True)
class Environment:
    """One stack of the main project and the GitHub environment allowed to deploy it."""

    stack: str  # the main project's stack (dev, prod)
    project: str  # that stack's gcp:project
    github_environment: str  # only jobs running in this GitHub environment may deploy it
    promote_from: str | None = None  # stack whose registry the image is copied from


@dataclass(frozen=True)
class BootstrapConfig:
    home_project: str  # holds the identity pool, the CI service accounts, the state and keys
    github_repository: str  # owner/name: the only repository whose tokens are accepted
    github_owner_id: str | None  # numeric owner id: survives a deleted and re-registered owner name
    environments: tuple[Environment, ...]
    pool_id: str = "github"
    provider_id: str = "github-actions"
    state_backend: str = "gcs"
    state_bucket: str = ""
    state_location: str = "US"
    state_noncurrent_days: int = 90
    secrets_provider: str = "gcpkms"
    kms_location: str = "global"
    secrets_key_users: tuple[str, ...] = ()  # people/groups who run `pulumi stack init` and local ups

    def environment(self, stack: str) -> Environment:
        return next(e for e in self.environments if e.stack == stack)


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
            self.problems.append(Problem(full_key, value, "must be a YAML/JSON object (set it with `pulumi config set --path`)"))
            return default


def _environments(reader: _Reader) -> tuple[Environment, ...]:
    full_key = key("environments")
    raw = reader.json(full_key, None)
    example = "{dev: {project: my-dev, githubEnvironment: dev}, prod: {project: my-prod, githubEnvironment: production, promoteFrom: dev}}"
    if not isinstance(raw, dict) or not raw:
        reader.problems.append(Problem(full_key, raw, f"required: a map of stack -> settings, e.g. {example}"))
        return ()
    found: list[Environment] = []
    for stack, settings in sorted(raw.items()):
        where = f"{full_key}.{stack}"
        if not _STACK_KEY.match(stack):
            reader.problems.append(Problem(where, stack, "stack names are 1-20 lower-case letters, digits or dashes (they name service accounts)"))
        if not isinstance(settings, dict):
            reader.problems.append(Problem(where, settings, "must be a map with project and githubEnvironment"))
            continue
        unknown = sorted(set(settings) - {"project", "githubEnvironment", "promoteFrom"})
        if unknown:
            reader.problems.append(Problem(where, unknown, "unknown keys; allowed: project, githubEnvironment, promoteFrom"))
        project = settings.get("project")
        if not isinstance(project, str) or not _PROJECT_ID.match(project):
            reader.problems.append(Problem(f"{where}.project", project, "must be a GCP project id (6-30 lower-case letters, digits, dashes)"))
        environment = settings.get("githubEnvironment")
        if not isinstance(environment, str) or not _GITHUB_ENVIRONMENT.match(environment):
            reader.problems.append(Problem(f"{where}.githubEnvironment", environment, "must be a GitHub environment name (letters, digits, . _ -)"))
        found.append(Environment(stack, str(project), str(environment), settings.get("promoteFrom")))
    stacks = {e.stack for e in found}
    for env in found:
        if env.promote_from is not None and (env.promote_from not in stacks or env.promote_from == env.stack):
            reader.problems.append(Problem(f"{full_key}.{env.stack}.promoteFrom", env.promote_from,
                                           f"must name another stack of this map: {', '.join(sorted(stacks - {env.stack}))}"))
    names = [e.github_environment for e in found]
    if len(set(names)) != len(names):
        reader.problems.append(Problem(full_key, names, "each stack needs its own GitHub environment, or one deployer could deploy both"))
    return tuple(found)


def _members(reader: _Reader) -> tuple[str, ...]:
    full_key = key("secretsKeyUsers")
    raw = reader.json(full_key, [])
    if not isinstance(raw, list) or not all(isinstance(m, str) and _MEMBER.match(m) for m in raw):
        reader.problems.append(Problem(full_key, raw, "must be a list of IAM members such as group:platform@example.com"))
        return ()
    return tuple(raw)


def _home_outside_lower_stages(reader: _Reader, home: str, environments: tuple[Environment, ...]) -> None:
    """A deployer administers service accounts in its project (it creates the node service
    account), so it could take over any CI identity living there. The CI identities may share a
    project only with the last stage of the promotion chain, never with a stage promoted from."""
    for source in sorted({e.promote_from for e in environments if e.promote_from}):
        env = next((e for e in environments if e.stack == source), None)
        if env is not None and env.project == home:
            reader.problems.append(Problem(
                "gcp:project", home,
                f"is also the project of stack {source}, which is promoted from: its deployer could take over "
                "the CI service accounts; use the last stage's project or a dedicated CI project"))


def load_bootstrap_config(raw: Mapping[str, str]) -> BootstrapConfig:
    """`raw` maps full keys (`gcp:project`, `gke-voice-agents-bootstrap:...`) to the engine's
    string form (objects as JSON). Raises ConfigError listing every problem."""
    r = _Reader(raw)
    home = r.text("gcp:project", None, _PROJECT_ID, "must be a GCP project id (6-30 lower-case letters, digits, dashes)")
    repository = r.text(key("githubRepository"), None, _REPOSITORY, "must be the repository as owner/name, e.g. my-org/gke-voice-agents")
    owner_id = raw.get(key("githubRepositoryOwnerId")) or None
    if owner_id is not None and not _OWNER_ID.match(owner_id):
        r.problems.append(Problem(key("githubRepositoryOwnerId"), owner_id, "must be the numeric owner id (gh api users/<owner> --jq .id)"))
    pool_id = r.text(key("poolId"), "github", _POOL_OR_PROVIDER_ID, "must be 4-32 lower-case letters, digits or dashes")
    if pool_id.startswith("gcp-"):
        r.problems.append(Problem(key("poolId"), pool_id, "the gcp- prefix is reserved by Google"))
    provider_id = r.text(key("providerId"), "github-actions", _POOL_OR_PROVIDER_ID, "must be 4-32 lower-case letters, digits or dashes")
    backend = r.choice(key("stateBackend"), "gcs", STATE_BACKENDS)
    bucket = r.text(key("stateBucket"), f"{home}-pulumi-state", _BUCKET, "must be a bucket name: 3-63 lower-case letters, digits, dashes, dots")
    if bucket.startswith("goog"):
        r.problems.append(Problem(key("stateBucket"), bucket, "bucket names may not start with goog"))
    location = r.text(key("stateLocation"), "US", _LOCATION, "must be a Cloud Storage location such as US, EU or us-central1")
    noncurrent_days = r.integer(key("stateNoncurrentDays"), 90, 1, 3650)
    secrets = r.choice(key("secretsProvider"), "gcpkms", SECRETS_PROVIDERS)
    kms_location = r.text(key("kmsLocation"), "global", _LOCATION, "must be a Cloud KMS location such as global or us-central1")
    environments = _environments(r)
    key_users = _members(r)
    _home_outside_lower_stages(r, home, environments)
    if r.problems:
        raise ConfigError(r.problems)
    return BootstrapConfig(
        home_project=home, github_repository=repository, github_owner_id=owner_id,
        environments=environments, pool_id=pool_id, provider_id=provider_id,
        state_backend=backend, state_bucket=bucket, state_location=location,
        state_noncurrent_days=noncurrent_days, secrets_provider=secrets,
        kms_location=kms_location, secrets_key_users=key_users,
    )


def read_pulumi_config() -> dict[str, str]:
    """The raw settings as the engine hands them to the program."""
    import pulumi

    names = ("githubRepository", "githubRepositoryOwnerId", "poolId", "providerId", "stateBackend",
             "stateBucket", "stateLocation", "stateNoncurrentDays", "secretsProvider", "kmsLocation",
             "environments", "secretsKeyUsers")
    ours = pulumi.Config(PROJECT)
    raw = {key(n): ours.get(n) for n in names}
    raw["gcp:project"] = pulumi.Config("gcp").get("project")
    return {k: v for k, v in raw.items() if v is not None}
