"""Policy rules: pure functions over wire-form (camelCase) resource properties.

The CrossGuard pack (policy/__main__.py), the offline plan (infra/plan.py) and the tests all
call these same functions. A resource rule looks at one resource's props; a stack rule looks
at every resource, because the facts that keep calls alive span the Deployment, the HPA and
the container's own settings. Every message says what breaks, with the numbers.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from k8s.capacity import (
    AUTOSCALER_GRACE_CAP_S,
    HPA_TOLERANCE,
    SHUTDOWN_BUDGET_S,
    max_safe_target,
    worker_load_at_target,
)
from k8s.runtime import HEALTH_PORT, PLACEHOLDER_ROLE, ROLE_LABEL
from k8s.sizes import autopilot_problems
from policy.quantities import cpu_millicores, memory_mib

MANDATORY, ADVISORY = "mandatory", "advisory"
CLUSTER = "gcp:container/cluster:Cluster"
SUBNET = "gcp:compute/subnetwork:Subnetwork"
NAT = "gcp:compute/routerNat:RouterNat"
INSTANCE = "gcp:compute/instance:Instance"
INSTANCE_TEMPLATE = "gcp:compute/instanceTemplate:InstanceTemplate"
REPOSITORY = "gcp:artifactregistry/repository:Repository"
REPOSITORY_MEMBER = "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember"
PROJECT_MEMBER = "gcp:projects/iAMMember:IAMMember"
PROJECT_BINDING = "gcp:projects/iAMBinding:IAMBinding"
SA_KEY = "gcp:serviceaccount/key:Key"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
VERTEX_ROLE = "roles/aiplatform.user"
# Artifact Registry predefined roles that include artifactregistry.repositories.downloadArtifacts.
REGISTRY_READ_ROLES = frozenset({"roles/artifactregistry.reader", "roles/artifactregistry.writer",
                                 "roles/artifactregistry.repoAdmin", "roles/artifactregistry.admin"})

# livekit-agents 1.8.9 defaults when the container does not set them (worker.py).
FRAMEWORK_LOAD_THRESHOLD = 0.7
FRAMEWORK_DRAIN_TIMEOUT_S = 3600
SPOT_LABEL = "cloud.google.com/gke-spot"
SAFE_TO_EVICT = "cluster-autoscaler.kubernetes.io/safe-to-evict"
# autoscaling/v2 defaults (Kubernetes HPA docs): scale-up window 0 s, scale-down 300 s.
HPA_DEFAULT_UP_WINDOW_S, HPA_DEFAULT_DOWN_WINDOW_S = 0, 300
# Autopilot ephemeral-storage request range (GKE "Resource requests in Autopilot"); k8s/sizes.py
# covers CPU and memory only.
MIN_EPHEMERAL_MI, MAX_EPHEMERAL_MI = 10, 10 * 1024


@dataclass(frozen=True)
class Resource:
    type: str
    name: str
    props: Mapping[str, Any]


@dataclass(frozen=True)
class Context:
    """What a rule may need beyond the resources, read from the rule's policy config.

    `bursting`: the cluster supports Autopilot CPU bursting (GKE >= 1.30.2 on cgroup v2), so a
    CPU limit above the request is real. `protected`: the stack must refuse deletion. Both
    defaults are the strict reading: no bursting assumed, deletion protection required; a
    stack loosens them in its policy config file (policy/<stack>.json)."""

    bursting: bool = False
    protected: bool = True


# JSON schema of every per-rule setting; each rule declares which of them it reads. The
# defaults here and in Context are the same values (a test keeps them equal).
CONFIG_PROPERTIES: dict[str, dict[str, Any]] = {
    "bursting": {"type": "boolean", "default": False,
                 "description": "The cluster supports Autopilot CPU bursting, so a CPU limit above the request is real."},
    "protected": {"type": "boolean", "default": True,
                  "description": "This stack's cluster must keep deletion protection (turn off only for throwaway stacks)."},
}


def context_from(config: Mapping[str, Any] | None) -> Context:
    """One rule's Context from its policy config, as CrossGuard's args.get_config() gives it."""
    config = config or {}
    return Context(**{key: bool(config.get(key, spec["default"])) for key, spec in CONFIG_PROPERTIES.items()})


Finding = tuple[str, str]  # (resource name, message)


@dataclass(frozen=True)
class Rule:
    id: str
    severity: str
    description: str
    # Resource rules: (props, ctx) -> messages, for the listed resource types.
    resource_types: tuple[str, ...] = ()
    check_resource: Callable[[Mapping[str, Any], Context], list[str]] | None = None
    # Stack rules: (resources, ctx) -> findings.
    check_stack: Callable[[list[Resource], Context], list[Finding]] | None = None
    # Keys of CONFIG_PROPERTIES this rule reads.
    config: tuple[str, ...] = ()

    def applies_to(self, resource_type: str) -> bool:
        return resource_type in self.resource_types

    def check(self, resource_type: str, props: Mapping[str, Any], ctx: Context) -> list[str]:
        """A resource rule over one resource's (type, camelCase props)."""
        return self.check_resource(props, ctx) if self.applies_to(resource_type) else []

    def findings(self, resources: list[Resource], ctx: Context) -> list[Finding]:
        if self.check_stack is not None:
            return self.check_stack(resources, ctx)
        return [(r.name, message) for r in resources for message in self.check(r.type, r.props, ctx)]


