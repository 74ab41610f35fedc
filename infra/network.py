"""VpcNetwork: custom-mode VPC, private node subnet, Cloud Router and Cloud NAT."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from domain.settings import NetworkSettings
from infra.names import child, type_token

# Secondary ranges are found by name: the cluster's ip_allocation_policy refers to these, so
# they are stable keys, never list positions.
POD_RANGE = "pods"
SERVICE_RANGE = "services"


@dataclass(frozen=True)
class VpcNetworkArgs:
    project: str
    region: str
    settings: NetworkSettings


class VpcNetwork(pulumi.ComponentResource):
    """Nodes get no external IPs. They reach Google APIs (Vertex AI included) through Private
    Google Access and everything else (LiveKit's WebSocket and WebRTC media) through Cloud NAT."""

    network_id: pulumi.Output[str]
    subnet_id: pulumi.Output[str]
    pod_range_name: str = POD_RANGE
    service_range_name: str = SERVICE_RANGE

    def __init__(self, name: str, args: VpcNetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("infra", "VpcNetwork"), name, None, opts)
        child_opts = pulumi.ResourceOptions(parent=self)
        vpc = gcp.compute.Network(
            child(name, "vpc"),
            project=args.project,
            # Custom mode: no subnet in every region with ranges we did not plan.
            auto_create_subnetworks=False,
            routing_mode="REGIONAL",
            opts=child_opts,
        )
        subnet = gcp.compute.Subnetwork(child(name, "nodes"), **_subnet_args(vpc, args), opts=child_opts)
        router = gcp.compute.Router(
            child(name, "router"), project=args.project, region=args.region, network=vpc.id, opts=child_opts,
        )
        gcp.compute.RouterNat(child(name, "nat"), **_nat_args(router, args), opts=child_opts)
        self.network_id = vpc.id
        self.subnet_id = subnet.id
        self.register_outputs({
            "networkId": self.network_id,
            "subnetId": self.subnet_id,
            "podRangeName": POD_RANGE,
            "serviceRangeName": SERVICE_RANGE,
        })


def _subnet_args(vpc: gcp.compute.Network, args: VpcNetworkArgs) -> dict:
    s = args.settings
    return {
        "project": args.project,
        "region": args.region,
        "network": vpc.id,
        "ip_cidr_range": s.node_cidr,
        # *.googleapis.com (Vertex AI, Artifact Registry, logging) from nodes without external
        # IPs, on the default domains: no DNS zone to manage.
        "private_ip_google_access": True,
        "secondary_ip_ranges": [
            {"range_name": POD_RANGE, "ip_cidr_range": s.pod_cidr},
            {"range_name": SERVICE_RANGE, "ip_cidr_range": s.service_cidr},
        ],
        # Flow logs answer "did the call's media leave the node?" when a caller hears nothing.
        # Half the flows, aggregated over 5 min, keeps the log bill small.
        "log_config": {
            "aggregation_interval": "INTERVAL_5_MIN",
            "flow_sampling": 0.5,
            "metadata": "INCLUDE_ALL_METADATA",
        },
    }


def _nat_args(router: gcp.compute.Router, args: VpcNetworkArgs) -> dict:
    s = args.settings
    return {
        "project": args.project,
        "region": args.region,
        "router": router.name,
        # Ephemeral NAT addresses, added by Google as nodes x ports need them.
        "nat_ip_allocate_option": "AUTO_ONLY",
        # Pods take their addresses from the subnet's secondary range; covering only primary
        # ranges would leave the agents without egress to LiveKit.
        "source_subnetwork_ip_ranges_to_nat": "ALL_SUBNETWORKS_ALL_IP_RANGES",
        # Port exhaustion shows up as dropped flows; error logs make it visible.
        "log_config": {"enable": True, "filter": "ERRORS_ONLY"},
        **_port_allocation(s),
        **_idle_timeouts(s),
    }


def _port_allocation(s: NetworkSettings) -> dict:
    """Explicit (static) allocation: every node holds a fixed block of ports from the start,
    so how many flows a node can open is a known number from the stack config rather than
    something that grows only after the node has run out. Dynamic allocation and
    endpoint-independent mapping exclude each other (pulumi-gcp 10.2.0 RouterNat docs); both
    stay off. Each agent session holds a WebSocket to LiveKit, one to Vertex AI and UDP flows
    to the SFU, hence the generous per-node default in Pulumi.yaml."""
    return {
        "enable_dynamic_port_allocation": False,
        "enable_endpoint_independent_mapping": False,
        "min_ports_per_vm": s.nat_min_ports_per_vm,
    }


def _idle_timeouts(s: NetworkSettings) -> dict:
    """Cloud NAT's defaults (1200 s established TCP, 30 s UDP; pulumi-gcp 10.2.0 RouterNat docs) can cut
    a quiet but open WebSocket between calls; the stack config sets them per environment."""
    return {
        "tcp_established_idle_timeout_sec": s.nat_tcp_established_idle_timeout_sec,
        "tcp_transitory_idle_timeout_sec": s.nat_tcp_transitory_idle_timeout_sec,
        "udp_idle_timeout_sec": s.nat_udp_idle_timeout_sec,
    }
