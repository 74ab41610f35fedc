"""What GCP and Kubernetes need to exist before each kind of resource the stack creates.

The mocks accept anything in any order; a real first `pulumi up` does not. Each row below is one
documented precondition with its source, and `check_plan` judges an offline plan
(tooling.plan.PlanResult.resources: type, name, parent, dependsOn, provider, inputs) against all
of them: a resource kind no row knows is itself a finding, so a new kind cannot slip in
unmodelled.

Order, as the engine runs it: a resource is registered only once every resource in its
`dependsOn` (explicit depends_on, expanded to a component's children, and every resource whose
output feeds an input) and its explicit provider have finished; a child also waits for its
parent's registration, which waits for the parent's own dependencies (the Python SDK awaits the
parent's URN, pulumi 3.272 runtime/resource.py prepare_resource). `waits_for` is the transitive
closure of that; a precondition "A after B" holds when B is in waits_for(A).

Destroy runs the other way (the engine deletes a resource before anything it depends on), so the
same graph gives the destroy order (tests/infra/test_destroy.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from infra.apis import STACK_APIS
from k8s.spare_capacity import CAPACITY_BUFFER_MIN_VERSION

Resource = Mapping[str, Any]

# The Google API each provider module's resources are created through (each resource's REST
# reference names its service). The bootstrap enables every one of infra/apis.STACK_APIS
# before a stack's first `up` (bootstrap/apis.py; README's `gcloud services enable`).
RESOURCE_APIS: dict[str, str] = {
    "gcp:compute/": "compute.googleapis.com",
    "gcp:container/": "container.googleapis.com",
    "gcp:artifactregistry/": "artifactregistry.googleapis.com",
    "gcp:serviceaccount/": "iam.googleapis.com",
    "gcp:projects/iAMMember": "cloudresourcemanager.googleapis.com",
    "gcp:secretmanager/": "secretmanager.googleapis.com",
    "gcp:pubsub/": "pubsub.googleapis.com",
    "gcp:kms/": "cloudkms.googleapis.com",
    "gcp:binaryauthorization/": "binaryauthorization.googleapis.com",
    "gcp:monitoring/": "monitoring.googleapis.com",
    "gcp:sql/": "sqladmin.googleapis.com",
    "gcp:servicenetworking/": "servicenetworking.googleapis.com",
}

# Google-managed service agents a grant may name, and whether they exist once their API is
# enabled. Agents created only on first use need `gcp:projects/ServiceIdentity` first (pulumi-gcp
# 10.2.0 projects/service_identity.py, "Generate service identity for a service").
SERVICE_AGENTS: dict[str, tuple[str, bool, str]] = {
    # domain: (API, created when the API is enabled, source)
    "container-engine-robot.iam.gserviceaccount.com": (
        "container.googleapis.com", True,
        "https://cloud.google.com/kubernetes-engine/docs/how-to/encrypting-secrets (the GKE service agent)"),
    "gcp-sa-cloud-sql.iam.gserviceaccount.com": (
        "sqladmin.googleapis.com", False, "https://cloud.google.com/sql/docs/postgres/configure-cmek"),
    "gcp-sa-secretmanager.iam.gserviceaccount.com": (
        "secretmanager.googleapis.com", False, "https://cloud.google.com/secret-manager/docs/cmek"),
}

# Does the API accept a Workload Identity Federation token (a `principal://` member's own
# token, no service account)? Google keeps the list in "Identity federation: products and
# limitations" (https://cloud.google.com/iam/docs/federated-identity-supported-services, looked
# up 2026-12-07; the stored copy's product column could not be read, so the `True` rows rest on
# GKE's Workload Identity Federation docs, which grant these products to principals directly).
# Google Maps Platform's Places API (New) is not a Google Cloud product of that table as far as we
# could tell, so a federated token is not relied on: the tool server acts as a service account
# (the GKE metadata server hands the pod that account's token when its Kubernetes service account
# is linked to it).
FEDERATED_TOKEN_APIS: dict[str, bool] = {
    "aiplatform.googleapis.com": True,
    "secretmanager.googleapis.com": True,
    "monitoring.googleapis.com": True,
    "sqladmin.googleapis.com": True,
    "places.googleapis.com": False,
}
# The API a role is granted for, in this stack (QUOTA_ROLE: the Places tool server's billing).
ROLE_APIS: dict[str, str] = {
    "roles/aiplatform.user": "aiplatform.googleapis.com",
    "roles/secretmanager.secretAccessor": "secretmanager.googleapis.com",
    "roles/monitoring.viewer": "monitoring.googleapis.com",
    "roles/serviceusage.serviceUsageConsumer": "places.googleapis.com",
}

CAPACITY_BUFFER_KIND = "CapacityBuffer"
_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)-gke\.(\d+)$")


def gke_version(text: str) -> tuple[int, ...] | None:
    """1.35.2-gke.1842000 -> (1, 35, 2, 1842000); None for anything else (e.g. "latest")."""
    match = _VERSION.match(text or "")
    return tuple(int(g) for g in match.groups()) if match else None


class PlanGraph:
    """The plan's resources with the order the engine creates them in."""

    def __init__(self, resources: Iterable[Resource]):
        self.resources = list(resources)
        self.by_name = {r["name"]: r for r in self.resources}

    def of_type(self, *types: str) -> list[Resource]:
        return [r for r in self.resources if r["type"] in types]

    def direct(self, name: str) -> set[str]:
        """What `name` waits for directly: its dependencies, its provider, and (through its
        parent's registration) its ancestors' dependencies."""
        found: set[str] = set()
        r = self.by_name.get(name)
        while r is not None:
            found |= set(r.get("dependsOn") or ())
            if r.get("provider"):
                found.add(r["provider"])
            r = self.by_name.get(r.get("parent") or "")
        return found

    @cached_property
    def _closure(self) -> dict[str, frozenset[str]]:
        memo: dict[str, frozenset[str]] = {}

        def walk(name: str, path: tuple[str, ...]) -> frozenset[str]:
            if name in memo:
                return memo[name]
            if name in path:
                raise ValueError(f"dependency cycle: {' -> '.join(path + (name,))}")
            found: set[str] = set()
            for dep in self.direct(name):
                found.add(dep)
                found |= walk(dep, path + (name,))
            memo[name] = frozenset(found)
            return memo[name]

        for r in self.resources:
            walk(r["name"], ())
        return memo

    def waits_for(self, name: str) -> frozenset[str]:
        return self._closure[name]

    def waits_for_any(self, name: str, candidates: Iterable[Resource]) -> bool:
        return any(c["name"] in self.waits_for(name) for c in candidates)

    def destroy_order(self) -> list[str]:
        """Names in an order the engine may delete them: nothing before what waits for it."""
        remaining = {r["name"] for r in self.resources}
        order: list[str] = []
        while remaining:
            # deletable: no remaining resource waits for it (directly or through a parent)
            blocked = {d for n in remaining for d in self.direct(n) | {self.by_name[n].get("parent")}}
            ready = sorted(n for n in remaining if n not in blocked)
            if not ready:
                raise ValueError(f"no resource can be deleted first among {sorted(remaining)}")
            order += ready
            remaining -= set(ready)
        return order