def _get(props: Mapping[str, Any] | None, *path: str, default: Any = None) -> Any:
    node: Any = props
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return default
        node = node[key]
    return default if node is None else node


def _unless(condition: bool, message: str) -> list[str]:
    return [] if condition else [message]


def _n(value: Any) -> str:
    """A number as people write it. CrossGuard hands every number over as a float (protobuf
    Struct), the mocks as an int; messages must read the same either way."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


# --------------------------------------------------------------------------------------------
# Cluster


def _private_nodes(p, ctx):
    return _unless(_get(p, "privateClusterConfig", "enablePrivateNodes") is True,
                   "nodes get public IPs: set privateClusterConfig.enablePrivateNodes = true")


def _no_open_control_plane(p, ctx):
    blocks = _get(p, "masterAuthorizedNetworksConfig", "cidrBlocks", default=[])
    messages = [f"authorized network {b.get('displayName', '?')} = {b.get('cidrBlock')} opens the control plane to the internet"
                for b in blocks if str(b.get("cidrBlock", "")).endswith("/0")]
    ip_enabled = _get(p, "controlPlaneEndpointsConfig", "ipEndpointsConfig", "enabled", default=True)
    if ip_enabled and not blocks:
        messages.append("the control plane's IP endpoint is on with no authorized networks: any address may try it; "
                        "disable ipEndpointsConfig or name narrow ranges (CI uses the DNS endpoint)")
    # Narrow authorised ranges do not help when every Google Cloud public address is let in
    # as well: any VM of any Google Cloud customer then reaches the endpoint.
    if ip_enabled and _get(p, "masterAuthorizedNetworksConfig", "gcpPublicCidrsAccessEnabled") is True:
        messages.append("masterAuthorizedNetworksConfig.gcpPublicCidrsAccessEnabled = true admits every Google Cloud "
                        "public IP to the control plane's IP endpoint, not just the named ranges; set it to false")
    return messages


def _release_channel(p, ctx):
    channel = _get(p, "releaseChannel", "channel")
    return _unless(channel not in (None, "", "UNSPECIFIED"),
                   f"release channel is {channel!r}: without one, upgrades are unmanaged; use REGULAR or STABLE")


def _deletion_protection(p, ctx):
    if not ctx.protected:
        return []
    return _unless(_get(p, "deletionProtection") is True,
                   "deletionProtection is off in a protected stack: one `pulumi destroy` ends every live call")


def _no_default_compute_sa(p, ctx):
    sa = _get(p, "clusterAutoscaling", "autoProvisioningDefaults", "serviceAccount") or _get(p, "nodeConfig", "serviceAccount")
    if not sa or sa == "default" or str(sa).endswith("-compute@developer.gserviceaccount.com"):
        return [f"nodes run as {sa or 'the default compute service account'} (Editor on the project); "
                "use a dedicated account with roles/container.defaultNodeServiceAccount"]
    return []


def _autopilot_no_node_config(p, ctx):
    if _get(p, "enableAutopilot") is not True:
        return ["enableAutopilot is not true: this platform assumes Autopilot's node management and pod rules"]
    return _unless(not _get(p, "nodeConfig"),
                   "nodeConfig is set on an Autopilot cluster: a known perma-diff that replaces the cluster; "
                   "set the node identity in clusterAutoscaling.autoProvisioningDefaults")


# --------------------------------------------------------------------------------------------
# Network


def _private_google_access(p, ctx):
    return _unless(_get(p, "privateIpGoogleAccess") is True,
                   f"subnet {p.get('ipCidrRange')} has no Private Google Access: private nodes cannot reach Vertex AI")


def _nat_all_ranges(p, ctx):
    scope = _get(p, "sourceSubnetworkIpRangesToNat")
    return _unless(scope == "ALL_SUBNETWORKS_ALL_IP_RANGES",
                   f"NAT covers {scope}: pods use a secondary range and could not reach LiveKit; "
                   "use ALL_SUBNETWORKS_ALL_IP_RANGES")


def _nat_logs_errors(p, ctx):
    log = _get(p, "logConfig", default={})
    return _unless(log.get("enable") is True and log.get("filter") in ("ERRORS_ONLY", "ALL"),
                   "NAT does not log errors: port exhaustion (dropped WebRTC flows) would be invisible")


def _no_external_ip(p, ctx):
    interfaces = _get(p, "networkInterfaces", default=[])
    return [f"network interface {i} has an external IP (accessConfigs): the VM is reachable from the internet and "
            "bypasses Cloud NAT; remove accessConfigs" for i, nic in enumerate(interfaces) if nic.get("accessConfigs")]


# --------------------------------------------------------------------------------------------
# Registry and identity


def _immutable_tags(p, ctx):
    if _get(p, "format") != "DOCKER":
        return []
    return _unless(_get(p, "dockerConfig", "immutableTags") is True,
                   "tags are mutable: a pushed tag can change under running pods and a rollback may not restore what ran")


def _cleanup_policies(p, ctx):
    policies = _get(p, "cleanupPolicies", default=[])
    if not policies:
        return ["no cleanup policies: images pile up and are billed forever"]
    if len(policies) > 10:
        return [f"{len(policies)} cleanup policies; Artifact Registry allows at most 10"]
    return _unless(_get(p, "cleanupPolicyDryRun") is not True, "cleanup policies are in dry-run mode and delete nothing")


def _node_sa_reader(resources, ctx):
    node_accounts = {
        _get(r.props, "clusterAutoscaling", "autoProvisioningDefaults", "serviceAccount")
        for r in resources if r.type == CLUSTER
    } - {None}
    # A grant on the repository, or one on the whole project (broader than needed, but the
    # nodes can pull); every Artifact Registry role from reader up includes reading.
    readers = {
        str(_get(r.props, "member", default="")).removeprefix("serviceAccount:")
        for r in resources
        if r.type in (REPOSITORY_MEMBER, PROJECT_MEMBER) and _get(r.props, "role") in REGISTRY_READ_ROLES
    }
    return [(r.name, f"node service account {sa} cannot pull from this repository: grant roles/artifactregistry.reader on it")
            for r in resources if r.type == REPOSITORY for sa in sorted(node_accounts - readers)]


def _no_sa_keys(resources, ctx):
    return [(r.name, "a service-account key is a long-lived credential; use Workload Identity (agents) and "
                     "Workload Identity Federation (CI) instead") for r in resources if r.type == SA_KEY]


def _vertex_members(r: Resource) -> list[str]:
    if r.type == PROJECT_MEMBER:
        return [str(_get(r.props, "member", default=""))]
    return [str(m) for m in _get(r.props, "members", default=[])]


def _vertex_by_workload_identity(resources, ctx):
    grants = [r for r in resources if r.type in (PROJECT_MEMBER, PROJECT_BINDING) and _get(r.props, "role") == VERTEX_ROLE]
    findings = [(r.name, f"Vertex AI is granted to {member}: a Google service account invites keys and is shared by "
                         "whatever can impersonate it; grant roles/aiplatform.user to the agent's Workload Identity "
                         "principal (principal://.../subject/ns/<namespace>/sa/<ksa>)")
                for r in grants for member in _vertex_members(r) if not member.startswith(("principal://", "principalSet://"))]
    if not grants:
        findings.append(("stack", "no roles/aiplatform.user grant for the agent's Workload Identity principal: Gemini calls will fail"))
    return findings


# --------------------------------------------------------------------------------------------
# Workload. Facts are read from the rendered objects, the way the cluster will see them.


@dataclass(frozen=True)
class AgentPod:
    """The agent's Deployment, seen as the facts the timing rules need."""

    name: str
    spec: Mapping[str, Any]  # pod spec
    annotations: Mapping[str, Any]
    labels: Mapping[str, Any]
    container: Mapping[str, Any]
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def drain_timeout(self) -> int:
        return int(self.env.get("AGENT_DRAIN_TIMEOUT_SECONDS", FRAMEWORK_DRAIN_TIMEOUT_S))

    @property
    def load_threshold(self) -> float:
        return float(self.env.get("AGENT_LOAD_THRESHOLD", FRAMEWORK_LOAD_THRESHOLD))

    @property
    def grace(self) -> int:
        # Kubernetes' default when unset.
        return int(self.spec.get("terminationGracePeriodSeconds", 30))

    @property
    def pre_stop(self) -> Mapping[str, Any] | None:
        return _get(self.container, "lifecycle", "preStop")

    @property
    def pre_stop_seconds(self) -> int:
        return pre_stop_sleep_seconds(self.pre_stop)


