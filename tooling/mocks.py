"""Pulumi mocks for offline evaluation: record every resource, fake only what GCP would compute.

Nothing here talks to GCP. Values a real deployment learns from GCP or from the engine (ids,
service-account emails, the DNS endpoint, the project number, auto-generated names) get
deterministic stand-ins, and only those the program actually reads. Everything else a
resource returns is its own inputs, as the mock monitor does by default.
"""

from __future__ import annotations

import hashlib
import importlib
import threading
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi import _types
from pulumi.runtime.mocks import MockMonitor

FAKE_PROJECT_NUMBER = "123456789012"
FAKE_RANDOM_HEX = "a1b2"
SECRET_MARK = "[secret]"
# The wire form wraps secret values in {SECRET_SIG: SECRET_VALUE_SIG, "value": ...}.
_SECRET_SIG = "4dabf18193072939515e22adb298388d"
# Python packages of the provider SDKs whose input types the plan can look up.
_PACKAGES = {"gcp": "pulumi_gcp", "random": "pulumi_random"}


@dataclass
class Recorded:
    type: str
    name: str
    parent: str | None
    inputs: dict[str, Any]
    # Names of the resources the engine must finish first: explicit depends_on (a component
    # expanded to its children) and every resource whose Output feeds an input. The parent is
    # not one of them: a parent orders nothing.
    depends_on: list[str] = field(default_factory=list)
    # The explicit provider's name (the Kubernetes provider for every workload object), or None
    # for the default provider. The SDK waits for the provider before registering the resource,
    # so a provider orders like a dependency (tooling/preconditions.py reads it that way).
    provider: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "parent": self.parent, "dependsOn": self.depends_on,
                "provider": self.provider, "inputs": self.inputs}


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


def args_class(resource_type: str) -> type | None:
    """The SDK's input type of a provider resource: gcp:compute/router:Router -> RouterArgs."""
    package, module_path, name = (resource_type.split(":") + ["", ""])[:3]
    if package not in _PACKAGES or not name:
        return None
    module = module_path.split("/")[0]
    try:
        sdk = importlib.import_module(_PACKAGES[package] if module == "index" else f"{_PACKAGES[package]}.{module}")
    except ImportError:
        return None
    return getattr(sdk, f"{name}Args", None)