@dataclass(frozen=True)
class Precondition:
    id: str
    applies_to: str  # resource type(s) or a description
    needs: str
    source: str
    check: Callable[[PlanGraph], list[str]]


# ------------------------------------------------------------------------------------------------
# Helpers over wire-form inputs


def _inputs(r: Resource) -> dict:
    return r.get("inputs") or {}


def _pod_template(r: Resource) -> dict | None:
    if r["type"] == "kubernetes:apps/v1:Deployment":
        return ((_inputs(r).get("spec") or {}).get("template") or {}).get("spec") or {}
    if r["type"] == "kubernetes:core/v1:PodTemplate":
        return (_inputs(r).get("template") or {}).get("spec") or {}
    return None


def _pod_specs(g: PlanGraph) -> list[tuple[Resource, dict]]:
    return [(r, spec) for r in g.resources if (spec := _pod_template(r)) is not None]


def _containers(spec: dict) -> list[dict]:
    return list(spec.get("initContainers") or []) + list(spec.get("containers") or [])


def _k8s_named(g: PlanGraph, kind_type: str, name: str, namespace: str | None = None) -> list[Resource]:
    return [r for r in g.of_type(kind_type)
            if (_inputs(r).get("metadata") or {}).get("name") == name
            and (namespace is None or (_inputs(r).get("metadata") or {}).get("namespace") == namespace)]