def pre_stop_sleep_seconds(pre_stop: Mapping[str, Any] | None) -> int:
    """Seconds a preStop hook waits: native sleep, or `sleep N` run by exec."""
    if not pre_stop:
        return 0
    if "sleep" in pre_stop:
        return int(_get(pre_stop, "sleep", "seconds", default=0))
    words = " ".join(_get(pre_stop, "exec", "command", default=[])).replace(";", " ").split()
    return sum(int(words[i + 1]) for i, w in enumerate(words[:-1]) if w == "sleep" and words[i + 1].isdigit())


def _is_sleep_only(pre_stop: Mapping[str, Any] | None) -> bool:
    if not pre_stop:
        return False
    if "sleep" in pre_stop:
        return True
    command = " ".join(_get(pre_stop, "exec", "command", default=[]))
    words = [w for w in command.replace(";", " ").split() if w not in ("/bin/sh", "sh", "bash", "/bin/bash", "-c")]
    return bool(words) and all(w == "sleep" or w.isdigit() for w in words)


def is_placeholder(template: Mapping[str, Any]) -> bool:
    """Capacity placeholders (k8s/spare_capacity.py) run no agent; the agent rules skip them."""
    return _get(template, "metadata", "labels", default={}).get(ROLE_LABEL) == PLACEHOLDER_ROLE


