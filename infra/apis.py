"""The Google APIs a stack's project must have enabled before its first `pulumi up`, and why.

One home: the README's `gcloud services enable` command (tests/test_readme.py) and the CI
bootstrap's list (bootstrap/apis.py) are checked against this. Nothing here calls an API; the
deployer cannot enable APIs itself (that needs serviceusage.serviceUsageAdmin).
"""

from __future__ import annotations

STACK_APIS: dict[str, str] = {
    "container.googleapis.com": "the Autopilot cluster",
    "compute.googleapis.com": "VPC, subnet, Cloud Router and Cloud NAT",
    "artifactregistry.googleapis.com": "the agent's image repository",
    # AgentRegistry's scanning is INHERITED: without this API nothing is ever scanned.
    "containerscanning.googleapis.com": "vulnerability scanning of pushed images",
    "aiplatform.googleapis.com": "Gemini Live on Vertex AI",
    "iam.googleapis.com": "the node service account and the IAM grants",
    "iamcredentials.googleapis.com": "Workload Identity token exchange",
    "cloudresourcemanager.googleapis.com": "project IAM and the project number lookup",
    "secretmanager.googleapis.com": "the LiveKit credential secrets and the cluster's add-on that mounts them",
    "pubsub.googleapis.com": "the GKE upgrade-notification topic (upgradeNotifications)",
    "cloudkms.googleapis.com": "the keys that encrypt Kubernetes Secrets (secretsEncryption) and the checkpoints (recoveryEnabled)",
    "binaryauthorization.googleapis.com": "the image admission policy (binaryAuthorization)",
    "places.googleapis.com": "the Places tool server's upstream (placesToolEnabled; tools/places)",
    "monitoring.googleapis.com": "the runbook dashboard and alert policies (infra/monitoring.py), the HPA's calls metric",
    "sqladmin.googleapis.com": "the checkpoint database, and the Auth Proxy's certificates (recoveryEnabled)",
    "servicenetworking.googleapis.com": "the checkpoint database's private IP (private services access)",
}