def _after(g: PlanGraph, r: Resource, needed: list[Resource], what: str) -> list[str]:
    if not needed:
        return []
    if g.waits_for_any(r["name"], needed):
        return []
    return [f"{r['name']} does not wait for {what} ({', '.join(n['name'] for n in needed)})"]


# ------------------------------------------------------------------------------------------------
# The checks


def _api_enabled(g: PlanGraph) -> list[str]:
    problems = []
    for r in g.resources:
        if not r["type"].startswith("gcp:"):
            continue
        api = next((a for prefix, a in RESOURCE_APIS.items() if r["type"].startswith(prefix)), None)
        if api is None:
            problems.append(f"{r['name']}: no API known for {r['type']}; add it to RESOURCE_APIS with its source")
        elif api not in STACK_APIS:
            problems.append(f"{r['name']}: {api} is not in infra/apis.STACK_APIS, so the bootstrap never enables it")
    return problems


def _service_agent_exists(g: PlanGraph) -> list[str]:
    problems = []
    identities = {_inputs(r).get("service") for r in g.of_type("gcp:projects/serviceIdentity:ServiceIdentity")}
    for r in g.resources:
        member = str(_inputs(r).get("member") or "")
        match = re.match(r"^serviceAccount:service-\d+@(.+)$", member)
        if not match:
            continue
        known = SERVICE_AGENTS.get(match.group(1))
        if known is None:
            problems.append(f"{r['name']}: grants a service agent of {match.group(1)} that no row describes")
            continue
        api, at_enable, _ = known
        if not at_enable and api not in identities:
            problems.append(f"{r['name']}: the {api} service agent exists only after first use; "
                            "declare gcp.projects.ServiceIdentity for it and make the grant wait for it")
    return problems


def _cmek_grant_before_cluster(g: PlanGraph) -> list[str]:
    problems = []
    for cluster in g.of_type("gcp:container/cluster:Cluster"):
        if not (_inputs(cluster).get("databaseEncryption") or {}).get("keyName"):
            continue
        grants = [r for r in g.of_type("gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember")
                  if "container-engine-robot" in str(_inputs(r).get("member"))
                  and _inputs(r).get("role") == "roles/cloudkms.cryptoKeyEncrypterDecrypter"]
        if not grants:
            problems.append(f"{cluster['name']}: encrypts Secrets with a key the GKE service agent is never granted")
        problems += _after(g, cluster, grants, "the GKE service agent's grant on its Secrets key")
    return problems


def _node_role_before_cluster(g: PlanGraph) -> list[str]:
    problems = []
    for cluster in g.of_type("gcp:container/cluster:Cluster"):
        defaults = ((_inputs(cluster).get("clusterAutoscaling") or {}).get("autoProvisioningDefaults") or {})
        account = defaults.get("serviceAccount")
        if not account:
            continue
        grants = [r for r in g.of_type("gcp:projects/iAMMember:IAMMember")
                  if _inputs(r).get("member") == f"serviceAccount:{account}"
                  and _inputs(r).get("role") == "roles/container.defaultNodeServiceAccount"]
        if not grants:
            problems.append(f"{cluster['name']}: node service account {account} never gets its node role")
        problems += _after(g, cluster, grants, "the node service account's role")
    return problems