def agent_pods(resources: Iterable[Resource]) -> list[AgentPod]:
    """Every Deployment is taken for an agent unless it declares itself a placeholder: a
    Deployment the rules do not recognise is checked, never silently skipped."""
    pods = []
    for r in resources:
        if r.type != DEPLOYMENT:
            continue
        template = _get(r.props, "spec", "template", default={})
        if is_placeholder(template):
            continue
        spec = _get(template, "spec", default={})
        for container in _get(spec, "containers", default=[]):
            env = {e["name"]: str(e["value"]) for e in container.get("env", []) if "value" in e}
            pods.append(AgentPod(
                name=r.name, spec=spec, annotations=_get(template, "metadata", "annotations", default={}),
                labels=_get(template, "metadata", "labels", default={}), container=container, env=env,
            ))
    return pods


def _per_pod(check: Callable[[AgentPod, Context], list[str]]) -> Callable[[list[Resource], Context], list[Finding]]:
    def run(resources: list[Resource], ctx: Context) -> list[Finding]:
        return [(pod.name, message) for pod in agent_pods(resources) for message in check(pod, ctx)]
    return run


def _grace_covers_drain(pod: AgentPod, ctx: Context) -> list[str]:
    needed = pod.pre_stop_seconds + pod.drain_timeout + SHUTDOWN_BUDGET_S
    return _unless(pod.grace >= needed,
                   f"terminationGracePeriodSeconds {pod.grace} < preStop {pod.pre_stop_seconds} + drain timeout "
                   f"{pod.drain_timeout} + shutdown {SHUTDOWN_BUDGET_S} = {needed} s: SIGKILL lands "
                   f"{needed - pod.grace} s before running calls may finish")


def _sleep_only_pre_stop(pod: AgentPod, ctx: Context) -> list[str]:
    if not _is_sleep_only(pod.pre_stop):
        return []
    left = pod.grace - pod.pre_stop_seconds
    return [f"preStop only sleeps {pod.pre_stop_seconds} s: the worker still advertises itself and takes new calls "
            f"during the sleep, then has {left} s of the {pod.grace} s grace left to drain them. The worker drains on "
            "SIGTERM; remove the preStop hook"]


def _command_words(container: Mapping[str, Any]) -> list[str]:
    # list(): CrossGuard hands sequences over as read-only proxies, which do not support `+`.
    return [str(w) for w in [*(container.get("command") or []), *(container.get("args") or [])]]


_MODES = ("start", "dev", "console")


