"""AgentIdentity: the agent's Kubernetes service account may call Vertex AI. No keys exist."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.names import child, type_token

VERTEX_ROLE = "roles/aiplatform.user"


def workload_principal(project_number: str, pool: str, namespace: str, ksa: str) -> str:
    """A Workload Identity Federation principal for one Kubernetes service account in the
    `<project>.svc.id.goog` pool every Autopilot cluster has: no Google service account needed."""
    return (
        f"principal://iam.googleapis.com/projects/{project_number}/locations/global/"
        f"workloadIdentityPools/{pool}/subject/ns/{namespace}/sa/{ksa}"
    )


def principal_of(parent: pulumi.Resource, project: str, workload_pool: pulumi.Input[str], namespace: str,
                 ksa: str) -> pulumi.Output[str]:
    """The principal of one Kubernetes service account, resolved once the project number is
    known and the cluster has made its pool (AutopilotCluster.workload_pool): every grant to it
    waits for the cluster, since IAM refuses one naming the pool before (TGKE #916)."""
    number = gcp.organizations.get_project_output(project_id=project, opts=pulumi.InvokeOutputOptions(parent=parent)).number
    return pulumi.Output.all(number, workload_pool).apply(lambda a: workload_principal(a[0], a[1], namespace, ksa))


@dataclass(frozen=True)
class AgentIdentityArgs:
    project: str
    namespace: str
    service_account: str
    # The cluster's pool (AutopilotCluster.workload_pool). The pool exists only once a cluster
    # of the project does; IAM refuses a grant naming it before ("Identity Pool does not
    # exist", terraform-google-kubernetes-engine #916), so the grant must wait for the cluster.
    # Taking the name from the cluster's output is what makes it wait.
    workload_pool: pulumi.Input[str]


class AgentIdentity(pulumi.ComponentResource):
    principal: pulumi.Output[str]

    def __init__(self, name: str, args: AgentIdentityArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("infra", "AgentIdentity"), name, None, opts)
        child_opts = pulumi.ResourceOptions(parent=self)
        self.principal = principal_of(self, args.project, args.workload_pool, args.namespace, args.service_account)
        gcp.projects.IAMMember(
            child(name, "vertex-user"),
            project=args.project, role=VERTEX_ROLE, member=self.principal, opts=child_opts,
        )
        self.register_outputs({"principal": self.principal})
