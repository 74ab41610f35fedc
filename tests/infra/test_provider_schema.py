"""Every input the program gives a GCP or random resource is a field the pinned SDK declares.

Nested settings are plain dicts, and the Python SDK passes a key it does not know through
unchanged and unchecked: a misspelt `managed_promethus` would reach the provider, which
ignores or rejects it only at `pulumi up`. This walks each recorded input against the input
types of the installed pulumi-gcp and pulumi-random, so such a slip fails here, offline."""

from __future__ import annotations

import typing
from importlib.metadata import version
from typing import Any, Iterator

from pulumi import _types

from tooling.mocks import args_class

PINNED = {"pulumi-gcp": "10.2.0", "pulumi-random": "4.21.4"}


def _input_type_in(hint: Any) -> type | None:
    """The input type inside Sequence[Union[X, Awaitable[X], Output[None]]], Mapping[...], X."""
    if isinstance(hint, type) and _types.is_input_type(hint):
        return hint
    for arg in typing.get_args(hint):
        found = _input_type_in(arg)
        if found is not None:
            return found
    return None


def unknown_fields(cls: type, value: Any, path: str) -> Iterator[str]:
    if isinstance(value, list):
        for i, item in enumerate(value):
            yield from unknown_fields(cls, item, f"{path}[{i}]")
        return
    if not isinstance(value, dict):
        return
    fields = _types.input_type_types(cls)
    for key, item in value.items():
        if key not in fields:
            yield f"{path}.{key}"
            continue
        nested = _input_type_in(fields[key])
        if nested is not None:
            yield from unknown_fields(nested, item, f"{path}.{key}")


def test_the_sdks_are_the_pinned_versions():
    """The field check below is only as good as the SDK it reads."""
    assert {name: version(name) for name in PINNED} == PINNED


def test_every_gcp_and_random_input_is_a_declared_field(plan):
    provider_resources = [r for r in plan.resources if r["type"].startswith(("gcp:", "random:"))]
    missing = [r["type"] for r in provider_resources if args_class(r["type"]) is None]
    assert missing == [], "no SDK input type found for these; the walk would skip them"
    unknown = [path for r in provider_resources for path in unknown_fields(args_class(r["type"]), r["inputs"], r["name"])]
    assert unknown == []


def test_the_walk_finds_a_misspelt_nested_field():
    from pulumi_gcp.container import ClusterArgs

    inputs = {"monitoringConfig": {"managed_promethus": {"enabled": True}},
              "maintenancePolicy": {"maintenanceExclusions": [{"exclusionName": "x", "scopes": "NO_UPGRADES"}]}}
    assert list(unknown_fields(ClusterArgs, inputs, "cluster")) == [
        "cluster.monitoringConfig.managed_promethus", "cluster.maintenancePolicy.maintenanceExclusions[0].scopes"]