def _agent_statement(script: str) -> tuple[str, bool]:
    """The statement of a `sh -c` script that runs the worker, and whether the shell hands
    over to it (`exec` on the last statement) so the worker, not the shell, gets SIGTERM."""
    statements = [s.strip() for s in re.split(r"&&|\|\||;|\n", script) if s.strip()]
    if not statements:
        return "", False
    runs_worker = [s for s in statements if any(m in s.split() for m in _MODES)]
    statement = runs_worker[-1] if runs_worker else statements[-1]
    return statement, statement is statements[-1] and statement.startswith("exec ")


def _exec_form_start(pod: AgentPod, ctx: Context) -> list[str]:
    words = _command_words(pod.container)
    if not words:
        return ["no command: the image's entrypoint decides; say `python -m voice_agent start` explicitly"]
    messages = []
    if words[0].rsplit("/", 1)[-1] in ("sh", "bash", "dash") and "-c" in words:
        script = words[words.index("-c") + 1] if words.index("-c") + 1 < len(words) else ""
        statement, hands_over = _agent_statement(script)
        if not hands_over:
            messages.append(f"the agent runs under `{shlex.join(words)}`: the shell receives SIGTERM and the worker never "
                            "drains; use exec form, or make the worker the script's last statement with `exec`")
        words = shlex.split(statement.removeprefix("exec "))
    if any(m in words for m in ("dev", "console")):
        messages.append(f"`{shlex.join(words)}` runs development mode, which skips the drain on SIGTERM; use `start`")
    elif "start" not in words:
        messages.append(f"`{shlex.join(words)}` does not run the worker's `start` mode")
    return messages


def _cpu_limit(pod: AgentPod, ctx: Context) -> list[str]:
    return _unless(_get(pod.container, "resources", "limits", "cpu") is not None,
                   "no CPU limit: the worker computes its load against the node's CPU count and over-accepts calls")


def _hpa_for(resources: list[Resource], pod: AgentPod) -> list[Resource]:
    deployment_names = {r.props.get("metadata", {}).get("name") for r in resources if r.name == pod.name}
    return [r for r in resources if r.type == HPA and _get(r.props, "spec", "scaleTargetRef", "name") in deployment_names]


@dataclass(frozen=True)
class CpuTarget:
    """An HPA's CPU target as a percentage of the request, however the HPA states it."""

    percent: float
    average_value_m: float | None = None  # set when the HPA targets absolute CPU per pod

    def describe(self, request_m: float) -> str:
        if self.average_value_m is None:
            return f"{_n(self.percent)}% of a {request_m:.0f}m request"
        return f"{self.average_value_m:.0f}m per pod ({self.percent:.0f}% of a {request_m:.0f}m request)"

    def fix(self, safe_percent: int, request_m: float) -> str:
        if self.average_value_m is None:
            return f"use a target of at most {safe_percent}%"
        return f"use an averageValue of at most {safe_percent * request_m / 100:.0f}m"


def _cpu_target(hpa: Resource, request_m: float) -> CpuTarget | None:
    """Resource and ContainerResource CPU metrics, as Utilization or AverageValue. An
    AverageValue target is absolute CPU per pod and deadlocks the same way a percentage does."""
    for metric in _get(hpa.props, "spec", "metrics", default=[]):
        source = _get(metric, "resource") or _get(metric, "containerResource") or {}
        if _get(source, "name") != "cpu":
            continue
        utilization = _get(source, "target", "averageUtilization")
        if utilization is not None:
            return CpuTarget(float(utilization))
        average = cpu_millicores(_get(source, "target", "averageValue"))
        if average is not None:
            return CpuTarget(average / request_m * 100, average)
    return None


def _scale_up_tolerance(hpa: Resource) -> float:
    """The tolerance the HPA applies before scaling up. A per-HPA `behavior.scaleUp.tolerance`
    (Kubernetes 1.33+, behind the HPAConfigurableTolerance feature) only counts when it is
    larger than the cluster-wide 10%: where the feature is off, the field is ignored."""
    configured = _get(hpa.props, "spec", "behavior", "scaleUp", "tolerance")
    if configured is None:
        return HPA_TOLERANCE
    # A Kubernetes quantity ("0.05" or "50m"); milli-units over 1000 give the fraction.
    return max(HPA_TOLERANCE, cpu_millicores(configured) / 1000)