def _workload_pool_exists(g: PlanGraph) -> list[str]:
    problems = []
    clusters = g.of_type("gcp:container/cluster:Cluster")
    for r in g.resources:
        member = str(_inputs(r).get("member") or "")
        if ".svc.id.goog" not in member:
            continue
        if not clusters:
            problems.append(f"{r['name']}: names a GKE workload pool no cluster of the stack creates")
        problems += _after(g, r, clusters, "the cluster whose creation creates the workload pool")
    return problems


def _psa_before_private_sql(g: PlanGraph) -> list[str]:
    problems = []
    for instance in g.of_type("gcp:sql/databaseInstance:DatabaseInstance"):
        ip = ((_inputs(instance).get("settings") or {}).get("ipConfiguration") or {})
        network = ip.get("privateNetwork")
        if not network:
            continue
        peerings = [r for r in g.of_type("gcp:servicenetworking/connection:Connection")
                    if _inputs(r).get("network") == network]
        if not peerings:
            problems.append(f"{instance['name']}: private IP on {network} without a private services connection")
        problems += _after(g, instance, peerings, "the private services connection of its network")
    return problems


def _iam_database_user(g: PlanGraph) -> list[str]:
    problems = []
    for user in g.of_type("gcp:sql/user:User"):
        if not str(_inputs(user).get("type", "")).startswith("CLOUD_IAM"):
            continue
        instances = [r for r in g.of_type("gcp:sql/databaseInstance:DatabaseInstance")
                     if r["name"] in g.waits_for(user["name"])]
        if not instances:
            problems.append(f"{user['name']}: an IAM database user that waits for no instance")
        for instance in instances:
            flags = ((_inputs(instance).get("settings") or {}).get("databaseFlags") or [])
            if {"name": "cloudsql.iam_authentication", "value": "on"} not in flags:
                problems.append(f"{user['name']}: instance {instance['name']} has cloudsql.iam_authentication off")
        # The service account it logs in as predates the stack: the bootstrap creates it
        # (infra/accounts.py), and the program looks it up before declaring anything with it.
        name = str(_inputs(user).get("name", ""))
        if not name.endswith(".iam"):
            problems.append(f"{user['name']}: {name!r} is not a service account's database user name (<email without "
                            ".gserviceaccount.com>)")
    return problems


def _k8s_after_cluster(g: PlanGraph) -> list[str]:
    problems = []
    clusters = g.of_type("gcp:container/cluster:Cluster")
    for r in g.resources:
        if r["type"].startswith("kubernetes:"):
            if not r.get("provider"):
                problems.append(f"{r['name']}: a Kubernetes object on the default provider (whatever kubeconfig is around)")
            problems += _after(g, r, clusters, "the cluster whose API server it is sent to")
    return problems


def _namespace_first(g: PlanGraph) -> list[str]:
    problems = []
    for r in g.resources:
        namespace = (_inputs(r).get("metadata") or {}).get("namespace")
        if r["type"].startswith("kubernetes:") and namespace:
            problems += _after(g, r, _k8s_named(g, "kubernetes:core/v1:Namespace", namespace),
                               f"namespace {namespace}")
    return problems


def _service_account_first(g: PlanGraph) -> list[str]:
    problems = []
    for r, spec in _pod_specs(g):
        name = spec.get("serviceAccountName")
        namespace = (_inputs(r).get("metadata") or {}).get("namespace")
        if name and r["type"] == "kubernetes:apps/v1:Deployment":
            problems += _after(g, r, _k8s_named(g, "kubernetes:core/v1:ServiceAccount", name, namespace),
                               f"service account {name}")
    return problems


def _priority_class_first(g: PlanGraph) -> list[str]:
    problems = []
    for r, spec in _pod_specs(g):
        name = spec.get("priorityClassName")
        if name and r["type"] == "kubernetes:apps/v1:Deployment":
            classes = _k8s_named(g, "kubernetes:scheduling.k8s.io/v1:PriorityClass", name)
            problems += _after(g, r, classes, f"priority class {name}")
    return problems