def _auto_name(resource_type: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """The engine names a resource `<name>-<7 hex>` when the program gives it no name; the mock
    monitor does not, so a program reading `.name` (the NAT reads its router's) would get
    nothing. The hex here is derived from the name so plans are reproducible."""
    cls = args_class(resource_type)
    if cls is None or "name" in inputs or "name" not in _types.input_type_py_to_pulumi_names(cls):
        return {}
    return {"name": f"{name}-{hashlib.sha256(name.encode()).hexdigest()[:7]}"}


def _resource_id(resource_type: str, name: str, outputs: dict[str, Any]) -> str:
    """Ids the program passes on (the cluster's network and subnetwork), in GCP's form."""
    project, region = outputs.get("project", "mock-project"), outputs.get("region", "mock-region")
    if resource_type == "gcp:compute/network:Network":
        return f"projects/{project}/global/networks/{outputs['name']}"
    if resource_type == "gcp:compute/subnetwork:Subnetwork":
        return f"projects/{project}/regions/{region}/subnetworks/{outputs['name']}"
    if resource_type == "gcp:pubsub/topic:Topic":
        return f"projects/{project}/topics/{outputs['name']}"
    if resource_type == "gcp:kms/keyRing:KeyRing":
        return f"projects/{project}/locations/{outputs.get('location')}/keyRings/{outputs['name']}"
    if resource_type == "gcp:kms/cryptoKey:CryptoKey":
        return f"{outputs['keyRing']}/cryptoKeys/{outputs['name']}"
    if resource_type == "gcp:secretmanager/secret:Secret":
        return f"projects/{project}/secrets/{outputs['secretId']}"
    return f"{name}-id"


def _computed_outputs(resource_type: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """Only the values a provider computes and the program reads."""
    if resource_type == "random:index/randomId:RandomId":
        return {"hex": FAKE_RANDOM_HEX}
    if resource_type == "gcp:serviceaccount/account:Account":
        project = inputs.get('project', 'mock-project')
        email = f"{inputs['accountId']}@{project}.iam.gserviceaccount.com"
        # `name` is what grants on the account take as serviceAccountId (GCP's fully qualified form)
        return {"email": email, "member": f"serviceAccount:{email}", "name": f"projects/{project}/serviceAccounts/{email}"}
    if resource_type == "gcp:secretmanager/secretVersion:SecretVersion":
        # Secret Manager numbers a secret's versions from 1; the name uses the project number.
        secret = str(inputs.get("secret", "")).rsplit("/", 1)[-1]
        return {"version": "1", "name": f"projects/{FAKE_PROJECT_NUMBER}/secrets/{secret}/versions/1"}
    if resource_type == "gcp:container/cluster:Cluster":
        # GKE's DNS endpoint: gke-<hash>-<project number>.<location>.gke.goog
        endpoints = dict(inputs.get("controlPlaneEndpointsConfig") or {})
        dns = dict(endpoints.get("dnsEndpointConfig") or {})
        dns["endpoint"] = f"gke-0123456789abcdef-{FAKE_PROJECT_NUMBER}.{inputs.get('location')}.gke.goog"
        endpoints["dnsEndpointConfig"] = dns
        return {"controlPlaneEndpointsConfig": endpoints}
    return {}


class RecordingMocks(pulumi.runtime.Mocks):
    """Records each registration as {type, name, parent, inputs} in wire (camelCase) form and
    answers invokes by token."""

    def __init__(self) -> None:
        self.resources: list[Recorded] = []
        self.invokes: list[str] = []
        # Emails getAccount answers "not found" for: a bootstrap that has not run (tests set it).
        self.missing_accounts: set[str] = set()
        self.current_parent: str | None = None
        self.current_dependencies: list[str] = []
        self.current_provider: str | None = None
        self._constructed: dict[tuple[str, str], int] = {}

    def note_constructed(self, resource_type: str, name: str) -> None:
        """Called from the resource constructor, in the program's own (single-threaded) order."""
        self._constructed.setdefault((resource_type, name), len(self._constructed))

    def in_program_order(self) -> list[Recorded]:
        """Registrations reach the monitor in whatever order their inputs resolve, which varies
        from run to run; sorting by construction order makes resources.json and the manifest
        numbering reproducible and reads in the order the program declares things."""
        last = len(self._constructed)
        return sorted(self.resources, key=lambda r: self._constructed.get((r.type, r.name), last))

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.resources.append(Recorded(args.typ, args.name, self.current_parent, wire_value(args.inputs),
                                       list(self.current_dependencies), self.current_provider))
        outputs = {**args.inputs, **_auto_name(args.typ, args.name, args.inputs)}
        outputs.update(_computed_outputs(args.typ, outputs))
        return _resource_id(args.typ, args.name, outputs), outputs

    def call(self, args: pulumi.runtime.MockCallArgs):
        self.invokes.append(args.token)
        if args.token == "gcp:organizations/getProject:getProject":
            project = args.args.get("projectId", "mock-project")
            return {"projectId": project, "number": FAKE_PROJECT_NUMBER, "name": project}
        if args.token == "gcp:serviceaccount/getAccount:getAccount":
            # The accounts the bootstrap creates (infra/accounts.py): GCP's answer for an existing one.
            email, project = args.args["accountId"], args.args.get("project", "mock-project")
            if email in self.missing_accounts:
                raise Exception(f"Error: googleapi: Error 404: Not found; Gaia id not found for email {email}, notFound")
            return {"email": email, "member": f"serviceAccount:{email}", "accountId": email.split("@", 1)[0],
                    "name": f"projects/{project}/serviceAccounts/{email}", "project": project}
        raise NotImplementedError(f"no mock answer for invoke {args.token}; add one to tooling/mocks.py")


def _parent_name(urn: str) -> str | None:
    """`urn:pulumi:<stack>::<project>::<qualified type>::<name>`; the stack itself is no parent."""
    if not urn:
        return None
    qualified_type, name = urn.split("::")[-2:]
    return None if qualified_type.split("$")[-1] == "pulumi:pulumi:Stack" else name


def _dependency_names(urns) -> list[str]:
    """The request's dependency URNs as resource names, sorted: the order the SDK resolves them
    in varies from run to run, the plan must not."""
    return sorted({urn.split("::")[-1] for urn in urns})


def _provider_name(reference: str) -> str | None:
    """A provider reference is `<provider URN>::<provider id>`; default providers (the SDK
    sends none for them) leave it empty."""
    if not reference:
        return None
    return reference.rsplit("::", 1)[0].split("::")[-1]


class ParentTrackingMonitor(MockMonitor):
    """MockResourceArgs carries no parent; the request does. The SDK registers resources from
    several threads, so registration is serialised: the parent new_resource sees is the one of
    the request being handled."""

    def __init__(self, mocks: RecordingMocks):
        super().__init__(mocks)
        self._lock = threading.Lock()

    def RegisterResource(self, request):
        with self._lock:
            self.mocks.current_parent = _parent_name(request.parent)
            self.mocks.current_dependencies = _dependency_names(request.dependencies)
            self.mocks.current_provider = _provider_name(request.provider)
            return super().RegisterResource(request)