def _hpa_below_load_threshold(resources: list[Resource], ctx: Context) -> list[Finding]:
    findings = []
    for pod in agent_pods(resources):
        request = cpu_millicores(_get(pod.container, "resources", "requests", "cpu"))
        limit = cpu_millicores(_get(pod.container, "resources", "limits", "cpu"))
        if not ctx.bursting and request:
            limit = request  # Autopilot without bursting forces limit = request
        if not request or not limit:
            continue  # agent-cpu-limit and agent-autopilot-resources report these
        for hpa in _hpa_for(resources, pod):
            target = _cpu_target(hpa, request)
            if target is None:
                continue
            tolerance = _scale_up_tolerance(hpa)
            load = worker_load_at_target(target.percent, request, limit, tolerance)
            if load >= pod.load_threshold:
                safe = max_safe_target(pod.load_threshold, request, limit, tolerance)
                findings.append((hpa.name,
                                 f"HPA target {target.describe(request)} with a {limit:.0f}m effective limit puts each "
                                 f"worker at load {load:.2f} (with the {tolerance:.0%} HPA tolerance) >= load_threshold "
                                 f"{_n(pod.load_threshold)}: every pod reports full before the HPA scales, and new callers wait; "
                                 f"{target.fix(safe, request)}"))
    return findings


def _scale_down_slower(resources: list[Resource], ctx: Context) -> list[Finding]:
    findings = []
    for hpa in (r for r in resources if r.type == HPA):
        up = _get(hpa.props, "spec", "behavior", "scaleUp", "stabilizationWindowSeconds", default=HPA_DEFAULT_UP_WINDOW_S)
        down = _get(hpa.props, "spec", "behavior", "scaleDown", "stabilizationWindowSeconds", default=HPA_DEFAULT_DOWN_WINDOW_S)
        if down <= up:
            findings.append((hpa.name, f"scale-down window {_n(down)} s is not longer than scale-up window {_n(up)} s: "
                                       "capacity leaves as fast as it comes, and each removal drains live calls"))
    return findings


def _extended_duration(pod: AgentPod, ctx: Context) -> list[str]:
    if pod.grace <= AUTOSCALER_GRACE_CAP_S:
        return []
    return _unless(str(pod.annotations.get(SAFE_TO_EVICT)).lower() == "false",
                   f"grace {pod.grace} s exceeds the {AUTOSCALER_GRACE_CAP_S} s the cluster autoscaler honours: a node "
                   f"scale-down kills calls after 10 minutes; annotate the pod {SAFE_TO_EVICT}: \"false\"")


def _mentions(node: Any, text: str) -> bool:
    """Whether a string equal to `text` appears anywhere in nested props. Walks the structure
    rather than str() it: CrossGuard's read-only proxies do not print their contents."""
    if isinstance(node, Mapping):
        return any(_mentions(v, text) for v in node.values())
    if isinstance(node, Sequence) and not isinstance(node, str):
        return any(_mentions(v, text) for v in node)
    return node == text


def _no_spot(pod: AgentPod, ctx: Context) -> list[str]:
    selector = _get(pod.spec, "nodeSelector", default={})
    tolerations = _get(pod.spec, "tolerations", default=[])
    affinity = _get(pod.spec, "affinity", default={})
    if str(selector.get(SPOT_LABEL)).lower() == "true" or any(t.get("key") == SPOT_LABEL for t in tolerations) or _mentions(affinity, SPOT_LABEL):
        return ["Spot Pods get 25 s to stop whatever the grace period says: every live call on a reclaimed node is cut"]
    return []


def _autopilot_resources(pod: AgentPod, ctx: Context) -> list[str]:
    requests = _get(pod.container, "resources", "requests", default={})
    limits = _get(pod.container, "resources", "limits", default={})
    cpu, mem = cpu_millicores(requests.get("cpu")), memory_mib(requests.get("memory"))
    if cpu is None or mem is None:
        return ["CPU or memory request missing: Autopilot applies its defaults (0.5 vCPU / 2 GiB) silently"]
    messages = autopilot_problems(int(cpu), int(mem), ctx.bursting) + _ephemeral_problems(requests)
    if not ctx.bursting:
        cpu_limit, mem_limit = cpu_millicores(limits.get("cpu")), memory_mib(limits.get("memory"))
        if (cpu_limit is not None and cpu_limit != cpu) or (mem_limit is not None and mem_limit != mem):
            messages.append(f"limits {limits.get('cpu')}/{limits.get('memory')} differ from requests "
                            f"{requests.get('cpu')}/{requests.get('memory')}: without bursting Autopilot silently sets limits "
                            "to the requests, so the declared headroom does not exist")
    return messages


