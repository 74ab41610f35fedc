"""Kubernetes manifests from recorded resource inputs, as the provider would apply them.

The offline plan (tooling/plan.py) records every resource's inputs in wire form under Pulumi
mocks; for Kubernetes objects those inputs are the object itself (pulumi-kubernetes sends
apiVersion, kind, metadata and the rest as given, and applies them server-side). What differs
from the applied object is only what must never be written to disk or is not the object:
- secret material: every value of a Secret's `data`/`stringData`, and any other value Pulumi
  marks secret, becomes a placeholder;
- values the program left unset (None) and Pulumi-internal keys (`__`-prefixed).
Empty maps and lists stay: `emptyDir: {}` or `podSelector: {}` mean something.
"""

from __future__ import annotations

from typing import Any

MASKED = "<secret>"
# How mocks and the engine mark secrets: the recorder's mask, or the wire envelope itself.
_RECORDED_SECRET = "[secret]"
_SECRET_SIG = "4dabf18193072939515e22adb298388d"
_HEAD = ("apiVersion", "kind", "metadata")


def is_kubernetes_object(resource_type: str, inputs: dict[str, Any]) -> bool:
    """Provider resources, Helm releases and YAML bundles are not objects; objects carry their
    own apiVersion and kind."""
    return resource_type.startswith("kubernetes:") and "apiVersion" in inputs and "kind" in inputs


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        if _SECRET_SIG in value:
            return MASKED
        return {k: _clean(v) for k, v in value.items() if v is not None and not k.startswith("__")}
    if isinstance(value, list):
        return [_clean(v) for v in value if v is not None]
    if value == _RECORDED_SECRET:
        return MASKED
    return value


def _secret_keys(manifest: dict[str, Any], field: str) -> list[str]:
    value = manifest[field]
    if isinstance(value, dict):
        return list(value)
    # The whole map arrived masked (pulumi-kubernetes marks data/stringData secret as a whole);
    # our own Secret's keys are known, anything else gets one placeholder key.
    from k8s.pod import LIVEKIT_SECRET, LIVEKIT_SECRET_KEYS

    return list(LIVEKIT_SECRET_KEYS) if manifest.get("metadata", {}).get("name") == LIVEKIT_SECRET else ["masked"]


def _mask_secret(manifest: dict[str, Any]) -> None:
    for field in ("data", "stringData"):
        if field in manifest:
            manifest[field] = {k: MASKED for k in _secret_keys(manifest, field)}


def manifest_from_inputs(resource_type: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
    """The object as it would be applied, or None for a resource that is not a Kubernetes object."""
    if not is_kubernetes_object(resource_type, inputs):
        return None
    manifest = _clean(inputs)
    if manifest.get("kind") == "Secret" and manifest.get("apiVersion") == "v1":
        _mask_secret(manifest)
    ordered = {k: manifest[k] for k in _HEAD if k in manifest}
    ordered.update((k, v) for k, v in manifest.items() if k not in ordered)
    return ordered