def _secret_files_first(g: PlanGraph) -> list[str]:
    problems = []
    for r, spec in _pod_specs(g):
        for volume in spec.get("volumes") or []:
            attrs = ((volume.get("csi") or {}).get("volumeAttributes") or {})
            name = attrs.get("secretProviderClass")
            if not name:
                continue
            classes = [c for c in g.of_type("kubernetes:secrets-store.csi.x-k8s.io/v1:SecretProviderClass")
                       if (_inputs(c).get("metadata") or {}).get("name") == name]
            problems += _after(g, r, classes, f"SecretProviderClass {name}")
            versions = g.of_type("gcp:secretmanager/secretVersion:SecretVersion")
            readers = g.of_type("gcp:secretmanager/secretIamMember:SecretIamMember")
            for needed, what in ((versions, "a version of every mounted secret"), (readers, "the pod's read grant")):
                missing = [n["name"] for n in needed if n["name"] not in g.waits_for(r["name"])]
                if missing:
                    problems.append(f"{r['name']} does not wait for {what} ({', '.join(missing)})")
    return problems


def _auth_proxy_instance_first(g: PlanGraph) -> list[str]:
    problems = []
    for r, spec in _pod_specs(g):
        if not any("cloud-sql-proxy" in str(c.get("image", "")) for c in _containers(spec)):
            continue
        for kind, what in (("gcp:sql/databaseInstance:DatabaseInstance", "the instance"),
                           ("gcp:sql/user:User", "its IAM database user"),
                           ("gcp:serviceaccount/iAMMember:IAMMember", "the impersonation grant")):
            problems += _after(g, r, g.of_type(kind), what)
    return problems


def _image_repository_first(g: PlanGraph) -> list[str]:
    problems = []
    repositories = g.of_type("gcp:artifactregistry/repository:Repository")
    readers = g.of_type("gcp:artifactregistry/repositoryIamMember:RepositoryIamMember")
    for r, spec in _pod_specs(g):
        if r["type"] != "kubernetes:apps/v1:Deployment":
            continue
        if any(".pkg.dev/" in str(c.get("image", "")) for c in _containers(spec)):
            problems += _after(g, r, repositories, "the image repository")
            problems += _after(g, r, readers, "the nodes' read grant on the repository")
    return problems


def _custom_kinds_served(g: PlanGraph) -> list[str]:
    problems = []
    clusters = g.of_type("gcp:container/cluster:Cluster")
    cluster_inputs = [_inputs(c) for c in clusters]
    for r in g.resources:
        kind = _inputs(r).get("kind")
        if r["type"] == "kubernetes:autoscaling.x-k8s.io/v1beta1:CapacityBuffer" or kind == CAPACITY_BUFFER_KIND:
            for c in cluster_inputs:
                pinned = gke_version(str(c.get("minMasterVersion") or ""))
                if pinned is None or pinned < gke_version(CAPACITY_BUFFER_MIN_VERSION):
                    problems.append(f"{r['name']}: CapacityBuffer is served from GKE {CAPACITY_BUFFER_MIN_VERSION}; "
                                    f"the cluster's minimum version is {c.get('minMasterVersion') or 'the channel default'}")
            template = (_inputs(r).get("spec") or {}).get("podTemplateRef", {}).get("name")
            if template:
                problems += _after(g, r, _k8s_named(g, "kubernetes:core/v1:PodTemplate", template),
                                   f"PodTemplate {template}")
        if r["type"] == "kubernetes:secrets-store.csi.x-k8s.io/v1:SecretProviderClass":
            if not all((c.get("secretManagerConfig") or {}).get("enabled") for c in cluster_inputs):
                problems.append(f"{r['name']}: SecretProviderClass needs the cluster's Secret Manager add-on")
        if r["type"] == "kubernetes:monitoring.googleapis.com/v1:PodMonitoring":
            if not all(((c.get("monitoringConfig") or {}).get("managedPrometheus") or {}).get("enabled")
                       for c in cluster_inputs):
                problems.append(f"{r['name']}: PodMonitoring needs Managed Service for Prometheus on the cluster")
    return problems