def _ephemeral_problems(requests: Mapping[str, Any]) -> list[str]:
    value = requests.get("ephemeral-storage")
    if value is None:
        return []
    mib = memory_mib(value)
    if mib < MIN_EPHEMERAL_MI:
        return [f"ephemeral-storage request {value} is below the Autopilot minimum {MIN_EPHEMERAL_MI}Mi and would be raised silently"]
    if mib > MAX_EPHEMERAL_MI:
        return [f"ephemeral-storage request {value} exceeds the Autopilot maximum {MAX_EPHEMERAL_MI // 1024}Gi and is rejected"]
    return []


def _probes(pod: AgentPod, ctx: Context) -> list[str]:
    missing = [p for p in ("livenessProbe", "startupProbe") if not pod.container.get(p)]
    messages = _unless(not missing, f"missing {', '.join(missing)}: a hung worker is never restarted, or prewarm is killed as a hang")
    return messages + _probe_port_problems(pod)


def _probe_port_problems(pod: AgentPod) -> list[str]:
    """A probe aimed at another port than the worker's health server fails every time: the
    kubelet restarts a pod that was fine (liveness) or never lets it start (startup)."""
    health = int(pod.env.get("AGENT_HEALTH_PORT", HEALTH_PORT))
    named = {port.get("name"): port.get("containerPort") for port in pod.container.get("ports") or []}
    problems = []
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        probe = pod.container.get(kind) or {}
        handler = _get(probe, "httpGet") or _get(probe, "tcpSocket")
        if not handler or _get(handler, "port") is None:
            continue
        port = _get(handler, "port")
        number = named.get(port) if isinstance(port, str) and not port.isdigit() else port
        if number is None:
            problems.append(f"{kind} checks port {port!r}, which no container port is named: the probe always fails")
        elif int(float(number)) != health:
            problems.append(f"{kind} checks port {_n(number)} but the worker serves health on {health} (AGENT_HEALTH_PORT): "
                            "the probe always fails and the kubelet restarts or holds back a healthy pod")
    return problems


def _security_context(pod: AgentPod, ctx: Context) -> list[str]:
    c, p = pod.container.get("securityContext") or {}, pod.spec.get("securityContext") or {}

    def setting(key: str) -> Any:
        return c.get(key, p.get(key))

    problems = []
    if setting("runAsNonRoot") is not True:
        problems.append("runAsNonRoot is not true")
    if c.get("readOnlyRootFilesystem") is not True:
        problems.append("root filesystem is writable")
    if c.get("allowPrivilegeEscalation") is not False:
        problems.append("privilege escalation is allowed")
    if "ALL" not in (_get(c, "capabilities", "drop", default=[]) or []):
        problems.append("capabilities are not dropped")
    if _get(c, "seccompProfile", "type", default=_get(p, "seccompProfile", "type")) != "RuntimeDefault":
        problems.append("no RuntimeDefault seccomp profile")
    return _unless(not problems, "container is not hardened: " + "; ".join(problems))


def _pdb_present(resources: list[Resource], ctx: Context) -> list[Finding]:
    pdbs = [r for r in resources if r.type == PDB]
    findings = []
    for pod in agent_pods(resources):
        covering = [r for r in pdbs if _selects(_get(r.props, "spec", "selector", "matchLabels", default={}), pod.labels)]
        if not covering:
            findings.append((pod.name, "no PodDisruptionBudget selects the agent: a node drain may evict every pod at once"))
        findings += [(r.name, message) for r in covering for message in _pdb_allows_no_disruption(r.props)]
    return findings


def _selects(match_labels: Mapping[str, Any], labels: Mapping[str, Any]) -> bool:
    return bool(match_labels) and all(labels.get(k) == v for k, v in match_labels.items())


def _pdb_allows_no_disruption(props: Mapping[str, Any]) -> list[str]:
    """A budget of zero does not protect calls better than a budget of one: GKE node upgrades
    wait on it for up to an hour and then evict anyway, and the cluster autoscaler never
    removes the node (GKE "Standard cluster upgrades" / "Autopilot upgrades" docs)."""
    max_unavailable = _get(props, "spec", "maxUnavailable")
    min_available = _get(props, "spec", "minAvailable")
    if max_unavailable is not None and str(_n(max_unavailable)) in ("0", "0%"):
        setting = f"maxUnavailable {_n(max_unavailable)}"
    elif str(min_available) == "100%":
        setting = "minAvailable 100%"
    else:
        return []
    return [f"the budget allows no disruption ({setting}): node upgrades stall on it for up to 1 h and then evict anyway, "
            "and the autoscaler can never empty a node; allow one pod at a time (maxUnavailable: 1)"]


