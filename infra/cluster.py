"""AutopilotCluster: a private GKE Autopilot cluster, reached through its IAM-gated DNS endpoint."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Mapping

import pulumi
import pulumi_gcp as gcp
import pulumi_random as random

from domain.settings import ClusterSettings
from infra.accounts import bootstrap_account
from infra.kubeconfig import render_kubeconfig
from infra.names import child, name_part, node_account_id, type_token

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
# Least privilege for nodes (GKE hardening guide): this one role carries logging, monitoring
# and the rest a node needs. Image pulls are granted on the one repository by AgentRegistry.
# bootstrap/roles.py reads this tuple: CI may grant exactly these roles and no others.
NODE_ROLES = ("roles/container.defaultNodeServiceAccount",)
# Cluster names are at most 40 characters (GCP naming rules): "voice-agents-<stack>-<4 hex>".
# The node account's id is infra/names.py node_account_id (the bootstrap creates the account).
_CLUSTER_STACK_CHARS = 22
# Two random bytes: four hex digits, plenty to tell apart the clusters of one project.
_SUFFIX_BYTES = 2


# Kubernetes state the agent's operators watch (HPA decisions, rollout progress, pod restarts),
# on top of SYSTEM_COMPONENTS. Sending enable_components without SYSTEM_COMPONENTS, or an empty
# list, turns system metrics off (TGKE #1786); Autopilot requires them, so they are always sent.
SYSTEM_METRICS = ("SYSTEM_COMPONENTS",)
WORKLOAD_STATE_METRICS = ("HPA", "DEPLOYMENT", "POD")
# What operators need to hear before a node upgrade drains calls, and security bulletins.
NOTIFIED_EVENTS = ("UPGRADE_AVAILABLE_EVENT", "UPGRADE_EVENT", "SECURITY_BULLETIN_EVENT")


@dataclass(frozen=True)
class AutopilotClusterArgs:
    project: str
    region: str
    stack: str
    network_id: pulumi.Input[str]
    subnet_id: pulumi.Input[str]
    pod_range_name: str
    service_range_name: str
    settings: ClusterSettings
    # projects/<p>/topics/<t> for upgrade notifications (infra/notifications.py), or None.
    notification_topic: pulumi.Input[str] | None = None
    # The Cloud KMS key for application-layer Secrets encryption (infra/encryption.py), or None.
    # Its Output must resolve only once the GKE service agent may use the key.
    secrets_key: pulumi.Input[str] | None = None
    # The lowest GKE version the stack's objects need (e.g. CapacityBuffer,
    # k8s/spare_capacity.CAPACITY_BUFFER_MIN_VERSION), or None: the channel's default. GKE
    # creates the control plane at least at this version and refuses one its channel does not
    # offer, so `pulumi up` fails at the cluster rather than at a kind the cluster cannot serve.
    min_master_version: str | None = None


class AutopilotCluster(pulumi.ComponentResource):
    name: pulumi.Output[str]
    location: pulumi.Output[str]
    dns_endpoint: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]  # secret
    node_service_account_email: pulumi.Output[str]
    node_service_account_member: pulumi.Output[str]
    workload_pool: pulumi.Output[str]  # <project>.svc.id.goog, once the cluster exists

    def __init__(self, name: str, args: AutopilotClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("infra", "AutopilotCluster"), name, None, opts)
        child_opts = pulumi.ResourceOptions(parent=self)
        # The suffix lets dev and prod share a project, and makes a replacement a new cluster:
        # its keepers are the inputs that force GKE to replace the cluster, so a change to one
        # draws a new suffix, hence a new name, and Pulumi creates the new cluster before it
        # deletes the old one (in prod the deletion then stops on deletion protection, with the
        # new cluster already serving). Without keepers the replacement would reuse the name,
        # which forces delete-before-create: every call dropped in dev, a stuck update in prod.
        suffix = random.RandomId(child(name, "suffix"), byte_length=_SUFFIX_BYTES,
                                 keepers=replacement_keepers(args), opts=child_opts)
        # Created by the bootstrap (infra/accounts.py): one per stack, whatever cluster uses it,
        # so a replacement cluster starts with the same account as the one it replaces.
        node_sa = bootstrap_account(args.project, node_account_id(args.stack), "the cluster's nodes", args.stack)
        grants = [
            gcp.projects.IAMMember(
                child(name, f"nodes-{role_key(role)}"),
                project=args.project, role=role, member=node_sa.member, opts=child_opts,
            )
            for role in NODE_ROLES
        ]
        cluster = gcp.container.Cluster(
            child(name, "cluster"),
            name=suffix.hex.apply(lambda h: f"voice-agents-{name_part(args.stack, _CLUSTER_STACK_CHARS)}-{h}"),
            **_cluster_args(args, node_sa.email),
            # Nodes booted before their role is granted cannot write logs or metrics.
            opts=pulumi.ResourceOptions(parent=self, depends_on=grants),
        )
        self.name = cluster.name
        self.location = cluster.location
        # Read from the cluster, not computed: whatever needs the `<project>.svc.id.goog` pool
        # (AgentIdentity's grants) then waits for the cluster that creates it.
        self.workload_pool = cluster.workload_identity_config.apply(lambda c: c.workload_pool if c else "")
        self.dns_endpoint = cluster.control_plane_endpoints_config.apply(_dns_endpoint)
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(cluster.name, self.dns_endpoint).apply(lambda a: render_kubeconfig(a[0], a[1]))
        )
        self.node_service_account_email = pulumi.Output.from_input(node_sa.email)
        self.node_service_account_member = pulumi.Output.from_input(node_sa.member)
        self.register_outputs({
            "name": self.name,
            "location": self.location,
            "dnsEndpoint": self.dns_endpoint,
            "kubeconfig": self.kubeconfig,
            "nodeServiceAccount": self.node_service_account_email,
        })


def replacement_keepers(args: AutopilotClusterArgs) -> dict[str, pulumi.Input[str]]:
    """The cluster inputs that GKE cannot change in place (ForceNew in the Terraform google
    provider that pulumi-gcp 10.2.0 bridges): project, location, network, subnetwork and the
    secondary ranges. Keyed by name, so adding one later changes only that key."""
    return {
        "project": args.project,
        "location": args.region,
        "network": args.network_id,
        "subnetwork": args.subnet_id,
        "podRange": args.pod_range_name,
        "serviceRange": args.service_range_name,
    }


def role_key(role: str) -> str:
    """A role as a stable child-name fragment: roles/container.defaultNodeServiceAccount ->
    container-defaultnodeserviceaccount."""
    return role.removeprefix("roles/").replace(".", "-").lower()


def _dns_endpoint(endpoints) -> str:
    config = endpoints.dns_endpoint_config if endpoints else None
    return (config.endpoint if config else None) or ""


def _cluster_args(args: AutopilotClusterArgs, node_sa_email: pulumi.Input[str]) -> dict:
    s = args.settings
    return {
        "project": args.project,
        # A region, not a zone: Autopilot clusters are regional, the control plane replicated.
        "location": args.region,
        "enable_autopilot": True,
        "network": args.network_id,
        "subnetwork": args.subnet_id,
        "ip_allocation_policy": {
            "cluster_secondary_range_name": args.pod_range_name,
            "services_secondary_range_name": args.service_range_name,
        },
        "private_cluster_config": {"enable_private_nodes": True},
        **_control_plane_access(s.authorized_networks),
        "release_channel": {"channel": s.release_channel},
        **({"min_master_version": args.min_master_version} if args.min_master_version else {}),
        "maintenance_policy": _maintenance_policy(s),
        "deletion_protection": s.deletion_protection,
        "monitoring_config": _monitoring(s),
        **_hardening(args),
        # Lets workloads mount Secret Manager secrets as files, should a team move the LiveKit
        # credentials there instead of a Kubernetes Secret.
        "secret_manager_config": {"enabled": True},
        "security_posture_config": _security_posture(),
        # Autopilot always runs Workload Identity Federation; stating the pool documents the
        # principal AgentIdentity binds.
        "workload_identity_config": {"workload_pool": f"{args.project}.svc.id.goog"},
        # Autopilot takes the node identity from here. node_config must stay unset: on
        # Autopilot it is a known perma-diff that replaces the cluster.
        "cluster_autoscaling": {
            "auto_provisioning_defaults": {
                "service_account": node_sa_email,
                # The broad scope is the recommended pairing with a least-privilege account:
                # IAM, not access scopes, decides what the nodes may do.
                "oauth_scopes": [CLOUD_PLATFORM_SCOPE],
            }
        },
    }


def _monitoring(s: ClusterSettings) -> dict:
    """System metrics always; Kubernetes state metrics unless turned off; Managed Prometheus for
    the agent's PodMonitoring (k8s/workload.py)."""
    components = SYSTEM_METRICS + (WORKLOAD_STATE_METRICS if s.workload_state_metrics else ())
    return {"enable_components": list(components), "managed_prometheus": {"enabled": True}}


