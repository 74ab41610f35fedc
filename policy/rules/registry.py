"""Rules for Artifact Registry: immutable tags, cleanup, and the nodes' right to pull."""

from __future__ import annotations

from policy.rules.base import (
    ADVISORY, CLUSTER, MANDATORY, PROJECT_MEMBER, REGISTRY_READ_ROLES, REPOSITORY, REPOSITORY_MEMBER, Rule, prop, unless,
)


def _immutable_tags(p, ctx):
    if prop(p, "format") != "DOCKER":
        return []
    return unless(prop(p, "dockerConfig", "immutableTags") is True,
                   "tags are mutable: a pushed tag can change under running pods and a rollback may not restore what ran")


def _cleanup_policies(p, ctx):
    policies = prop(p, "cleanupPolicies", default=[])
    if not policies:
        return ["no cleanup policies: images pile up and are billed forever"]
    if len(policies) > 10:
        return [f"{len(policies)} cleanup policies; Artifact Registry allows at most 10"]
    return unless(prop(p, "cleanupPolicyDryRun") is not True, "cleanup policies are in dry-run mode and delete nothing")


def _node_sa_reader(resources, ctx):
    node_accounts = {
        prop(r.props, "clusterAutoscaling", "autoProvisioningDefaults", "serviceAccount")
        for r in resources if r.type == CLUSTER
    } - {None}
    # A grant on the repository, or one on the whole project (broader than needed, but the
    # nodes can pull); every Artifact Registry role from reader up includes reading.
    readers = {
        str(prop(r.props, "member", default="")).removeprefix("serviceAccount:")
        for r in resources
        if r.type in (REPOSITORY_MEMBER, PROJECT_MEMBER) and prop(r.props, "role") in REGISTRY_READ_ROLES
    }
    return [(r.name, f"node service account {sa} cannot pull from this repository: grant roles/artifactregistry.reader on it")
            for r in resources if r.type == REPOSITORY for sa in sorted(node_accounts - readers)]


RULES: tuple[Rule, ...] = (
    Rule("registry-immutable-tags", MANDATORY, "Docker repositories have immutable tags.", (REPOSITORY,), _immutable_tags),
    Rule("registry-cleanup-policies", ADVISORY, "Repositories have active cleanup policies.", (REPOSITORY,), _cleanup_policies),
    Rule("registry-node-reader", MANDATORY, "The node service account can pull from the repository.", check_stack=_node_sa_reader),
)
