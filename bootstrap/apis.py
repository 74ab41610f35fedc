"""EnabledApis: the Google APIs CI and the main program call, switched on once.

The deployer cannot enable APIs itself (that would need serviceusage.serviceUsageAdmin), so the
bootstrap does it with the operator's rights. Destroying the bootstrap never switches an API off
again: a running cluster depends on them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra import apis as infra_apis
from infra.names import child, type_token

# The token exchange (sts), impersonation (iamcredentials) and the identities themselves (iam).
HOME_APIS = ("iam.googleapis.com", "iamcredentials.googleapis.com", "sts.googleapis.com",
             "cloudresourcemanager.googleapis.com")
STATE_APIS = ("storage.googleapis.com",)
KMS_APIS = ("cloudkms.googleapis.com",)
# The attestor and its note (bootstrap/attestation.py).
ATTESTATION_APIS = ("binaryauthorization.googleapis.com", "containeranalysis.googleapis.com")
# In the projects the build pushes to: the scan that gates each signature (On-Demand Scanning).
BUILD_APIS = ("ondemandscanning.googleapis.com",)
# What the main program's resources live on: one list, infra/apis.py (the README's enable
# command is checked against the same list).
STACK_APIS = tuple(sorted(infra_apis.STACK_APIS))


@dataclass(frozen=True)
class EnabledApisArgs:
    services: tuple[tuple[str, str], ...]  # (project, service)


class EnabledApis(pulumi.ComponentResource):
    def __init__(self, name: str, args: EnabledApisArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("bootstrap", "EnabledApis"), name, None, opts)
        child_opts = pulumi.ResourceOptions(parent=self)
        for project, service in sorted(set(args.services)):
            gcp.projects.Service(
                child(name, f"{project}-{service.split('.')[0]}"),
                project=project,
                service=service,
                disable_on_destroy=False,
                disable_dependent_services=False,
                opts=child_opts,
            )
        self.register_outputs({})