def _hardening(args: AutopilotClusterArgs) -> dict:
    """What the best GKE modules add (issue 15), each from its setting."""
    s = args.settings
    hardening: dict = {
        # The kubelet's unauthenticated read-only port (10255) exposes pod specs and metrics to
        # anything on the node network. Always off: nothing here reads it.
        "node_pool_auto_config": {"node_kubelet_config": {"insecure_kubelet_readonly_port_enabled": "FALSE"}},
        "cost_management_config": {"enabled": s.cost_allocation},
    }
    if args.notification_topic is not None:
        hardening["notification_config"] = {"pubsub": {
            "enabled": True, "topic": args.notification_topic, "filter": {"event_types": list(NOTIFIED_EVENTS)}}}
    if args.secrets_key is not None:
        hardening["database_encryption"] = {"state": "ENCRYPTED", "key_name": args.secrets_key}
    if s.binary_authorization:
        # The project's singleton policy (infra/binauthz.py) decides; the cluster enforces it.
        hardening["binary_authorization"] = {"evaluation_mode": "PROJECT_SINGLETON_POLICY_ENFORCE"}
    return hardening


def _security_posture() -> dict:
    """Configuration auditing on. Workload vulnerability scanning's standard tier was shut down
    on 2025-07-31 (GKE docs, "Removal of vulnerability scanning from GKE"), so it is not asked
    for; images are scanned where they are stored (AgentRegistry)."""
    return {"mode": "BASIC", "vulnerability_mode": "VULNERABILITY_DISABLED"}


