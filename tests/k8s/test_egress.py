"""The agent's egress NetworkPolicy as an EXACT set: what a call needs, and nothing else.

k8s/egress.py promises "what a voice agent dials, and nothing else". A superset check would let
a change that opens TCP 80 to the internet (or drops a port a call needs) pass, so each case
compares the whole set of (destination, protocol, port, endPort) with values written out here
from their sources, not read back from the module under test:
- LiveKit "Ports and firewall": TCP 443, 7880, 7881, 5349; UDP 3478, 7882, 50000-60000.
- DNS: UDP and TCP 53 (kube-dns, NodeLocal DNSCache, Cloud DNS).
- GKE metadata: 169.254.169.254/32 TCP 80 and 169.254.169.252/32 TCP 988 (Workload Identity).
- The Cloud SQL Auth Proxy's connector port TCP 3307 to the database's private range only.
- Tool servers by their role label, MCP port TCP 8080 only.
"""

from __future__ import annotations

import pytest

from k8s.egress import network_policy_spec

ANYWHERE = "anywhere"
CALL = {
    (ANYWHERE, "UDP", 53, None), (ANYWHERE, "TCP", 53, None),
    ("169.254.169.254/32", "TCP", 80, None), ("169.254.169.252/32", "TCP", 988, None),
    (ANYWHERE, "TCP", 443, None), (ANYWHERE, "TCP", 7880, None), (ANYWHERE, "TCP", 7881, None),
    (ANYWHERE, "TCP", 5349, None),
    (ANYWHERE, "UDP", 3478, None), (ANYWHERE, "UDP", 7882, None), (ANYWHERE, "UDP", 50000, 60000),
}
DATABASE = ("10.60.0.0/20", "TCP", 3307, None)
TOOLS = ("role=tool-server", "TCP", 8080, None)


def _peer(peer: dict) -> str:
    if "ipBlock" in peer:
        assert set(peer["ipBlock"]) == {"cidr"}, "an ipBlock with exceptions is not in the promise"
        return peer["ipBlock"]["cidr"]
    [(key, value)] = peer["podSelector"]["matchLabels"].items()
    assert set(peer) == {"podSelector"} and key == "gke-voice-agents/role", peer
    return f"role={value}"


def opened(spec: dict) -> set[tuple]:
    """Every (destination, protocol, port, endPort) the policy lets out. A rule without `to`
    opens its ports to anywhere; a rule without `ports` would open every port (refused here)."""
    found = set()
    for rule in spec["egress"]:
        assert set(rule) <= {"to", "ports"} and rule.get("ports"), f"rule opens every port: {rule}"
        peers = [_peer(p) for p in rule["to"]] if "to" in rule else [ANYWHERE]
        for port in rule["ports"]:
            assert set(port) <= {"protocol", "port", "endPort"}, port
            found |= {(peer, port["protocol"], port["port"], port.get("endPort")) for peer in peers}
    return found


@pytest.mark.parametrize(("database", "tools", "expected"), [
    (None, False, CALL),
    ("10.60.0.0/20", False, CALL | {DATABASE}),
    (None, True, CALL | {TOOLS}),
    ("10.60.0.0/20", True, CALL | {DATABASE, TOOLS}),
])
def test_egress_is_exactly_what_a_call_needs(database, tools, expected):
    spec = network_policy_spec(database, reach_tools=tools)
    assert spec["policyTypes"] == ["Egress"] and "ingress" not in spec
    assert spec["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "voice-agent",
                                                   "app.kubernetes.io/part-of": "gke-voice-agents"}}
    assert opened(spec) == expected


def test_the_plans_agent_egress_is_the_exact_set(plan):
    """Both committed stacks turn recovery and the places tool on: the database range and the
    tool servers join the call's set, and nothing else does."""
    netpol = plan.named("agent-egress")["inputs"]["spec"]
    assert opened(netpol) == CALL | {DATABASE, TOOLS}


def test_opening_plain_http_would_be_caught():
    """The check itself: TCP 80 to anywhere is outside the set (the mutant issue 29 found alive)."""
    spec = network_policy_spec()
    spec["egress"][3]["ports"].append({"protocol": "TCP", "port": 80})
    assert opened(spec) - CALL == {(ANYWHERE, "TCP", 80, None)}
