"""CrossGuard adapters: each rule in policy/rules.py becomes one pulumi-policy policy.

Kept apart from policy/__main__.py because constructing PolicyPack starts a blocking gRPC
server; tests import this module instead.
"""

from __future__ import annotations

from typing import Any, Mapping

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ResourceValidationPolicy,
    StackValidationPolicy,
)

from policy.rules import MANDATORY, RULES, Context, Resource, Rule

LEVELS = {MANDATORY: EnforcementLevel.MANDATORY, "advisory": EnforcementLevel.ADVISORY}
# Per-rule settings, overridable with `pulumi preview --policy-pack-config <file>`.
CONFIG_SCHEMA = PolicyConfigSchema(properties={
    "bursting": {"type": "boolean", "default": False,
                 "description": "Autopilot CPU bursting is on, so CPU limits may exceed requests."},
    "protected": {"type": "boolean", "default": False,
                  "description": "This stack must keep deletion protection (prod)."},
})


def context_from(config: Mapping[str, Any]) -> Context:
    return Context(bursting=bool(config.get("bursting", False)), protected=bool(config.get("protected", False)))


def _resource_policy(rule: Rule) -> ResourceValidationPolicy:
    def validate(args, report_violation) -> None:
        if args.resource_type != rule.resource_type:
            return
        for message in rule.check_resource(args.props, context_from(args.get_config())):
            report_violation(message, None)

    return ResourceValidationPolicy(rule.id, rule.description, validate, LEVELS[rule.severity], CONFIG_SCHEMA)


def _stack_policy(rule: Rule) -> StackValidationPolicy:
    def validate(args, report_violation) -> None:
        resources = [Resource(r.resource_type, r.name, r.props) for r in args.resources]
        urns = {r.name: r.urn for r in args.resources}
        for name, message in rule.check_stack(resources, context_from(args.get_config())):
            report_violation(message, urns.get(name))

    return StackValidationPolicy(rule.id, rule.description, validate, LEVELS[rule.severity], CONFIG_SCHEMA)


def policies() -> list:
    return [_stack_policy(rule) if rule.check_stack else _resource_policy(rule) for rule in RULES]
