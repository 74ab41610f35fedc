"""What every policy rule is made of: the resource view, the per-stack context, the Rule record,
the resource type tokens and small readers of wire-form (camelCase) props.

Rules are pure functions over those props. The CrossGuard pack (policy/pack.py), the offline
plan (tooling/plan.py) and the tests all call the same functions; every message says what breaks,
with the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

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


def prop(props: Mapping[str, Any] | None, *path: str, default: Any = None) -> Any:
    node: Any = props
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return default
        node = node[key]
    return default if node is None else node


def unless(condition: bool, message: str) -> list[str]:
    return [] if condition else [message]


def as_number(value: Any) -> str:
    """A number as people write it. CrossGuard hands every number over as a float (protobuf
    Struct), the mocks as an int; messages must read the same either way."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
