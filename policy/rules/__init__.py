"""The policy rules, one module per concern, assembled in one stable order.

`RULES` is what the CrossGuard pack, the offline plan and `python -m policy.manifests` run;
rule ids are part of every stack's policy config (policy/<stack>.json) and never change.
"""

from policy.rules import access, cluster, database, identity, network, registry, secrets, tools, workload
from policy.rules.base import (
    ADVISORY,
    CONFIG_PROPERTIES,
    MANDATORY,
    Context,
    Finding,
    Resource,
    Rule,
    context_from,
)

RULES: tuple[Rule, ...] = (*cluster.RULES, *network.RULES, *registry.RULES, *identity.RULES, *database.RULES,
                            *workload.RULES,
                            *tools.RULES, *access.RULES, *secrets.RULES)
RULES_BY_ID = {rule.id: rule for rule in RULES}

__all__ = ["ADVISORY", "CONFIG_PROPERTIES", "MANDATORY", "RULES", "RULES_BY_ID", "Context", "Finding", "Resource", "Rule",
           "context_from"]
