"""Rules for the VPC: Private Google Access, Cloud NAT coverage and logs, no public VM addresses."""

from __future__ import annotations

from policy.rules.base import (
    ADVISORY, INSTANCE, INSTANCE_TEMPLATE, MANDATORY, NAT, Rule, SUBNET, prop, unless,
)


def _private_google_access(p, ctx):
    return unless(prop(p, "privateIpGoogleAccess") is True,
                   f"subnet {p.get('ipCidrRange')} has no Private Google Access: private nodes cannot reach Vertex AI")


def _nat_all_ranges(p, ctx):
    scope = prop(p, "sourceSubnetworkIpRangesToNat")
    return unless(scope == "ALL_SUBNETWORKS_ALL_IP_RANGES",
                   f"NAT covers {scope}: pods use a secondary range and could not reach LiveKit; "
                   "use ALL_SUBNETWORKS_ALL_IP_RANGES")


def _nat_logs_errors(p, ctx):
    log = prop(p, "logConfig", default={})
    return unless(log.get("enable") is True and log.get("filter") in ("ERRORS_ONLY", "ALL"),
                   "NAT does not log errors: port exhaustion (dropped WebRTC flows) would be invisible")


def _no_external_ip(p, ctx):
    interfaces = prop(p, "networkInterfaces", default=[])
    return [f"network interface {i} has an external IP (accessConfigs): the VM is reachable from the internet and "
            "bypasses Cloud NAT; remove accessConfigs" for i, nic in enumerate(interfaces) if nic.get("accessConfigs")]


RULES: tuple[Rule, ...] = (
    Rule("subnet-private-google-access", MANDATORY, "Node subnets have Private Google Access.", (SUBNET,), _private_google_access),
    Rule("nat-all-subnet-ranges", MANDATORY, "Cloud NAT covers every subnet range, pods included.", (NAT,), _nat_all_ranges),
    Rule("nat-error-logging", ADVISORY, "Cloud NAT logs errors.", (NAT,), _nat_logs_errors),
    Rule("no-node-external-ip", MANDATORY, "No VM or instance template gets an external IP.", (INSTANCE, INSTANCE_TEMPLATE), _no_external_ip),
)
