"""Pulumi mocks for offline evaluation: record every resource, fake only what GCP would compute.

Nothing here talks to GCP. Outputs a real deployment would compute (ids, emails, endpoints,
the project number) get deterministic stand-ins, and only those the program actually reads.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.runtime.mocks import MockMonitor

FAKE_PROJECT_NUMBER = "123456789012"
SECRET_MARK = "[secret]"
# The wire form wraps secret values in {SECRET_SIG: SECRET_VALUE_SIG, "value": ...}.
_SECRET_SIG = "4dabf18193072939515e22adb298388d"
FAKE_RANDOM_HEX = "a1b2"


@dataclass
class Recorded:
    type: str
    name: str
    parent: str | None
    inputs: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "parent": self.parent, "inputs": self.inputs}


def wire_value(value: Any) -> Any:
    """Inputs as a reviewer should see them: secrets masked, whole numbers as integers (the
    engine's protobuf Struct carries every number as a double)."""
    if isinstance(value, dict):
        if value.get(_SECRET_SIG) is not None:
            return SECRET_MARK
        return {k: wire_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [wire_value(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _computed_outputs(typ: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """Only the values a provider computes and the program reads."""
    project = inputs.get("project", "mock-project")
    if typ == "random:index/randomId:RandomId":
        return {"hex": FAKE_RANDOM_HEX, "b64Std": "obI=", "dec": "41394"}
    if typ == "gcp:serviceaccount/account:Account":
        email = f"{inputs['accountId']}@{project}.iam.gserviceaccount.com"
        return {"email": email, "member": f"serviceAccount:{email}", "uniqueId": "100000000000000000001"}
    if typ == "gcp:container/cluster:Cluster":
        endpoints = dict(inputs.get("controlPlaneEndpointsConfig") or {})
        dns = dict(endpoints.get("dnsEndpointConfig") or {})
        dns["endpoint"] = f"gke-0123456789abcdef-{FAKE_PROJECT_NUMBER}.{inputs.get('location')}.gke.goog"
        endpoints["dnsEndpointConfig"] = dns
        return {"controlPlaneEndpointsConfig": endpoints, "endpoint": "10.0.0.2"}
    if typ.startswith("gcp:compute/"):
        return {"selfLink": f"https://www.googleapis.com/compute/v1/projects/{project}/{name}"}
    return {}


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: list[Recorded] = []
        self.invokes: list[str] = []
        self.current_parent: str | None = None

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.resources.append(Recorded(args.typ, args.name, self.current_parent, wire_value(args.inputs)))
        outputs = {**args.inputs, **_computed_outputs(args.typ, args.name, args.inputs)}
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs):
        self.invokes.append(args.token)
        if args.token == "gcp:organizations/getProject:getProject":
            project = args.args.get("projectId", "mock-project")
            return {"projectId": project, "number": FAKE_PROJECT_NUMBER, "name": project}
        raise NotImplementedError(f"no mock answer for invoke {args.token}; add one to infra/mocks.py")


def _parent_name(urn: str) -> str | None:
    """`urn:pulumi:<stack>::<project>::<qualified type>::<name>`; the stack itself is no parent."""
    if not urn:
        return None
    qualified_type, name = urn.split("::")[-2:]
    return None if qualified_type.split("$")[-1] == "pulumi:pulumi:Stack" else name


class ParentTrackingMonitor(MockMonitor):
    """MockResourceArgs carries no parent; the request does. Registration is serialised so the
    parent seen by new_resource is the one of the request being handled."""

    def __init__(self, mocks: RecordingMocks):
        super().__init__(mocks)
        self._lock = threading.Lock()

    def RegisterResource(self, request):
        with self._lock:
            self.mocks.current_parent = _parent_name(request.parent)
            return super().RegisterResource(request)