def _control_plane_access(authorized_networks: Mapping[str, str]) -> dict:
    """The DNS endpoint always: reachable from CI without a bastion, every request checked by IAM
    (container.clusters.connect). The IP endpoint only for named ranges, and off otherwise."""
    _refuse_open_ranges(authorized_networks)
    ip_enabled = bool(authorized_networks)
    access: dict = {
        "control_plane_endpoints_config": {
            "dns_endpoint_config": {"allow_external_traffic": True},
            # enabled=False is `gcloud container clusters update --no-enable-ip-access`: no
            # public and no private IP endpoint, the DNS endpoint is the only way in. The
            # Terraform google provider exposes it since v6.27 (ip_endpoints_config), which
            # pulumi-gcp 10.x bridges. private_cluster_config.enable_private_endpoint is the
            # older lever and only hides the public IP, so it is not used.
            "ip_endpoints_config": {"enabled": ip_enabled},
        }
    }
    if ip_enabled:
        access["master_authorized_networks_config"] = {
            # Otherwise every Google Cloud public address is let in next to the named ranges.
            "gcp_public_cidrs_access_enabled": False,
            "cidr_blocks": [
                {"display_name": name, "cidr_block": cidr} for name, cidr in sorted(authorized_networks.items())
            ],
        }
    return access


def _refuse_open_ranges(authorized_networks: Mapping[str, str]) -> None:
    """The stack config already refuses these; this guards callers that build settings in code."""
    for name, cidr in authorized_networks.items():
        if ipaddress.ip_network(cidr, strict=False).prefixlen == 0:
            raise ValueError(f"authorized network {name} = {cidr} opens the control plane to the whole internet; "
                             "use the DNS endpoint or a narrow range")


def _maintenance_policy(s: ClusterSettings) -> dict:
    return {
        "recurring_window": {
            "start_time": s.maintenance_start,
            "end_time": s.maintenance_end,
            "recurrence": s.maintenance_recurrence,
        },
        "maintenance_exclusions": [
            {
                "exclusion_name": name,
                "start_time": ex.start,
                "end_time": ex.end,
                "exclusion_options": {"scope": ex.scope},
            }
            for name, ex in sorted(s.maintenance_exclusions.items())
        ],
    }
