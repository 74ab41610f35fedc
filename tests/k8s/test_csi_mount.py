"""The stack's SecretProviderClass and IAM grants, mounted by the real provider.

GKE's Secret Manager add-on derives from secrets-store-csi-driver-provider-gcp; the harness
(tests/k8s/csi_mount, built by scripts/setup-csi-mount.sh) runs that provider's own
`server.Server.Mount` (v1.7.0, unchanged) against imitations of the GCE metadata server, the
Kubernetes API, the identity-binding-token endpoint and Secret Manager. The inputs come from the
offline plan: the class's parameters, the cluster, the stack's Kubernetes service accounts and
every IAM grant of the project and its secrets. Guards against a class the provider reads
differently from what we render, and against grants that give the credentials to any pod but the
agent's (or to the agent through a grant the plan does not make).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.identity import workload_principal
from tooling.mocks import FAKE_PROJECT_NUMBER
from infra.names import livekit_secret_id
from tooling.plan import PlanResult
from k8s import runtime
from tests.k8s.rendered import pod_of

pytestmark = pytest.mark.integration  # starts the harness process

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ROOT / "tests" / "k8s" / "csi_mount"
HARNESS = ROOT / ".tools" / "bin" / "csi-mount"
SETUP = "bash scripts/setup-csi-mount.sh"

# The plan masks the versions' data; each version gets a known value instead.
VALUES = {"api-key": "APIk3yFromTheTest", "api-secret": "s3cret-from-the-test-0123456789"}
# The driver's file permission for every mount (secrets-store-csi-driver nodeserver.go: 0644).
MODE = 0o644

# IAM grant forms read here; a policy-shaped resource (IAMPolicy, SecretIamPolicy) would need
# its own reading, so _grants refuses to guess.
SECRET_GRANTS = ("gcp:secretmanager/secretIamMember:SecretIamMember", "gcp:secretmanager/secretIamBinding:SecretIamBinding")
PROJECT_GRANTS = ("gcp:projects/iAMMember:IAMMember", "gcp:projects/iAMBinding:IAMBinding")
UNREAD_GRANTS = ("gcp:secretmanager/secretIamPolicy:SecretIamPolicy", "gcp:projects/iAMPolicy:IAMPolicy")


def _harness() -> Path:
    if shutil.which("go") is None and not HARNESS.exists():
        pytest.fail(f"Go is missing, so the CSI mount harness cannot be built: install Go (https://go.dev/dl/), then run `{SETUP}`")
    if not HARNESS.exists():
        pytest.fail(f"{HARNESS.relative_to(ROOT)} is missing: run `{SETUP}`")
    files = [SOURCES / "go.mod", SOURCES / "go.sum", *sorted(SOURCES.glob("*.go"))]
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in files)).hexdigest()
    stamp = HARNESS.parent / "csi-mount.sources"  # written by the setup script
    if not stamp.exists() or stamp.read_text().strip() != digest:
        pytest.fail(f"{HARNESS.relative_to(ROOT)} was built from other sources than {SOURCES.relative_to(ROOT)}: run `{SETUP}`")
    return HARNESS


def _mount(world: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run([str(_harness())], input=json.dumps(world), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"harness failed ({done.returncode}): {done.stderr}"
    return json.loads(done.stdout)


def _project(plan: PlanResult) -> str:
    [project] = {s["inputs"]["project"] for s in plan.of_type("gcp:secretmanager/secret:Secret")}
    return project


def _secrets(plan: PlanResult) -> dict[str, Any]:
    """Each of the plan's secrets with its versions (the plan creates one), valued VALUES[file]."""
    project = _project(plan)
    by_id = {livekit_secret_id(plan.stack, file): value for file, value in VALUES.items()}
    secrets = {}
    for secret in plan.of_type("gcp:secretmanager/secret:Secret"):
        secret_id = secret["inputs"]["secretId"]
        versions = [v for v in plan.of_type("gcp:secretmanager/secretVersion:SecretVersion")
                    if v["inputs"]["secret"] == f"projects/{project}/secrets/{secret_id}"]
        secrets[secret_id] = {"versions": [{"data": by_id[secret_id]} for _ in versions]}
    return secrets


def _grants(plan: PlanResult) -> list[dict[str, str]]:
    """Every IAM member the plan grants on the project or on a secret."""
    unread = [r["name"] for r in plan.resources if r["type"] in UNREAD_GRANTS]
    assert not unread, f"policy-shaped IAM resources this test cannot read: {unread}"
    grants = []
    for r in plan.resources:
        inputs = r["inputs"]
        if r["type"] in SECRET_GRANTS:
            resource = f"projects/{inputs['project']}/secrets/{inputs['secretId']}"
        elif r["type"] in PROJECT_GRANTS:
            resource = f"projects/{inputs['project']}"
        else:
            continue
        members = [inputs["member"]] if "member" in inputs else inputs["members"]
        grants += [{"resource": resource, "role": inputs["role"], "member": m} for m in members]
    return grants


