"""ToolIdentity: a tool server's own Google identity. The agent's identity gains nothing.

Places API (New) accepts OAuth tokens with the cloud-platform scope and bills the project named
in X-Goog-User-Project (https://developers.google.com/maps/documentation/places/web-service/
oauth-token); using a project as quota project needs serviceusage.services.use on it, which
roles/serviceusage.serviceUsageConsumer holds. So the tool server needs no API key at all: its
Kubernetes service account gets that one role through a Workload Identity Federation principal
binding (as the agent gets Vertex AI, infra/identity.py), and nothing is stored anywhere.

Why not an API key in Secret Manager: a key is a bearer secret that works from anywhere until
someone rotates it; a Workload Identity token is minted for this pod only and lasts an hour.
The key's one advantage, an API restriction to places.googleapis.com, is matched here by the
tool server holding no other Google role and by egress limited to TCP 443. If Places ever
refused federated tokens, the fallback is a Google service account the KSA impersonates
(roles/iam.workloadIdentityUser), still without a key.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.identity import principal_of
from infra.names import child, type_token

QUOTA_ROLE = "roles/serviceusage.serviceUsageConsumer"


@dataclass(frozen=True)
class ToolIdentityArgs:
    project: str
    namespace: str
    service_account: str  # the tool server's Kubernetes service account, e.g. places-mcp
    # The cluster's pool, as for AgentIdentity: IAM refuses a grant naming the pool before a
    # cluster of the project exists, so the grant must wait for the cluster's output.
    workload_pool: pulumi.Input[str]


class ToolIdentity(pulumi.ComponentResource):
    principal: pulumi.Output[str]

    def __init__(self, name: str, args: ToolIdentityArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("infra", "ToolIdentity"), name, None, opts)
        self.principal = principal_of(self, args.project, args.workload_pool, args.namespace, args.service_account)
        gcp.projects.IAMMember(child(name, "quota-user"), project=args.project, role=QUOTA_ROLE,
                               member=self.principal, opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({"principal": self.principal})
