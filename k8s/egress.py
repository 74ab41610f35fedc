"""Egress-only NetworkPolicy for agent pods: what a voice agent dials, and nothing else.

Nothing connects *to* an agent except the kubelet's probes and Managed Prometheus scrapes, so
ingress stays open (a policy there would only risk blocking the scraper). Egress is where a
compromised agent would go, so it is narrowed to what the agent needs. Autopilot always runs
GKE Dataplane V2, which enforces NetworkPolicy including `endPort`. Destinations stay open
(`to` omitted) because LiveKit Cloud, Vertex AI and the SFU's media servers sit behind changing
addresses; the ports are the narrowing.
"""

from __future__ import annotations

from k8s.cloudsql_proxy import egress_rule
from k8s import tool_server
from k8s.pod import labels
from k8s.runtime import GKE_METADATA_SERVER, METADATA_SERVER

# LiveKit ports (LiveKit docs "Ports and firewall" and "Configuring firewalls"):
#   TCP 443   signalling over wss (Cloud, or a self-hosted server behind a TLS load balancer),
#             TURN/TLS; also Vertex AI (Gemini Live) over Private Google Access
#   TCP 7880  signalling/API of a self-hosted server without a load balancer
#   TCP 7881  WebRTC over TCP when UDP is blocked
#   TCP 5349  TURN/TLS of a self-hosted server not on 443
#   UDP 3478  TURN/UDP (also STUN)
#   UDP 7882  WebRTC UDP mux (single-port self-hosted setups)
#   UDP 50000-60000  WebRTC media, the default ICE port range
# A self-hosted server with a custom rtc.port_range_start/end needs its range here.
TCP_PORTS = (443, 7880, 7881, 5349)
UDP_PORTS = (3478, 7882)
UDP_MEDIA_RANGE = (50000, 60000)


def _ports(protocol: str, ports: tuple[int, ...]) -> list[dict]:
    return [{"protocol": protocol, "port": p} for p in ports]


def network_policy_spec(database_cidr: str | None = None, reach_tools: bool = False) -> dict:
    """`database_cidr`: the checkpoint database's private services access range (crash
    recovery on): the one destination of TCP 3307 (k8s/cloudsql_proxy.egress_rule).
    `reach_tools`: the agent calls tool servers (pods labelled role=tool-server, MCP port only)."""
    metadata_rules = [
        {"to": [{"ipBlock": {"cidr": cidr}}], "ports": _ports("TCP", (port,))}
        for cidr, port in (METADATA_SERVER, GKE_METADATA_SERVER)
    ]
    start, end = UDP_MEDIA_RANGE
    return {
        "podSelector": {"matchLabels": labels()},
        "policyTypes": ["Egress"],
        "egress": [
            # DNS wherever the cluster serves it: kube-dns, NodeLocal DNSCache, Cloud DNS.
            {"ports": _ports("UDP", (53,)) + _ports("TCP", (53,))},
            *metadata_rules,
            {"ports": _ports("TCP", TCP_PORTS)},
            {"ports": [*_ports("UDP", UDP_PORTS), {"protocol": "UDP", "port": start, "endPort": end}]},
            *([egress_rule(database_cidr)] if database_cidr else []),
            *([tool_server.agent_egress_rule()] if reach_tools else []),
        ],
    }