def _service_accounts(plan: PlanResult) -> list[dict[str, Any]]:
    """The stack's KSAs, plus the `default` KSA the API server puts in each of its namespaces
    (a pod that names none runs as it)."""
    accounts = [{"metadata": r["inputs"]["metadata"]} for r in plan.of_type("kubernetes:core/v1:ServiceAccount")]
    namespaces = sorted({a["metadata"]["namespace"] for a in accounts})
    return accounts + [{"metadata": {"namespace": ns, "name": "default"}} for ns in namespaces]


def _world(plan: PlanResult, namespace: str, service_account: str, **changes: Any) -> dict[str, Any]:
    """One pod's mount of the plan's `livekit` class (or a copy of it in the pod's namespace)."""
    spc = plan.named("agent-livekit-files")["inputs"]
    cluster = plan.one("gcp:container/cluster:Cluster")["inputs"]
    world = {
        "project": {"id": _project(plan), "number": FAKE_PROJECT_NUMBER},
        "cluster": {"name": cluster["name"], "location": cluster["location"]},
        "pod": {"namespace": namespace, "name": f"{service_account}-7d9f8b6c5-x2x4q",
                "uid": "0b7c5a8e-3f0e-4c1a-9a55-2d1b8e7f6a10", "serviceAccount": service_account},
        "parameters": spc["spec"]["parameters"],
        "serviceAccounts": _service_accounts(plan),
        "secrets": _secrets(plan),
        "iam": _grants(plan),
    }
    return {**world, **changes}


def _agent(plan: PlanResult) -> tuple[str, str]:
    namespace = plan.named("agent-livekit-files")["inputs"]["metadata"]["namespace"]
    return namespace, pod_of(plan)["spec"]["serviceAccountName"]


def _principal(plan: PlanResult, namespace: str, service_account: str) -> str:
    return workload_principal(FAKE_PROJECT_NUMBER, f"{_project(plan)}.svc.id.goog", namespace, service_account)


def _denied(result: dict[str, Any], principal: str) -> None:
    """No file, and refused by Secret Manager's IAM check for this principal's own token (not by a
    token that never arrived): the provider reports Internal with one PERMISSION_DENIED per secret."""
    assert result["files"] == [], result
    assert result["error"]["code"] == "Internal", result["error"]
    assert [d["code"] for d in result["error"]["details"]] == ["PermissionDenied"] * len(runtime.LIVEKIT_FILES), result["error"]
    assert [(a["principal"], a["code"]) for a in result["accesses"]] == [(principal, "PermissionDenied")] * len(runtime.LIVEKIT_FILES)


def test_the_agent_pod_gets_exactly_its_two_files(plan):
    """The agent's pod (voice-agents/voice-agent) mounts api-key and api-secret with the values of
    the plan's secrets, read with its own Workload Identity principal: the token the provider got
    for the pod reached Secret Manager on every call."""
    namespace, ksa = _agent(plan)
    assert (namespace, ksa) == ("voice-agents", "voice-agent")
    result = _mount(_world(plan, namespace, ksa))
    assert "error" not in result, result["error"]
    assert result["files"] == [{"path": "api-key", "mode": MODE, "contents": VALUES["api-key"]},
                               {"path": "api-secret", "mode": MODE, "contents": VALUES["api-secret"]}]
    principal = _principal(plan, namespace, ksa)
    assert principal == plan.outputs["agentPrincipal"]
    assert [e["principal"] for e in result["exchanges"]] == [principal]
    assert sorted((a["name"], a["principal"], a["code"]) for a in result["accesses"]) == [
        (f"projects/{_project(plan)}/secrets/{livekit_secret_id(plan.stack, f)}/versions/latest", principal, "OK")
        for f in ("api-key", "api-secret")]
    # `latest` resolved to the plan's one version of each secret.
    assert [v["version"] for v in result["objectVersions"]] == [
        f"projects/{FAKE_PROJECT_NUMBER}/secrets/{livekit_secret_id(plan.stack, f)}/versions/1" for f in ("api-key", "api-secret")]


GSA_ANNOTATION = "iam.gke.io/gcp-service-account"
SECRET_READ_ROLES = ("roles/secretmanager.secretAccessor", "roles/secretmanager.admin", "roles/owner")


def _linked_account(plan: PlanResult, namespace: str, ksa: str) -> str | None:
    """The Google service account a KSA of the plan acts as (its GKE annotation), or None."""
    for a in _service_accounts(plan):
        if (a["metadata"]["namespace"], a["metadata"]["name"]) == (namespace, ksa):
            return (a["metadata"].get("annotations") or {}).get(GSA_ANNOTATION)
    return None


