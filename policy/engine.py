"""Runs every rule over an offline plan's resources (tooling/plan.py and the tests use this).

The offline plan reads the same per-stack policy config a user passes to CrossGuard
(`pulumi preview --policy-pack policy --policy-pack-config policy/<stack>.json`), in the same
form: `{"<rule-id>": {"enforcementLevel": "advisory"|"mandatory"|"disabled", <setting>: ...}}`,
plus `"all"` for a pack-wide level. A stack without such a file gets the strict defaults.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from domain.stackfiles import StackFileError
from policy.rules import ADVISORY, CONFIG_PROPERTIES, MANDATORY, RULES, Resource, Rule, context_from

POLICY_DIR = Path(__file__).resolve().parent
DISABLED = "disabled"
LEVELS = (ADVISORY, MANDATORY, DISABLED)


class PolicyConfigError(StackFileError):
    """A stack's policy config file that CrossGuard would refuse. A StackFileError, so the
    offline plan reports it like a broken stack file (exit 2, no traceback)."""


def load_policy_config(stack: str, directory: Path = POLICY_DIR) -> dict[str, Any]:
    path = directory / f"{stack}.json"
    if not path.exists():
        return {}
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise PolicyConfigError(f"{path}: not valid JSON ({err})") from err
    check_policy_config(config, str(path))
    return config


def _level(value: Any) -> str | None:
    """The enforcement level a config entry sets: a bare string or {"enforcementLevel": ...}."""
    return value if isinstance(value, str) else (value or {}).get("enforcementLevel")


def check_policy_config(config: Mapping[str, Any], source: str = "policy config") -> None:
    """Refuses what CrossGuard would refuse: unknown rule ids, unknown settings, bad levels."""
    known = {rule.id: rule for rule in RULES}
    problems = []
    for key, value in config.items():
        if key != "all" and key not in known:
            problems.append(f"{key}: no such rule; known rules: {', '.join(sorted(known))}")
            continue
        level = _level(value)
        if level is not None and level not in LEVELS:
            problems.append(f"{key}.enforcementLevel = {level!r}: must be one of {', '.join(LEVELS)}")
        if isinstance(value, Mapping) and key != "all":
            extra = set(value) - {"enforcementLevel", *known[key].config}
            if extra:
                allowed = ", ".join(known[key].config) or "only enforcementLevel"
                problems.append(f"{key}: unknown setting(s) {', '.join(sorted(extra))}; this rule reads {allowed}")
            problems += [f"{key}.{setting} = {value[setting]!r}: must be true or false"
                         for setting in known[key].config
                         if setting in value and CONFIG_PROPERTIES[setting]["type"] == "boolean"
                         and not isinstance(value[setting], bool)]
    if problems:
        raise PolicyConfigError(f"{source}:\n" + "\n".join(f"  - {p}" for p in problems))


def severity_of(rule: Rule, config: Mapping[str, Any]) -> str:
    """A rule's own entry wins over "all", which wins over the rule's built-in level."""
    return _level(config.get(rule.id)) or _level(config.get("all")) or rule.severity


def as_resources(plan_resources: list[dict[str, Any]]) -> list[Resource]:
    return [Resource(r["type"], r["name"], r["inputs"]) for r in plan_resources]


def violations(resources: list[Resource], config: Mapping[str, Any] | None = None,
               rules: tuple[Rule, ...] = RULES) -> list[dict[str, str]]:
    config = config or {}
    found = []
    for rule in rules:
        severity = severity_of(rule, config)
        if severity == DISABLED:
            continue
        entry = config.get(rule.id)
        ctx = context_from(entry if isinstance(entry, Mapping) else None)
        found += [{"rule": rule.id, "severity": severity, "resource": name, "message": message}
                  for name, message in rule.findings(resources, ctx)]
    return found


def evaluate_plan(resources: list[dict[str, Any]], stack: str,
                  config: Mapping[str, Any] | None = None) -> list[dict[str, str]]:
    """Violations of the stack's plan under policy/<stack>.json (or `config` when given)."""
    return violations(as_resources(resources), load_policy_config(stack) if config is None else config)
