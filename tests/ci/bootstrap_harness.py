"""Runs bootstrap/__main__.py offline under Pulumi mocks, with the committed example stack's config.

Only GCP is faked: the mocks answer with the identifiers GCP would compute (pool and provider
resource names with a project number, key ids) and record every resource's inputs.
"""

from __future__ import annotations

import json
import runpy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import pulumi
import yaml
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.config import set_all_config
from pulumi.runtime.mocks import set_mocks
from pulumi.runtime.stack import wait_for_rpcs
from pulumi.runtime.sync_await import _sync_await

from bootstrap.config import PROJECT
from tooling.mocks import FAKE_PROJECT_NUMBER, ParentTrackingMonitor, RecordingMocks

ROOT = Path(__file__).resolve().parents[2]
# Shape only: a PEM block as Cloud KMS returns it; no test verifies a signature with it.
FAKE_PUBLIC_KEY_PEM = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEfake\n-----END PUBLIC KEY-----\n"
BOOTSTRAP = ROOT / "bootstrap"
STACK = "ci"


def _engine_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def stack_file_config(path: Path = BOOTSTRAP / f"Pulumi.{STACK}.yaml") -> dict[str, str]:
    """What the engine would hand the program: full keys, objects as JSON."""
    config = yaml.safe_load(path.read_text())["config"]
    return {(k if ":" in k else f"{PROJECT}:{k}"): _engine_string(v) for k, v in config.items()}


def _gcp_computed(typ: str, inputs: Mapping[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """(id, outputs) GCP would compute for the types the bootstrap reads back."""
    if typ == "gcp:iam/workloadIdentityPool:WorkloadIdentityPool":
        name = f"projects/{FAKE_PROJECT_NUMBER}/locations/global/workloadIdentityPools/{inputs['workloadIdentityPoolId']}"
        return name, {"name": name}
    if typ == "gcp:iam/workloadIdentityPoolProvider:WorkloadIdentityPoolProvider":
        name = (f"projects/{FAKE_PROJECT_NUMBER}/locations/global/workloadIdentityPools/"
                f"{inputs['workloadIdentityPoolId']}/providers/{inputs['workloadIdentityPoolProviderId']}")
        return name, {"name": name}
    if typ == "gcp:serviceaccount/account:Account":
        email = f"{inputs['accountId']}@{inputs['project']}.iam.gserviceaccount.com"
        return None, {"name": f"projects/{inputs['project']}/serviceAccounts/{email}"}
    if typ == "gcp:kms/keyRing:KeyRing":
        return f"projects/{inputs['project']}/locations/{inputs['location']}/keyRings/{inputs['name']}", {}
    if typ == "gcp:kms/cryptoKey:CryptoKey":
        return f"{inputs['keyRing']}/cryptoKeys/{inputs['name']}", {}
    if typ == "gcp:containeranalysis/note:Note":
        return f"projects/{inputs['project']}/notes/{inputs['name']}", {"name": inputs["name"]}
    if typ == "gcp:binaryauthorization/attestor:Attestor":
        return f"projects/{inputs['project']}/attestors/{inputs['name']}", {"name": inputs["name"]}
    return None, {}


class BootstrapMocks(RecordingMocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        default_id, outputs = super().new_resource(args)
        resource_id, computed = _gcp_computed(args.typ, args.inputs)
        return resource_id or default_id, {**outputs, **computed}

    def call(self, args: pulumi.runtime.MockCallArgs):
        """The two lookups the bootstrap makes: a stage project's number (its Binary
        Authorization service agent, its secrets' resource names) and the attestor key's public
        half (Cloud KMS getPublicKey, in the shape pulumi-gcp's getKMSCryptoKeyVersion returns)."""
        self.invokes.append(args.token)
        if args.token == "gcp:organizations/getProject:getProject":
            return {"projectId": args.args["projectId"], "number": FAKE_PROJECT_NUMBER, "name": args.args["projectId"]}
        if args.token == "gcp:kms/getKMSCryptoKeyVersion:getKMSCryptoKeyVersion":
            key = args.args["cryptoKey"]
            return {"cryptoKey": key, "name": f"{key}/cryptoKeyVersions/{int(args.args.get('version', 1))}",
                    "version": int(args.args.get("version", 1)), "algorithm": "EC_SIGN_P256_SHA256",
                    "protectionLevel": "SOFTWARE", "state": "ENABLED", "id": f"{key}/cryptoKeyVersions/1",
                    "publicKeys": [{"algorithm": "EC_SIGN_P256_SHA256", "pem": FAKE_PUBLIC_KEY_PEM}]}
        raise NotImplementedError(f"no mock answer for the bootstrap's invoke {args.token}")


@dataclass
class BootstrapRun:
    resources: list[dict[str, Any]]
    outputs: dict[str, Any]
    protected: set[str] = field(default_factory=set)

    def of_type(self, typ: str) -> list[dict[str, Any]]:
        return [r for r in self.resources if r["type"] == typ]

    def named(self, name: str) -> dict[str, Any]:
        found = [r for r in self.resources if r["name"] == name]
        assert len(found) == 1, f"expected one resource named {name}, found {len(found)}"
        return found[0]


class _ProtectRecorder(ParentTrackingMonitor):
    """Keeps the `protect` flag of each registration: mocks do not see resource options."""

    def __init__(self, mocks: BootstrapMocks, protected: set[str]):
        super().__init__(mocks)
        self.protected = protected

    def RegisterResource(self, request):
        if request.protect:
            self.protected.add(request.name)
        return super().RegisterResource(request)


def evaluate_build(cfg: Any) -> BootstrapRun:
    """Runs `bootstrap.program.build` on an already-parsed config, bypassing the loader's rules:
    for negative controls that show what a layout the loader refuses would grant."""
    from bootstrap.program import build

    mocks = BootstrapMocks()
    pulumi_settings.reset_options(project=PROJECT, stack=STACK, preview=False)
    set_mocks(mocks, project=PROJECT, stack=STACK, preview=False, monitor=ParentTrackingMonitor(mocks))
    exports = {k: pulumi.Output.from_input(v) for k, v in build(cfg).items()}
    _sync_await(wait_for_rpcs())
    outputs = {k: _sync_await(v.future()) for k, v in exports.items()}
    return BootstrapRun([r.as_dict() for r in mocks.resources], outputs)


def evaluate_bootstrap(config: Mapping[str, str] | None = None) -> BootstrapRun:
    """Runs the real entry file (not a copy of its wiring) under fresh mocks."""
    mocks = BootstrapMocks()
    protected: set[str] = set()
    pulumi_settings.reset_options(project=PROJECT, stack=STACK, preview=False)
    set_all_config(dict(stack_file_config() if config is None else config), [])
    set_mocks(mocks, project=PROJECT, stack=STACK, preview=False, monitor=_ProtectRecorder(mocks, protected))
    exports: dict[str, pulumi.Output[Any]] = {}
    real_export = pulumi.export
    pulumi.export = lambda key, value: exports.__setitem__(key, pulumi.Output.from_input(value))
    try:
        runpy.run_path(str(BOOTSTRAP / "__main__.py"), run_name="__main__")
        _sync_await(wait_for_rpcs())
        outputs = {k: _sync_await(v.future()) for k, v in exports.items()}
    finally:
        pulumi.export = real_export
    return BootstrapRun([r.as_dict() for r in mocks.resources], outputs, protected)
