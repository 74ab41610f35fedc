"""Rules for the agent's LiveKit credentials: files from Secret Manager, nothing else.

With livekitCredentials=secretManager (k8s/livekit_files.py, k8s/livekit_secrets.py) the API
key and secret reach the agent as two files that GKE's Secret Manager add-on mounts from the
SecretProviderClass `livekit`; no environment variable carries them and no Kubernetes Secret
holds them. The SecretProviderClass is the one secret store an agent pod may mount, and the
agent's principal may read the secrets it lists, so both must list the LiveKit files and nothing
else (policy/rules/tools.py asks this module which secrets those are).
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import yaml

from infra.names import LIVEKIT_SECRET_INFIX, LIVEKIT_SECRET_LABEL
from k8s.runtime import LIVEKIT_FILES, LIVEKIT_FILES_DIR, LIVEKIT_SECRET_PROVIDER_CLASS, SECRET_MANAGER_CSI_DRIVER
from policy.rules.base import MANDATORY, Context, Finding, Resource, Rule, prop
from policy.rules.workload import AgentPod, agent_pods

SECRET_PROVIDER_CLASS = "kubernetes:secrets-store.csi.x-k8s.io/v1:SecretProviderClass"
SECRET = "gcp:secretmanager/secret:Secret"
ACCESSOR_ROLE = "roles/secretmanager.secretAccessor"
_VERSION_NAME = re.compile(r"^projects/[^/]+/secrets/(?P<secret>[A-Za-z0-9_-]+)/versions/[^/]+$")
_CREDENTIAL_VARIABLES = ("LIVEKIT_API_KEY", "LIVEKIT_API_SECRET")


def _entries(spc: Resource) -> list[Any] | None:
    try:
        entries = yaml.safe_load(prop(spc.props, "spec", "parameters", "secrets", default="") or "")
    except yaml.YAMLError:
        return None
    return entries if isinstance(entries, list) else None


def _entry_problem(entry: Any, declared: Mapping[str, Mapping[str, str]]) -> str | None:
    """Why one `secrets` entry is not a LiveKit credential file, or None."""
    if not isinstance(entry, dict):
        return f"entry {entry!r} is not a mapping"
    path, name = entry.get("path") or entry.get("fileName"), str(entry.get("resourceName", ""))
    match = _VERSION_NAME.match(name)
    if path not in LIVEKIT_FILES:
        return f"path {path!r} is not one of the LiveKit files ({', '.join(LIVEKIT_FILES)})"
    if match is None or not match["secret"].endswith(f"{LIVEKIT_SECRET_INFIX}{path}"):
        return (f"{path} comes from {name!r}, not from a LiveKit secret version "
                f"(projects/<project>/secrets/<stack>{LIVEKIT_SECRET_INFIX}{path}/versions/<version>)")
    labels = declared.get(match["secret"])
    if labels is not None and labels.get(LIVEKIT_SECRET_LABEL[0]) != LIVEKIT_SECRET_LABEL[1]:
        return f"secret {match['secret']} lacks the label {LIVEKIT_SECRET_LABEL[0]}={LIVEKIT_SECRET_LABEL[1]}"
    return None


def livekit_class(resources: list[Resource]) -> tuple[frozenset[str], list[str]]:
    """The secret ids the `livekit` SecretProviderClass mounts, and why it is not just the
    LiveKit files (empty when it is). Secrets the stack declares must carry the LiveKit label;
    `python -m policy.manifests` sees no GCP resources and checks names and paths only."""
    classes = [r for r in resources if r.type == SECRET_PROVIDER_CLASS
               and prop(r.props, "metadata", "name") == LIVEKIT_SECRET_PROVIDER_CLASS]
    if not classes:
        return frozenset(), [f"no SecretProviderClass {LIVEKIT_SECRET_PROVIDER_CLASS} is declared"]
    declared = {str(prop(r.props, "secretId")): prop(r.props, "labels", default={})
                for r in resources if r.type == SECRET}
    ids, problems = set(), []
    for spc in classes:
        if prop(spc.props, "spec", "provider") != "gke":
            problems.append(f"its provider is {prop(spc.props, 'spec', 'provider')!r}, not gke (the cluster's add-on)")
        entries = _entries(spc)
        if entries is None:
            problems.append("its parameters.secrets is not a YAML list")
            continue
        paths = [e.get("path") or e.get("fileName") for e in entries if isinstance(e, dict)]
        problems += [f"path {p} is listed twice" for p in sorted({p for p in paths if paths.count(p) > 1})]
        for entry in entries:
            problem = _entry_problem(entry, declared)
            if problem:
                problems.append(problem)
            else:
                ids.add(_VERSION_NAME.match(entry["resourceName"])["secret"])
    return frozenset(ids), problems


def _csi_mounts(pod: AgentPod) -> dict[str, str]:
    """mountPath -> volume name, for the add-on's CSI volumes of the LiveKit class."""
    volumes = {v.get("name") for v in prop(pod.spec, "volumes", default=[])
               if prop(v, "csi", "driver") == SECRET_MANAGER_CSI_DRIVER
               and prop(v, "csi", "volumeAttributes", "secretProviderClass") == LIVEKIT_SECRET_PROVIDER_CLASS}
    return {m.get("mountPath", ""): m.get("name") for m in pod.container.get("volumeMounts", []) or []
            if m.get("name") in volumes}


def _file_problems(pod: AgentPod) -> list[str]:
    mounts = _csi_mounts(pod)
    problems = []
    for file, variable in LIVEKIT_FILES.items():
        path = pod.env.get(variable)
        if path is None:
            problems.append(f"{variable} is not set: the agent reads its {file} from a file")
        elif not any(path.startswith(mount.rstrip("/") + "/") for mount in mounts):
            problems.append(f"{variable}={path} is under no mounted volume of the {SECRET_MANAGER_CSI_DRIVER} driver "
                            f"with SecretProviderClass {LIVEKIT_SECRET_PROVIDER_CLASS} (expected {LIVEKIT_FILES_DIR}/{file})")
    return problems


def _env_problems(pod: AgentPod) -> list[str]:
    problems = [f"env {e.get('name')} carries a LiveKit credential ({'from a Secret' if 'valueFrom' in e else 'in plain text'})"
                for e in pod.container.get("env", []) or [] if e.get("name") in _CREDENTIAL_VARIABLES]
    problems += [f"envFrom reads Secret {prop(s, 'secretRef', 'name')}"
                 for s in pod.container.get("envFrom", []) or [] if prop(s, "secretRef", "name")]
    return problems


def _credentials_as_files(resources: list[Resource], ctx: Context) -> list[Finding]:
    if not ctx.protected:
        return []
    pods = agent_pods(resources)
    found = [(pod.name, problem) for pod in pods for problem in _env_problems(pod) + _file_problems(pod)]
    if pods:
        found += [(LIVEKIT_SECRET_PROVIDER_CLASS, f"SecretProviderClass {LIVEKIT_SECRET_PROVIDER_CLASS}: {problem}")
                  for problem in livekit_class(resources)[1]]
    return [(name, f"{problem}; a protected stack keeps the LiveKit key and secret in Secret Manager, mounted as "
                   "files (livekitCredentials: secretManager)") for name, problem in found]


RULES: tuple[Rule, ...] = (
    Rule("livekit-credentials-as-files", MANDATORY,
         "Protected stacks give the agent its LiveKit credentials as Secret Manager files, never in env or a Secret.",
         check_stack=_credentials_as_files, config=("protected",)),
)
