"""Reads a stack's config the way the Pulumi CLI would, without the CLI.

The Python SDK does not read Pulumi.yaml, so an offline evaluation must merge the project's
declared defaults with Pulumi.<stack>.yaml itself. Encrypted values (`secure: v1:...`) cannot
be decrypted offline: they, and secrets the stack has not set yet, become placeholders that
are still marked secret, so the program sees the same shape it sees under `pulumi up`.
"""

from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from domain.settings import PROJECT

ROOT = Path(__file__).resolve().parent.parent
# Where Pulumi.<stack>.yaml files are read when a caller names no directory; None: next to
# Pulumi.yaml, as the CLI reads them. The test suite points this at its own fixture stacks
# (tests/conftest.py), so the committed Pulumi.dev.yaml / Pulumi.prod.yaml stay the user's to edit.
STACK_DIR: Path | None = None
SECRET_PLACEHOLDER = "offline-placeholder-secret"


class _StackFileLoader(yaml.SafeLoader):
    """YAML as the Pulumi CLI reads it: an unquoted 2026-01-03T02:00:00Z stays the text it is.
    (Go's yaml.v3 keeps timestamp-looking scalars as strings when decoding into interface{};
    PyYAML would turn them into datetime objects, which then print in another format or fail
    to serialise inside a map.)"""


_StackFileLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class StackFileError(ValueError):
    """A stack or project file that cannot be read at all (missing, not YAML)."""


@dataclass(frozen=True)
class StackValues:
    stack: str
    config: dict[str, str]  # full keys ("gke-voice-agents:nodeCidr") -> engine string form
    secret_keys: tuple[str, ...]
    # Keys whose value is made up offline: encrypted values and secrets the stack has not set.
    placeholders: tuple[str, ...] = ()


def _engine_string(value: Any) -> str:
    """The string form the engine hands a program: booleans lower-case, objects as JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _full_key(key: str) -> str:
    return key if ":" in key else f"{PROJECT}:{key}"


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise StackFileError(f"{path.name} not found in {path.parent}")
    try:
        data = yaml.load(path.read_text(), Loader=_StackFileLoader) or {}
    except yaml.YAMLError as err:
        raise StackFileError(f"{path.name} is not valid YAML: {_yaml_problem(err)}") from err
    if not isinstance(data, dict):
        raise StackFileError(f"{path.name} must hold a mapping at the top level")
    return data


def _yaml_problem(err: yaml.YAMLError) -> str:
    """PyYAML's message spans several lines; the plan reports one line per problem."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark else problem


def _config_block(data: dict[str, Any], path_name: str) -> dict[str, Any]:
    block = data.get("config") or {}
    if not isinstance(block, dict):
        raise StackFileError(f"{path_name}: `config` must be a mapping of key: value, not {type(block).__name__}")
    return block


def project_declarations(root: Path = ROOT) -> dict[str, dict[str, Any]]:
    """The `config:` block of Pulumi.yaml, keyed by full key."""
    declared = _config_block(_read_yaml(root / "Pulumi.yaml"), "Pulumi.yaml")
    return {_full_key(k): (v if isinstance(v, dict) else {"default": v}) for k, v in declared.items()}


def stack_file(stack: str, root: Path = ROOT, stack_dir: Path | None = None) -> Path:
    """Pulumi.<stack>.yaml in `stack_dir`, else in STACK_DIR (for this repository's own project
    only: a copy of the project elsewhere keeps its own stack files), else beside Pulumi.yaml."""
    return (stack_dir or (STACK_DIR if Path(root).resolve() == ROOT else None) or root) / f"Pulumi.{stack}.yaml"


def load_stack_values(stack: str, root: Path = ROOT, stack_dir: Path | None = None) -> StackValues:
    """Pulumi.yaml defaults merged with Pulumi.<stack>.yaml, the way the CLI hands them over.

    Only `secure:` values are secret, as for the CLI: a plain value of a key Pulumi.yaml
    declares secret stays plain, and domain.config refuses it (the CLI itself refuses it with
    "must be encrypted as it's secret", pulumi/pulumi sdk/go/common/workspace)."""
    declared = project_declarations(root)
    stack_config = _config_block(_read_yaml(stack_file(stack, root, stack_dir)), f"Pulumi.{stack}.yaml")
    merged: dict[str, str] = {}
    secret_keys: set[str] = set()
    placeholders: set[str] = set()
    for key, decl in declared.items():
        if "default" in decl:
            merged[key] = _engine_string(decl["default"])
    for key, value in stack_config.items():
        full = _full_key(key)
        if isinstance(value, dict) and set(value) == {"secure"}:
            secret_keys.add(full)
            placeholders.add(full)
            merged[full] = SECRET_PLACEHOLDER
        else:
            merged[full] = _engine_string(value)
    for key in (k for k, d in declared.items() if d.get("secret") and k not in merged):
        # Unset secrets: the plan still runs and says it used a placeholder; `pulumi up`
        # (which has no placeholder) fails on them in domain.config.
        secret_keys.add(key)
        placeholders.add(key)
        merged[key] = SECRET_PLACEHOLDER
    return StackValues(stack=stack, config=merged, secret_keys=tuple(sorted(secret_keys)),
                       placeholders=tuple(sorted(placeholders)))


# The values the committed example stacks hold until a user sets their own. The offline plan
# names them, so nobody mistakes a plan of the example for a plan of their project.
EXAMPLE_VALUES = {
    "gcp:project": ("my-voice-agents-dev", "my-voice-agents-prod"),
    f"{PROJECT}:livekitUrl": ("wss://my-project.livekit.cloud", "wss://my-project-dev.livekit.cloud", "wss://my-project-prod.livekit.cloud"),
}


def example_values(values: StackValues) -> list[str]:
    """Keys of `values` that still hold an example value."""
    return sorted(k for k, examples in EXAMPLE_VALUES.items() if values.config.get(k) in examples)


def gcp_provider_keys() -> frozenset[str]:
    """Every setting the installed pulumi-gcp provider reads (`gcp:<name>`), taken from its
    generated config module's source, so the list follows the pinned provider version."""
    spec = importlib.util.find_spec("pulumi_gcp")  # pinned in requirements.txt: always installed
    source = (Path(next(iter(spec.submodule_search_locations))) / "config" / "vars.py").read_text()
    return frozenset(f"gcp:{name}" for name in re.findall(r"__config__\.get\w*\('(\w+)'\)", source))
