"""AutopilotCluster: a private GKE Autopilot cluster reached through its DNS endpoint."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp
import pulumi_random as random

from infra.config import ClusterSettings
from infra.kubeconfig import render_kubeconfig
from infra.names import child, type_token
from infra.network import VpcNetwork

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
# Least privilege for Autopilot nodes (GKE hardening guide): logs, metrics, image pulls are
# granted by this role; registry reads are granted on the one repository by AgentRegistry.
NODE_ROLES = ("roles/container.defaultNodeServiceAccount",)


@dataclass(frozen=True)
class AutopilotClusterArgs:
    project: str
    region: str
    stack: str
    network: VpcNetwork
    settings: ClusterSettings


class AutopilotCluster(pulumi.ComponentResource):
    name: pulumi.Output[str]
    location: pulumi.Output[str]
    dns_endpoint: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    node_service_account_email: pulumi.Output[str]
    node_service_account_member: pulumi.Output[str]

    def __init__(self, name: str, args: AutopilotClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("infra", "AutopilotCluster"), name, None, opts)
        child_opts = pulumi.ResourceOptions(parent=self)
        # A suffix keeps names unique when dev and prod share a project and when a cluster is
        # recreated while the old one is still being deleted.
        suffix = random.RandomId(child(name, "suffix"), byte_length=2, opts=child_opts)
        node_sa = gcp.serviceaccount.Account(
            child(name, "nodes"),
            project=args.project,
            account_id=suffix.hex.apply(lambda h: f"gva-{args.stack}-nodes-{h}"),
            display_name=f"GKE Autopilot nodes ({args.stack})",
            opts=child_opts,
        )
        for role in NODE_ROLES:
            gcp.projects.IAMMember(
                child(name, f"nodes-{role.split('/')[-1]}"),
                project=args.project, role=role, member=node_sa.member, opts=child_opts,
            )
        cluster = gcp.container.Cluster(
            child(name, "cluster"),
            name=suffix.hex.apply(lambda h: f"voice-agents-{args.stack}-{h}"),
            **_cluster_args(args, node_sa),
            opts=child_opts,
        )
        self.name = cluster.name
        self.location = cluster.location
        self.dns_endpoint = cluster.control_plane_endpoints_config.apply(_dns_endpoint)
        self.kubeconfig = pulumi.Output.secret(
            pulumi.Output.all(cluster.name, self.dns_endpoint).apply(lambda a: render_kubeconfig(a[0], a[1]))
        )
        self.node_service_account_email = node_sa.email
        self.node_service_account_member = node_sa.member
        self.register_outputs({
            "name": self.name, "location": self.location, "dnsEndpoint": self.dns_endpoint,
            "kubeconfig": self.kubeconfig, "nodeServiceAccount": node_sa.email,
        })


def _dns_endpoint(endpoints) -> str:
    config = endpoints.dns_endpoint_config if endpoints else None
    return (config.endpoint if config else None) or ""


def _cluster_args(args: AutopilotClusterArgs, node_sa: gcp.serviceaccount.Account) -> dict:
    s = args.settings
    return {
        "project": args.project,
        "location": args.region,
        "enable_autopilot": True,
        "network": args.network.network_id,
        "subnetwork": args.network.subnet_id,
        "ip_allocation_policy": {
            "cluster_secondary_range_name": args.network.pod_range_name,
            "services_secondary_range_name": args.network.service_range_name,
        },
        "private_cluster_config": {"enable_private_nodes": True},
        **_control_plane_access(s),
        "release_channel": {"channel": s.release_channel},
        "maintenance_policy": _maintenance_policy(s),
        "deletion_protection": s.deletion_protection,
        "monitoring_config": {"managed_prometheus": {"enabled": True}},
        "secret_manager_config": {"enabled": True},
        "security_posture_config": {"mode": "BASIC", "vulnerability_mode": "VULNERABILITY_BASIC"},
        "workload_identity_config": {"workload_pool": f"{args.project}.svc.id.goog"},
        # Autopilot takes the node identity from here; node_config must stay unset (it is a
        # known perma-diff on Autopilot that would replace the cluster).
        "cluster_autoscaling": {
            "auto_provisioning_defaults": {
                "service_account": node_sa.email,
                "oauth_scopes": [CLOUD_PLATFORM_SCOPE],
            }
        },
    }


def _control_plane_access(s: ClusterSettings) -> dict:
    """DNS endpoint always (IAM-gated); the IP endpoint only for named, narrow ranges."""
    ip_enabled = bool(s.authorized_networks)
    access = {
        "control_plane_endpoints_config": {
            "dns_endpoint_config": {"allow_external_traffic": True},
            "ip_endpoints_config": {"enabled": ip_enabled},
        }
    }
    if ip_enabled:
        access["master_authorized_networks_config"] = {
            "gcp_public_cidrs_access_enabled": False,
            "cidr_blocks": [
                {"display_name": name, "cidr_block": cidr} for name, cidr in sorted(s.authorized_networks.items())
            ],
        }
    return access


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
