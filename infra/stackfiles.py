"""Reads a stack's config the way the Pulumi CLI would, without the CLI.

The Python SDK does not read Pulumi.yaml, so an offline evaluation must merge the project's
declared defaults with Pulumi.<stack>.yaml itself. Encrypted values (`secure: v1:...`) cannot
be decrypted offline: they, and secrets the stack has not set yet, become placeholders that
are still marked secret, so the program sees the same shape it sees under `pulumi up`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from infra.config import PROJECT

ROOT = Path(__file__).resolve().parent.parent
SECRET_PLACEHOLDER = "offline-placeholder-secret"


class StackFileError(ValueError):
    """A stack or project file that cannot be read at all (missing, not YAML)."""


@dataclass(frozen=True)
class StackValues:
    stack: str
    config: dict[str, str]  # full keys ("gke-voice-agents:nodeCidr") -> engine string form
    secret_keys: tuple[str, ...]


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
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise StackFileError(f"{path.name} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise StackFileError(f"{path.name} must hold a mapping at the top level")
    return data


def project_declarations(root: Path = ROOT) -> dict[str, dict[str, Any]]:
    """The `config:` block of Pulumi.yaml, keyed by full key."""
    declared = _read_yaml(root / "Pulumi.yaml").get("config") or {}
    return {_full_key(k): (v if isinstance(v, dict) else {"default": v}) for k, v in declared.items()}


def load_stack_values(stack: str, root: Path = ROOT) -> StackValues:
    declared = project_declarations(root)
    stack_config = _read_yaml(root / f"Pulumi.{stack}.yaml").get("config") or {}
    merged: dict[str, str] = {}
    secret_keys = {k for k, d in declared.items() if d.get("secret")}
    for key, decl in declared.items():
        if "default" in decl:
            merged[key] = _engine_string(decl["default"])
    for key, value in stack_config.items():
        full = _full_key(key)
        if isinstance(value, dict) and set(value) == {"secure"}:
            secret_keys.add(full)
            merged[full] = SECRET_PLACEHOLDER
        else:
            merged[full] = _engine_string(value)
    for key in secret_keys:
        merged.setdefault(key, SECRET_PLACEHOLDER)
    return StackValues(stack=stack, config=merged, secret_keys=tuple(sorted(secret_keys)))
