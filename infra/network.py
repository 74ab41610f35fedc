"""VpcNetwork: custom-mode VPC, private node subnet, Cloud Router and Cloud NAT."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.config import NetworkSettings
from infra.names import child, type_token

# Secondary ranges are referred to by name from the cluster's ip_allocation_policy.
POD_RANGE = "pods"
SERVICE_RANGE = "services"


@dataclass(frozen=True)
class VpcNetworkArgs:
    region: str
    settings: NetworkSettings


class VpcNetwork(pulumi.ComponentResource):
    """Nodes get no external IPs; they reach Google APIs through Private Google Access and
    everything else (LiveKit) through Cloud NAT."""

    network_id: pulumi.Output[str]
    subnet_id: pulumi.Output[str]
    pod_range_name: str = POD_RANGE
    service_range_name: str = SERVICE_RANGE

    def __init__(self, name: str, args: VpcNetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("infra", "VpcNetwork"), name, None, opts)
        child_opts = pulumi.ResourceOptions(parent=self)
        s = args.settings
        vpc = gcp.compute.Network(
            child(name, "vpc"),
            auto_create_subnetworks=False,
            routing_mode="REGIONAL",
            opts=child_opts,
        )
        subnet = gcp.compute.Subnetwork(
            child(name, "nodes"),
            network=vpc.id,
            region=args.region,
            ip_cidr_range=s.node_cidr,
            # Vertex AI and the other *.googleapis.com endpoints stay reachable with no
            # external IP and no DNS changes.
            private_ip_google_access=True,
            secondary_ip_ranges=[
                {"range_name": POD_RANGE, "ip_cidr_range": s.pod_cidr},
                {"range_name": SERVICE_RANGE, "ip_cidr_range": s.service_cidr},
            ],
            log_config={"aggregation_interval": "INTERVAL_5_MIN", "flow_sampling": 0.5,
                        "metadata": "INCLUDE_ALL_METADATA"},
            opts=child_opts,
        )
        router = gcp.compute.Router(child(name, "router"), network=vpc.id, region=args.region, opts=child_opts)
        gcp.compute.RouterNat(child(name, "nat"), **_nat_args(router, args), opts=child_opts)
        self.network_id = vpc.id
        self.subnet_id = subnet.id
        self.network_name = vpc.name
        self.subnet_name = subnet.name
        self.register_outputs({"networkId": vpc.id, "subnetId": subnet.id})


def _nat_args(router: gcp.compute.Router, args: VpcNetworkArgs) -> dict:
    s = args.settings
    return {
        "router": router.name,
        "region": args.region,
        "nat_ip_allocate_option": "AUTO_ONLY",
        # Pods use the secondary range: NAT must cover every range, not just the primary.
        "source_subnetwork_ip_ranges_to_nat": "ALL_SUBNETWORKS_ALL_IP_RANGES",
        # Explicit allocation: a fixed, known number of ports per node. Dynamic allocation and
        # endpoint-independent mapping exclude each other; WebRTC's UDP wants neither surprise.
        "enable_dynamic_port_allocation": False,
        "enable_endpoint_independent_mapping": False,
        "min_ports_per_vm": s.nat_min_ports_per_vm,
        "tcp_established_idle_timeout_sec": s.nat_tcp_established_idle_timeout_sec,
        "tcp_transitory_idle_timeout_sec": s.nat_tcp_transitory_idle_timeout_sec,
        "udp_idle_timeout_sec": s.nat_udp_idle_timeout_sec,
        "log_config": {"enable": True, "filter": "ERRORS_ONLY"},
    }
