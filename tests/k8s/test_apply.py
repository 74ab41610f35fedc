"""Assertions inside `apply` must be seen to run. Under preview, values a mock does not return
stay unknown and an `apply` callback is silently skipped, so each check here counts its runs,
and a control shows the count staying at zero when the values are unknown.

The component is built directly under fresh mocks (Pulumi mocks are process-global; every
tooling.plan.evaluate call installs its own again). Nothing here talks to a cluster.
"""

from __future__ import annotations

from typing import Any, Callable

import pulumi
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.mocks import set_mocks
from pulumi.runtime.stack import wait_for_rpcs
from pulumi.runtime.sync_await import _sync_await

from domain.config import parse_stack_config
from k8s.livekit_secrets import LiveKitSecrets, LiveKitSecretsArgs
from domain.settings import PROJECT
from domain.stackfiles import load_stack_values
from k8s.workload import AgentWorkload, AgentWorkloadArgs, image_reference

SECRET_SIG = "4dabf18193072939515e22adb298388d"


class EchoMocks(pulumi.runtime.Mocks):
    """A cluster that echoes what it is given (or nothing, to model values unknown at preview)."""

    def __init__(self, echo: bool = True):
        self.echo = echo
        self.inputs: dict[str, dict[str, Any]] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.inputs[args.name] = args.inputs
        if not self.echo:
            return f"{args.name}-id", {}
        # Secret Manager numbers a secret's first version 1 (its only computed output we read)
        computed = {"version": "1"} if args.typ == "gcp:secretmanager/secretVersion:SecretVersion" else {}
        return f"{args.name}-id", {**args.inputs, **computed}

    def call(self, args: pulumi.runtime.MockCallArgs):
        raise NotImplementedError(args.token)


class ApplyProbe:
    def __init__(self) -> None:
        self.runs = 0

    def check(self, output: pulumi.Output, assertion: Callable[[Any], None]) -> pulumi.Output:
        def run(value):
            assertion(value)
            self.runs += 1
            return value
        return output.apply(run)


def _build(mocks: EchoMocks, preview: bool, livekit_url: str = "wss://calls.example.com",
           credentials: str = "kubernetesSecret") -> AgentWorkload:
    pulumi_settings.reset_options(project=PROJECT, stack="dev", preview=preview)
    set_mocks(mocks, project=PROJECT, stack="dev", preview=preview)
    values = load_stack_values("dev")
    secrets = {"gke-voice-agents:livekitApiKey": "key-1", "gke-voice-agents:livekitApiSecret": "secret-1"}
    raw = {**values.config, "gke-voice-agents:livekitUrl": livekit_url, **secrets,
           "gke-voice-agents:livekitCredentials": credentials}
    cfg = parse_stack_config("dev", raw, tuple(secrets))
    image = image_reference(pulumi.Output.from_input("us-central1-docker.pkg.dev/p/r"), cfg.workload)
    if credentials == "secretManager":
        files = LiveKitSecrets("livekit", LiveKitSecretsArgs(
            project=cfg.project, region=cfg.region, stack="dev", agent_principal="principal://example/sa/voice-agent",
            api_key=cfg.livekit_api_key, api_secret=cfg.livekit_api_secret)).files
        return AgentWorkload("agent", AgentWorkloadArgs(settings=cfg.workload, image=image, gcp_project=cfg.project,
                                                        livekit_files=files))
    return AgentWorkload("agent", AgentWorkloadArgs(
        settings=cfg.workload, image=image, gcp_project=cfg.project,
        livekit_api_key=cfg.livekit_api_key, livekit_api_secret=cfg.livekit_api_secret))


def test_component_outputs_are_checked_inside_apply():
    probe = ApplyProbe()
    workload = _build(EchoMocks(), preview=False)
    checks = pulumi.Output.all(
        probe.check(workload.namespace, lambda ns: _equal(ns, "voice-agents")),
        probe.check(workload.deployment_name, lambda name: _equal(name, "voice-agent")),
        probe.check(image_reference("us-central1-docker.pkg.dev/p/r", workload_settings()),
                    lambda ref: _equal(ref, "us-central1-docker.pkg.dev/p/r/voice-agent:0.1.0")),
    )
    _sync_await(checks.future())
    assert probe.runs == 3


def test_preview_leaves_unreturned_values_unknown_and_apply_unrun():
    """The control: with nothing returned at preview, the same checks never execute."""
    probe = ApplyProbe()
    workload = _build(EchoMocks(echo=False), preview=True)
    probe.check(workload.namespace, lambda ns: _equal(ns, "never-checked"))
    _sync_await(wait_for_rpcs())
    assert probe.runs == 0


def test_livekit_url_and_credentials_reach_the_secret_as_secrets():
    """The Secret is masked in every plan; here the mock sees the wire form itself."""
    mocks = EchoMocks()
    _build(mocks, preview=False, livekit_url="wss://lk.internal.example:7880")
    _sync_await(wait_for_rpcs())
    string_data = mocks.inputs["agent-livekit"]["stringData"]
    assert string_data[SECRET_SIG]  # the whole map is marked secret on the wire
    assert string_data["value"] == {"url": "wss://lk.internal.example:7880", "api-key": "key-1", "api-secret": "secret-1"}


def test_credentials_reach_only_secret_manager_as_secrets_and_the_pods_learn_the_versions():
    """livekitCredentials=secretManager on the wire: each value is a secret SecretVersion's data
    and nowhere else; the pod template carries the versions the engine returned (checked inside
    apply, and counted)."""
    mocks, probe = EchoMocks(), ApplyProbe()
    workload = _build(mocks, preview=False, credentials="secretManager")
    _sync_await(wait_for_rpcs())
    for name, value in (("livekit-api-key-version", "key-1"), ("livekit-api-secret-version", "secret-1")):
        data = mocks.inputs[name]["secretData"]
        assert data[SECRET_SIG] and data["value"] == value
    wire = repr({k: v for k, v in mocks.inputs.items() if not k.endswith("-version")})
    assert "key-1" not in wire and "secret-1" not in wire
    assert "agent-livekit" not in mocks.inputs
    template = mocks.inputs["agent-deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert template["gke-voice-agents/livekit-credentials-revision"] == "1-1"
    _sync_await(probe.check(workload.namespace, lambda ns: _equal(ns, "voice-agents")).future())
    assert probe.runs == 1


def workload_settings():
    values = load_stack_values("dev")
    cfg = parse_stack_config("dev", values.config, values.secret_keys)
    return cfg.workload


def _equal(actual: Any, expected: Any) -> None:
    assert actual == expected, f"{actual!r} != {expected!r}"