def _promql_metric_may_be_missing(g: PlanGraph) -> list[str]:
    problems = []
    for r in g.of_type("gcp:monitoring/alertPolicy:AlertPolicy"):
        for condition in _inputs(r).get("conditions") or []:
            promql = condition.get("conditionPrometheusQueryLanguage")
            if promql is not None and promql.get("disableMetricValidation") is not True:
                problems.append(f"{r['name']}: PromQL condition {condition.get('displayName')!r} is validated against "
                                "metrics that exist only once agents run; set disable_metric_validation")
    return problems


def _federated_token_accepted(g: PlanGraph) -> list[str]:
    problems = []
    for r in g.resources:
        member = str(_inputs(r).get("member") or "")
        api = ROLE_APIS.get(str(_inputs(r).get("role") or ""))
        if member.startswith(("principal://", "principalSet://")) and api and not FEDERATED_TOKEN_APIS.get(api, False):
            problems.append(f"{r['name']}: grants {_inputs(r).get('role')} to a federated principal, but {api} is not "
                            "known to accept Workload Identity Federation tokens; grant it to a service account "
                            "the workload acts as")
    return problems


PRECONDITIONS: tuple[Precondition, ...] = (
    Precondition("api-enabled", "every gcp:* resource", "its Google API enabled in the project",
                 "each resource's REST reference; bootstrap/apis.py enables infra/apis.STACK_APIS", _api_enabled),
    Precondition("service-agent-exists", "grants naming service-<number>@<service agent>",
                 "the service agent exists (created at API enablement, or by ServiceIdentity)",
                 "https://cloud.google.com/iam/docs/service-agents; pulumi-gcp 10.2.0 projects/service_identity.py",
                 _service_agent_exists),
    Precondition("cmek-grant-before-cluster", "gcp:container/cluster:Cluster with databaseEncryption",
                 "the GKE service agent holds cryptoKeyEncrypterDecrypter on the key first",
                 "https://cloud.google.com/kubernetes-engine/docs/how-to/encrypting-secrets", _cmek_grant_before_cluster),
    Precondition("node-role-before-cluster", "gcp:container/cluster:Cluster",
                 "the node service account holds roles/container.defaultNodeServiceAccount before nodes boot",
                 "https://cloud.google.com/kubernetes-engine/docs/how-to/hardening-your-cluster#use_least_privilege_sa",
                 _node_role_before_cluster),
    Precondition("workload-pool-exists", "IAM grants to <project>.svc.id.goog principals",
                 "the workload pool exists, i.e. a Workload Identity cluster of the project does",
                 "https://cloud.google.com/kubernetes-engine/docs/how-to/workload-identity", _workload_pool_exists),
    Precondition("psa-before-private-sql", "gcp:sql/databaseInstance:DatabaseInstance with a private network",
                 "the network's private services connection (peering) exists",
                 "https://cloud.google.com/sql/docs/postgres/configure-private-services-access; "
                 "pulumi-gcp 10.2.0 sql/database_instance.py (private IP example: depends_on the connection)",
                 _psa_before_private_sql),
    Precondition("iam-database-user", "gcp:sql/user:User of an IAM type",
                 "the instance with cloudsql.iam_authentication=on and the service account it names (the bootstrap's)",
                 "https://cloud.google.com/sql/docs/postgres/add-manage-iam-users", _iam_database_user),
    Precondition("k8s-after-cluster", "every kubernetes:* resource",
                 "the stack's cluster, through the stack's explicit provider",
                 "pulumi-kubernetes 4.34.2 Provider (kubeconfig); k8s/provider.py", _k8s_after_cluster),
    Precondition("namespace-first", "namespaced kubernetes:* resources", "their namespace exists",
                 "https://kubernetes.io/docs/concepts/overview/working-with-objects/namespaces/", _namespace_first),
    Precondition("service-account-first", "kubernetes:apps/v1:Deployment", "the pods' service account exists",
                 "https://kubernetes.io/docs/tasks/configure-pod-container/configure-service-account/ "
                 "(the ServiceAccount admission controller refuses a pod naming a missing account)",
                 _service_account_first),
    Precondition("priority-class-first", "kubernetes:apps/v1:Deployment with priorityClassName",
                 "the PriorityClass exists", "https://kubernetes.io/docs/concepts/scheduling-eviction/pod-priority-preemption/",
                 _priority_class_first),
    Precondition("secret-files-first", "pods mounting a SecretProviderClass",
                 "the class, a version of each secret and the pod's read grant",
                 "https://cloud.google.com/secret-manager/docs/secret-manager-managed-csi-component", _secret_files_first),
    Precondition("auth-proxy-instance-first", "pods with the Cloud SQL Auth Proxy",
                 "the instance, the IAM user and the impersonation grant (else the sidecar's startup probe fails)",
                 "https://cloud.google.com/sql/docs/postgres/connect-kubernetes-engine", _auth_proxy_instance_first),
    Precondition("image-repository-first", "Deployments pulling from the stack's Artifact Registry",
                 "the repository and the nodes' reader grant (the image itself: the deploy pipeline, docs/ci.md)",
                 "https://cloud.google.com/artifact-registry/docs/integrate-gke", _image_repository_first),
    Precondition("custom-kinds-served", "CapacityBuffer, SecretProviderClass, PodMonitoring",
                 "the cluster serves the kind: GKE >= 1.35.2-gke.1842000, the Secret Manager add-on, Managed Prometheus",
                 "https://cloud.google.com/kubernetes-engine/docs/how-to/configure-capacity-buffer; "
                 "https://cloud.google.com/secret-manager/docs/secret-manager-managed-csi-component; "
                 "https://cloud.google.com/stackdriver/docs/managed-prometheus/setup-managed", _custom_kinds_served),
    Precondition("promql-metric-may-be-missing", "gcp:monitoring/alertPolicy:AlertPolicy with a PromQL condition",
                 "the metric exists, unless disable_metric_validation",
                 "pulumi-gcp 10.2.0 monitoring/_inputs.py; hashicorp/terraform-provider-google#20491",
                 _promql_metric_may_be_missing),
    Precondition("federated-token-accepted", "grants to principal:// members",
                 "the API the role is for accepts Workload Identity Federation tokens",
                 "https://cloud.google.com/iam/docs/federated-identity-supported-services (read 2026-12-07)",
                 _federated_token_accepted),
)


