"""CrossGuard adapters: each rule in policy/rules/ becomes one pulumi-policy policy.

Kept apart from policy/__main__.py because constructing PolicyPack starts a blocking gRPC
server; tests import this module instead. The adapters only translate: which resources a rule
sees, which config it reads, where a violation is reported. The decisions stay in the rules.

During `pulumi preview`, CrossGuard wraps props in proxies that raise UnknownValueError when a
rule reads a value not yet known (a new service account's email, say). The framework turns
that into an advisory "can't run during preview" note and the rule runs again at `up`; the
adapters let it propagate rather than guess.
"""

from __future__ import annotations

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ResourceValidationPolicy,
    StackValidationPolicy,
)

from policy.rules import ADVISORY, CONFIG_PROPERTIES, MANDATORY, RULES, Resource, Rule, context_from

LEVELS = {MANDATORY: EnforcementLevel.MANDATORY, ADVISORY: EnforcementLevel.ADVISORY}


def config_schema(rule: Rule) -> PolicyConfigSchema | None:
    """Only the settings the rule reads, so `--policy-pack-config` rejects a misplaced key."""
    if not rule.config:
        return None
    return PolicyConfigSchema(properties={key: CONFIG_PROPERTIES[key] for key in rule.config})


def _resource_policy(rule: Rule) -> ResourceValidationPolicy:
    def validate(args, report_violation) -> None:
        for message in rule.check(args.resource_type, args.props, context_from(args.get_config())):
            report_violation(message, None)

    return ResourceValidationPolicy(rule.id, rule.description, validate, LEVELS[rule.severity], config_schema(rule))


def _stack_policy(rule: Rule) -> StackValidationPolicy:
    def validate(args, report_violation) -> None:
        resources = [Resource(r.resource_type, r.name, r.props) for r in args.resources]
        urns = {r.name: r.urn for r in args.resources}
        for name, message in rule.check_stack(resources, context_from(args.get_config())):
            report_violation(message, urns.get(name))

    return StackValidationPolicy(rule.id, rule.description, validate, LEVELS[rule.severity], config_schema(rule))


def policies() -> list:
    return [_stack_policy(rule) if rule.check_stack else _resource_policy(rule) for rule in RULES]