def _denied_as_linked_account(plan: PlanResult, result: dict[str, Any], email: str) -> None:
    """A KSA linked to a Google service account (the Places tool server's, infra/tool_identity.py)
    makes the provider trade the pod's token for that account's through the IAM Credentials API.
    The imitation has no IAM Credentials API, so here the trade itself fails and no file is
    written; what the account could read is then read from the plan: no Secret Manager role on
    any secret or on the project."""
    assert result["files"] == [], result
    assert "google.iam.credentials.v1.IAMCredentials" in result["error"]["message"], result["error"]
    assert result["accesses"] == [], "no Secret Manager call without the account's token"
    assert not [g for g in _grants(plan) if g["member"] == f"serviceAccount:{email}" and g["role"] in SECRET_READ_ROLES]


def test_another_service_account_in_the_agent_namespace_is_denied(dev_plan):
    """The class is visible to every pod of voice-agents; the Places tool server's pod (its own
    KSA, acting as its own Google service account) may name it and still gets nothing."""
    namespace, _ = _agent(dev_plan)
    result = _mount(_world(dev_plan, namespace, "places-mcp"))
    email = _linked_account(dev_plan, namespace, "places-mcp")
    assert email and email.startswith("gva-dev-places@")
    _denied_as_linked_account(dev_plan, result, email)


def test_a_pod_of_another_namespace_is_denied(dev_plan):
    """A pod elsewhere cannot see the class, but anyone who may create a SecretProviderClass in
    their namespace can copy its parameters: the metrics adapter's pod (custom-metrics, with a
    Workload Identity grant of its own) gets nothing with them."""
    result = _mount(_world(dev_plan, "custom-metrics", "custom-metrics-stackdriver-adapter"))
    _denied(result, _principal(dev_plan, "custom-metrics", "custom-metrics-stackdriver-adapter"))


def test_no_other_service_account_of_the_stack_gets_a_file(plan):
    """Every KSA the stack creates, and each of its namespaces' `default` KSA, is denied: the
    credentials reach exactly one identity."""
    agent = _agent(plan)
    others = [(a["metadata"]["namespace"], a["metadata"]["name"]) for a in _service_accounts(plan)]
    others = [o for o in others if o != agent]
    assert len(others) >= 4, others  # places-mcp, the metrics adapter and two `default`s at least
    for namespace, ksa in others:
        result = _mount(_world(plan, namespace, ksa))
        if email := _linked_account(plan, namespace, ksa):
            _denied_as_linked_account(plan, result, email)
        else:
            _denied(result, _principal(plan, namespace, ksa))


def test_without_the_plans_grants_the_agent_is_denied_too(dev_plan):
    """Negative control: the agent's files come from the plan's two grants, not from the
    harness letting any authenticated pod read."""
    namespace, ksa = _agent(dev_plan)
    granted = [g for g in _grants(dev_plan) if "/secrets/" in g["resource"]]
    assert {g["member"] for g in granted} == {_principal(dev_plan, namespace, ksa)} and len(granted) == 2
    result = _mount(_world(dev_plan, namespace, ksa, iam=[g for g in _grants(dev_plan) if g not in granted]))
    _denied(result, _principal(dev_plan, namespace, ksa))


def test_a_misspelt_resource_name_is_refused_by_the_providers_parsing(dev_plan):
    """The provider itself refuses a name that is no secret version (here `secret/` for
    `secrets/`), before Secret Manager sees it, and then mounts nothing at all."""
    namespace, ksa = _agent(dev_plan)
    secrets = yaml.safe_load(dev_plan.named("agent-livekit-files")["inputs"]["spec"]["parameters"]["secrets"])
    misspelt = secrets[0]["resourceName"].replace("/secrets/", "/secret/")
    assert misspelt != secrets[0]["resourceName"]
    secrets[0]["resourceName"] = misspelt
    result = _mount(_world(dev_plan, namespace, ksa, parameters={"secrets": yaml.safe_dump(secrets, sort_keys=False)}))
    assert result["files"] == []
    [detail] = result["error"]["details"]
    assert detail == {"code": "InvalidArgument", "message": f"Invalid secret resource name: {misspelt}"}
    assert misspelt not in [a["name"] for a in result["accesses"]]


def test_a_rotated_secret_mounts_the_new_version(dev_plan):
    """A rotation adds a version and disables the old one (k8s/livekit_secrets.py
    OLD_VERSION_POLICY); a pod started after it mounts the new value through `latest`."""
    namespace, ksa = _agent(dev_plan)
    secrets = _secrets(dev_plan)
    key_id = livekit_secret_id(dev_plan.stack, "api-key")
    secrets[key_id]["versions"] = [{"data": "old-key", "state": "DISABLED"}, {"data": "new-key"}]
    result = _mount(_world(dev_plan, namespace, ksa, secrets=secrets))
    assert [(f["path"], f["contents"]) for f in result["files"]] == [("api-key", "new-key"), ("api-secret", VALUES["api-secret"])]
    assert result["objectVersions"][0]["version"] == f"projects/{FAKE_PROJECT_NUMBER}/secrets/{key_id}/versions/2"
