"""ToolIdentity: a tool server's own Google identity. The agent's identity gains nothing.

Places API (New) accepts OAuth tokens with the cloud-platform scope and bills the project named
in X-Goog-User-Project (https://developers.google.com/maps/documentation/places/web-service/
oauth-token); using a project as quota project needs serviceusage.services.use on it, which
roles/serviceusage.serviceUsageConsumer holds. So the tool server needs no API key at all.

Whose token: not the pod's own Workload Identity Federation principal (what the agent uses for
Vertex AI). Google lists the products that accept federated tokens ("Identity federation:
products and limitations", https://cloud.google.com/iam/docs/federated-identity-supported-services,
read 2026-12-07) and Google Maps Platform is not among them as far as that page could be read
(tooling/preconditions.py federated-token-accepted). So the tool server acts as a Google service
account of its own that holds that one role: its Kubernetes service account is linked to it
(annotation iam.gke.io/gcp-service-account, k8s/tool_server.py) and may act as it
(roles/iam.workloadIdentityUser for `serviceAccount:<pool>[<ns>/<ksa>]`), and the GKE metadata
server then hands the pod that account's token on the same URL the server already reads
(GKE docs, "Authenticate to Google Cloud APIs from GKE workloads": link Kubernetes
ServiceAccounts to IAM). Still no key anywhere; tools/places is unchanged.

Why not an API key in Secret Manager: a key is a bearer secret that works from anywhere until
someone rotates it; the metadata server's token is minted for this pod only and lasts an hour.
The key's one advantage, an API restriction to places.googleapis.com, is matched here by the
account holding no other Google role and by egress limited to TCP 443.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.identity import principal_of
from infra.accounts import bootstrap_account
from infra.names import child, tool_account_id, type_token

QUOTA_ROLE = "roles/serviceusage.serviceUsageConsumer"
WORKLOAD_IDENTITY_USER = "roles/iam.workloadIdentityUser"


def linked_member(pool: str, namespace: str, ksa: str) -> str:
    """The member a Kubernetes service account is in IAM when it acts as a Google service
    account (GKE docs, "Link Kubernetes ServiceAccounts to IAM")."""
    return f"serviceAccount:{pool}[{namespace}/{ksa}]"


@dataclass(frozen=True)
class ToolIdentityArgs:
    project: str
    stack: str
    tool: str  # "places"
    namespace: str
    service_account: str  # the tool server's Kubernetes service account, e.g. places-mcp
    # The cluster's pool, as for AgentIdentity: IAM refuses a grant naming the pool before a
    # cluster of the project exists, so the grant must wait for the cluster's output.
    workload_pool: pulumi.Input[str]


class ToolIdentity(pulumi.ComponentResource):
    principal: pulumi.Output[str]  # the pod's own federated principal (it holds no role)
    email: pulumi.Output[str]  # the Google service account the tool server acts as

    def __init__(self, name: str, args: ToolIdentityArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("infra", "ToolIdentity"), name, None, opts)
        child_opts = pulumi.ResourceOptions(parent=self)
        self.principal = principal_of(self, args.project, args.workload_pool, args.namespace, args.service_account)
        # Created by the bootstrap (infra/accounts.py), like every account the stack runs as.
        account = bootstrap_account(args.project, tool_account_id(args.stack, args.tool),
                                    f"the {args.tool} tool server's identity", args.stack)
        gcp.projects.IAMMember(child(name, "quota-user"), project=args.project, role=QUOTA_ROLE,
                               member=account.member, opts=child_opts)
        # The pool exists once the cluster does: taking it from the cluster's output makes the
        # grant wait (infra/identity.py AgentIdentityArgs).
        gcp.serviceaccount.IAMMember(
            child(name, "link"), service_account_id=account.name, role=WORKLOAD_IDENTITY_USER,
            member=pulumi.Output.from_input(args.workload_pool).apply(
                lambda pool: linked_member(pool, args.namespace, args.service_account)),
            opts=child_opts)
        self.email = pulumi.Output.from_input(account.email)
        self.register_outputs({"principal": self.principal, "email": self.email})