def check_plan(resources: Iterable[Resource]) -> dict[str, list[str]]:
    """Problems per precondition id; empty lists when the plan meets them all."""
    graph = PlanGraph(resources)
    return {p.id: p.check(graph) for p in PRECONDITIONS}


# ------------------------------------------------------------------------------------------------
# What `pulumi destroy` cannot remove, or removes only after GCP's own delay


def kept_after_destroy(resources: Iterable[Resource]) -> list[str]:
    """One line per resource that outlives `pulumi destroy` or stops it, with the reason."""
    lines = []
    for r in resources:
        i = _inputs(r)
        if r["type"] == "gcp:kms/keyRing:KeyRing":
            lines.append(f"{r['name']}: KMS key rings and keys can never be deleted; destroy only schedules the "
                         "key versions' destruction (https://cloud.google.com/kms/docs/resource-hierarchy#retrieve_resource_id)")
        elif r["type"] == "gcp:container/cluster:Cluster" and i.get("deletionProtection"):
            lines.append(f"{r['name']}: deletion protection on: destroy stops here until deletionProtection is false")
        elif r["type"] == "gcp:sql/databaseInstance:DatabaseInstance":
            if i.get("deletionProtection"):
                lines.append(f"{r['name']}: deletion protection on: destroy stops here until databaseProduction is false")
            lines.append(f"{r['name']}: its name stays reserved for up to a week after deletion "
                         "(https://cloud.google.com/sql/docs/postgres/delete-instance)")
        elif r["type"] == "gcp:sql/user:User" and i.get("deletionPolicy") == "ABANDON":
            lines.append(f"{r['name']}: forgotten, not deleted (it owns the checkpoint tables); it goes with its instance")
    return lines
