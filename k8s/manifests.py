"""Kubernetes manifests from mocked resource inputs, exactly as the provider would apply them."""

from __future__ import annotations

from typing import Any

MASKED = "<secret>"
_SKIP = {"kubernetes:index:Provider"}


def is_kubernetes_object(resource_type: str) -> bool:
    return resource_type.startswith("kubernetes:") and resource_type not in _SKIP


def _strip(value: Any) -> Any:
    """Drop empty values the SDK sends for unset fields; the API server never sees them."""
    if isinstance(value, dict):
        cleaned = {k: _strip(v) for k, v in value.items() if not k.startswith("__")}
        return {k: v for k, v in cleaned.items() if v is not None and v != {}}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def manifest_from_inputs(resource_type: str, inputs: dict[str, Any]) -> dict[str, Any] | None:
    if not is_kubernetes_object(resource_type):
        return None
    manifest = _strip(inputs)
    if manifest.get("kind") == "Secret":
        # Never write secret material. A property holding any secret arrives masked as a
        # whole, so the keys come from the one place that defines them.
        from k8s.workload import LIVEKIT_SECRET_KEYS

        for field in ("stringData", "data"):
            if field in manifest:
                keys = manifest[field] if isinstance(manifest[field], dict) else LIVEKIT_SECRET_KEYS
                manifest[field] = {k: MASKED for k in keys}
    ordered = {k: manifest[k] for k in ("apiVersion", "kind", "metadata") if k in manifest}
    ordered.update({k: v for k, v in manifest.items() if k not in ordered})
    return ordered
