"""Which CI identity may do what, as data. Components turn these into IAM members.

Three kinds of identity, each reachable only from one kind of GitHub job:
- a deployer per stack: jobs of the deploy workflow on main in that stack's GitHub environment
  (`environment: production`), so the environment's required reviewers gate every use of it;
- one builder: the deploy workflow's build job on main, in its own environment; pushes new
  images to the first stages' registries and alone signs their attestations;
- one previewer: pull-request jobs; read-only and only on the previewed stacks, never a gated one;
- nobody else: the provider refuses tokens from any other repository, workflow or ref.
None of them holds any role in the home project, where the CI identities, the pool and the state
live: their rights there are per bucket and per key, each limited to their own stage.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from bootstrap.config import BootstrapConfig, Environment
from infra.cluster import NODE_ROLES
from infra.identity import VERTEX_ROLE
from infra.database import CLIENT_ROLES as DATABASE_CLIENT_ROLES
from infra.names import ACCOUNT_TOOLS, account_email, livekit_secret_id, stack_account_ids


@dataclass(frozen=True)
class RoleUse:
    role: str
    covers: tuple[str, ...]  # resource type prefixes of the main program this role lets CI manage
    why: str


# What `pulumi up` of the main program needs, nothing more. tests/ci checks that every
# resource type in the offline plan of every stack is covered by one of these.
DEPLOYER_ROLES: tuple[RoleUse, ...] = (
    RoleUse("roles/compute.networkAdmin", ("gcp:compute/",), "VPC, subnet, Cloud Router and Cloud NAT"),
    RoleUse("roles/container.admin", ("gcp:container/", "kubernetes:"),
            "the Autopilot cluster, and every Kubernetes object through the DNS endpoint (container.clusters.connect)"),
    RoleUse("roles/artifactregistry.admin", ("gcp:artifactregistry/",),
            "the registry, its cleanup policies and its reader grant; pushes the agent image"),
    RoleUse("roles/pubsub.editor", ("gcp:pubsub/",), "the GKE upgrade-notification topic (upgradeNotifications)"),
    RoleUse("roles/cloudkms.admin", ("gcp:kms/",),
            "the key rings, the keys that encrypt Kubernetes Secrets and the checkpoints, and the grants on them "
            "(the GKE service agent's, the agent's)"),
    RoleUse("roles/monitoring.editor", ("gcp:monitoring/",), "the runbook dashboard and alert policies"),
    # No narrower predefined role both creates secrets and sets their IAM policy; the deployer
    # already writes the values (they come from its stack config). Granted with a condition:
    # only the stack's own secrets (secret_grants_condition), never the project's others.
    RoleUse("roles/secretmanager.admin", ("gcp:secretmanager/",),
            "the LiveKit credential secrets, their versions and the agent's read grant on them (livekitCredentials); "
            "only secrets named <stack>-livekit-..."),
    RoleUse("roles/binaryauthorization.policyEditor", ("gcp:binaryauthorization/",),
            "the project's image admission policy (binaryAuthorization)"),
    # compute.networkAdmin above already covers the reserved range (gcp:compute/globalAddress).
    RoleUse("roles/cloudsql.admin", ("gcp:sql/",), "the checkpoint database, its database and its IAM user (recoveryEnabled)"),
    RoleUse("roles/servicenetworking.networksAdmin", ("gcp:servicenetworking/",),
            "the private services access peering that gives the checkpoint database its private IP"),
)

# On each service account the stack runs as, never on the project (ACCOUNT_ROLES below).
ACCOUNT_ADMIN_ROLE = "roles/iam.serviceAccountAdmin"
ACT_AS_ROLE = "roles/iam.serviceAccountUser"
# Project-wide, either role would reach every account of the stage's project (a default compute
# account holding Editor included), and IAM Conditions cannot narrow them to some accounts:
# iam.googleapis.com is not among the services that evaluate resource attributes ("Resource
# attributes for IAM Conditions", https://cloud.google.com/iam/docs/conditions-resource-attributes).
# So the bootstrap creates the stack's accounts (infra/names.py stack_account_ids; the stack only
# looks them up, infra/accounts.py) and grants these on each account alone. The deployer needs no
# iam.serviceAccounts.create anywhere.
ACCOUNT_ROLES: tuple[tuple[RoleUse, tuple[str, ...]], ...] = (
    (RoleUse(ACCOUNT_ADMIN_ROLE, ("gcp:serviceaccount/",),
             "read the account and set its policy: the agent's token creator grant on the database account, the "
             "tool server's Workload Identity link on its own account"), ("nodes", "database", *ACCOUNT_TOOLS)),
    (RoleUse(ACT_AS_ROLE, (), "attach the node account to the cluster (actAs)"), ("nodes",)),
)

# Project-level grants the main program makes. The deployer may add or remove exactly these and
# nothing else: an unconditioned projectIamAdmin could grant itself Owner.
# roles/monitoring.viewer: the HPA's metrics adapter reads the calls metric (k8s/metrics_adapter.py).
# The checkpoint database's service account logs in as an IAM database user (infra/database.py).
# roles/serviceusage.serviceUsageConsumer: the Places tool server's own principal bills its
# calls to the project (infra/tool_identity.py); the agent's principal never gets it.
DELEGATED_ROLES: tuple[str, ...] = tuple(sorted({*NODE_ROLES, VERTEX_ROLE, "roles/monitoring.viewer", *DATABASE_CLIENT_ROLES,
                                                 "roles/serviceusage.serviceUsageConsumer"}))
PROJECT_IAM_ADMIN = "roles/resourcemanager.projectIamAdmin"
PROJECT_IAM_COVERS = ("gcp:projects/iAMMember:",)

# Read-only: a preview reads state, decrypts config and diffs; the Kubernetes provider falls back
# to a client-side diff when the server-side dry run is forbidden (pulumi-kubernetes #2419).
PREVIEWER_ROLES: tuple[RoleUse, ...] = (
    RoleUse("roles/viewer", (), "read every GCP resource the stack manages"),
    RoleUse("roles/container.viewer", (), "read-only Kubernetes API through the DNS endpoint"),
)

# The image is promoted by copying it from the source stack's registry.
PROMOTION_SOURCE_ROLE = "roles/artifactregistry.reader"

# The builder, in the projects of the stages it pushes to: push images, and store the attestation
# occurrences it signs there (gcloud ... sign-and-create --project).
BUILDER_ROLES: tuple[RoleUse, ...] = (
    RoleUse("roles/artifactregistry.writer", (), "push each new image (agent, tool servers) to the stage's registry"),
    RoleUse("roles/containeranalysis.occurrences.editor", (), "store the attestation it signs for each pushed digest"),
    RoleUse("roles/ondemandscanning.admin", (), "scan each pushed digest before signing it (gcloud artifacts docker images scan --remote)"),
)
SECRET_ADMIN_ROLE = "roles/secretmanager.admin"

# State and secrets. Preview never locks or writes DIY state (pulumi pkg/backend/diy: Preview
# runs the engine dry, without Lock or history), so the previewer only reads it.
STATE_WRITER_ROLE = "roles/storage.objectUser"
STATE_READER_ROLE = "roles/storage.objectViewer"
# Stack secrets are encrypted with a data key that KMS wraps; CI only ever unwraps it.
KEY_DECRYPTER_ROLE = "roles/cloudkms.cryptoKeyDecrypter"
KEY_USER_ROLE = "roles/cloudkms.cryptoKeyEncrypterDecrypter"


@dataclass(frozen=True)
class IamCondition:
    title: str
    expression: pulumi.Input[str]
    description: str = ""


@dataclass(frozen=True)
class ProjectGrant:
    project: str
    role: str
    condition: IamCondition | None = None

    @property
    def key(self) -> str:
        """Stable child-name suffix: project and role, never a list position."""
        return f"{self.project}-{self.role.removeprefix('roles/').replace('.', '-').lower()}"


def delegated_grants_condition(roles: tuple[str, ...] = DELEGATED_ROLES) -> IamCondition:
    """The documented way to delegate role grants: the request may only touch these roles."""
    quoted = ", ".join(f"'{r}'" for r in roles)
    return IamCondition(
        title="only-the-stacks-own-grants",
        description="May add or remove only the project roles the gke-voice-agents program grants.",
        expression=f"api.getAttribute('iam.googleapis.com/modifiedGrantsByRole', []).hasOnly([{quoted}])",
    )


def secret_grants_condition(project_number: pulumi.Input[str], stack: str) -> IamCondition:
    """Secret Manager is a service IAM Conditions evaluate resource attributes for (IAM docs,
    "Resource attributes for IAM Conditions": secretmanager.googleapis.com is listed; resource
    names there carry the project NUMBER, projects/<number>/secrets/<id>). Creating a secret is
    checked on the project itself, which the first clause admits: creating, listing and nothing
    else of the role applies to a project; every other permission needs a secret of the stack."""
    prefix = livekit_secret_id(stack, "")
    expression = pulumi.Output.from_input(project_number).apply(
        lambda number: f"resource.type == 'cloudresourcemanager.googleapis.com/Project' || "
                       f"resource.name.startsWith('projects/{number}/secrets/{prefix}')")
    return IamCondition(title="only-the-stacks-own-secrets",
                        description=f"Secrets whose id starts with {prefix}: the ones stack {stack} creates.",
                        expression=expression)


def deployer_grants(env: Environment, cfg: BootstrapConfig, project_number: pulumi.Input[str]) -> tuple[ProjectGrant, ...]:
    grants = [ProjectGrant(env.project, use.role,
                           secret_grants_condition(project_number, env.stack) if use.role == SECRET_ADMIN_ROLE else None)
              for use in DEPLOYER_ROLES]
    grants.append(ProjectGrant(env.project, PROJECT_IAM_ADMIN, delegated_grants_condition()))
    if env.promote_from is not None:
        grants.append(ProjectGrant(cfg.environment(env.promote_from).project, PROMOTION_SOURCE_ROLE))
    return _unique(grants)


@dataclass(frozen=True)
class AccountGrant:
    """A role on one service account of a stage (its resource-level policy), never on a project."""
    project: str
    purpose: str  # a key of infra/names.py stack_account_ids
    account_id: str
    role: str

    @property
    def email(self) -> str:
        return account_email(self.account_id, self.project)

    @property
    def key(self) -> str:
        return f"{self.purpose}-{self.role.removeprefix('roles/').replace('.', '-').lower()}"


def deployer_account_grants(env: Environment) -> tuple[AccountGrant, ...]:
    """The stage's deployer on each account its stack runs as, and on nothing else."""
    accounts = stack_account_ids(env.stack)
    return tuple(AccountGrant(env.project, purpose, accounts[purpose], use.role)
                 for use, purposes in ACCOUNT_ROLES for purpose in purposes)


def previewer_grants(cfg: BootstrapConfig) -> tuple[ProjectGrant, ...]:
    """Only the previewed stacks' projects: pull-request code runs as this identity."""
    return _unique([ProjectGrant(cfg.environment(stack).project, use.role)
                    for stack in cfg.preview_stacks for use in PREVIEWER_ROLES])


def builder_grants(cfg: BootstrapConfig) -> tuple[ProjectGrant, ...]:
    """Only the stages the build pushes to (promoted from nothing); gated stages get copies made
    by their own deployer after the approval."""
    return _unique([ProjectGrant(cfg.environment(stack).project, use.role)
                    for stack in cfg.build_stacks for use in BUILDER_ROLES])


def _unique(grants: list[ProjectGrant]) -> tuple[ProjectGrant, ...]:
    """Two stacks in one project must not produce two resources with the same name."""
    return tuple({g.key: g for g in grants}.values())