RULES: tuple[Rule, ...] = (
    Rule("gke-private-nodes", MANDATORY, "Cluster nodes have no public IPs.", (CLUSTER,), _private_nodes),
    Rule("gke-no-open-control-plane", MANDATORY, "The control plane is not reachable from 0.0.0.0/0.", (CLUSTER,), _no_open_control_plane),
    Rule("gke-release-channel", ADVISORY, "The cluster follows a release channel.", (CLUSTER,), _release_channel),
    Rule("gke-deletion-protection", MANDATORY, "Protected stacks keep deletion protection on.", (CLUSTER,), _deletion_protection,
         config=("protected",)),
    Rule("gke-no-default-compute-sa", MANDATORY, "Nodes do not run as the default compute service account.", (CLUSTER,), _no_default_compute_sa),
    Rule("gke-autopilot-no-node-config", MANDATORY, "Autopilot clusters set no node_config.", (CLUSTER,), _autopilot_no_node_config),
    Rule("subnet-private-google-access", MANDATORY, "Node subnets have Private Google Access.", (SUBNET,), _private_google_access),
    Rule("nat-all-subnet-ranges", MANDATORY, "Cloud NAT covers every subnet range, pods included.", (NAT,), _nat_all_ranges),
    Rule("nat-error-logging", ADVISORY, "Cloud NAT logs errors.", (NAT,), _nat_logs_errors),
    Rule("no-node-external-ip", MANDATORY, "No VM or instance template gets an external IP.", (INSTANCE, INSTANCE_TEMPLATE), _no_external_ip),
    Rule("registry-immutable-tags", MANDATORY, "Docker repositories have immutable tags.", (REPOSITORY,), _immutable_tags),
    Rule("registry-cleanup-policies", ADVISORY, "Repositories have active cleanup policies.", (REPOSITORY,), _cleanup_policies),
    Rule("registry-node-reader", MANDATORY, "The node service account can pull from the repository.", check_stack=_node_sa_reader),
    Rule("no-service-account-keys", MANDATORY, "No service-account keys exist.", check_stack=_no_sa_keys),
    Rule("vertex-via-workload-identity", MANDATORY, "Vertex AI access goes to a Workload Identity principal.", check_stack=_vertex_by_workload_identity),
    Rule("agent-grace-covers-drain", MANDATORY, "Grace covers preStop + drain timeout + shutdown budget.", check_stack=_per_pod(_grace_covers_drain)),
    Rule("agent-no-sleep-prestop", MANDATORY, "No preStop that only sleeps while the worker takes calls.", check_stack=_per_pod(_sleep_only_pre_stop)),
    Rule("agent-exec-form-start", MANDATORY, "The worker gets SIGTERM directly and runs `start` mode.", check_stack=_per_pod(_exec_form_start)),
    Rule("agent-cpu-limit", MANDATORY, "The agent container has a CPU limit.", check_stack=_per_pod(_cpu_limit)),
    Rule("agent-hpa-below-load-threshold", MANDATORY, "HPA target x request/limit stays below the worker's load threshold.", check_stack=_hpa_below_load_threshold,
         config=("bursting",)),
    Rule("agent-scale-down-slower", ADVISORY, "Scale-down is slower than scale-up.", check_stack=_scale_down_slower),
    Rule("agent-extended-duration", MANDATORY, "Grace beyond 10 minutes comes with safe-to-evict=false.", check_stack=_per_pod(_extended_duration)),
    Rule("agent-no-spot", MANDATORY, "Live sessions do not run on Spot Pods.", check_stack=_per_pod(_no_spot)),
    Rule("agent-autopilot-resources", ADVISORY, "Requests and limits are valid on Autopilot as declared.", check_stack=_per_pod(_autopilot_resources),
         config=("bursting",)),
    Rule("agent-probes", ADVISORY, "The agent has liveness and startup probes.", check_stack=_per_pod(_probes)),
    Rule("agent-security-context", MANDATORY, "The agent container is hardened.", check_stack=_per_pod(_security_context)),
    Rule("agent-pdb", ADVISORY, "A PodDisruptionBudget covers the agent.", check_stack=_pdb_present),
)

RULES_BY_ID = {rule.id: rule for rule in RULES}
