"""Assertions on the components' own Outputs, inside `apply`, proven to have run.

The program runs under mocks with preview=False, so every Output is known. Each assertion
goes through the `apply_probe` fixture, which awaits it and fails the test if it never ran
(as it would not on an unknown value)."""

from __future__ import annotations

import json

import pulumi
import pytest
from pulumi.runtime.sync_await import _sync_await

from infra.kubeconfig import render_kubeconfig
from tooling.mocks import FAKE_PROJECT_NUMBER
from tooling.plan import run_program
from tests.infra.conftest import ApplyProbe


@pytest.fixture(params=["dev", "prod"])
def program(request):
    """The live program of each committed stack: its component objects and exports."""
    return run_program(request.param)


def test_kubeconfig_output_is_secret_and_targets_the_dns_endpoint(program, apply_probe):
    cluster = program.namespace["cluster"]
    assert _sync_await(cluster.kubeconfig.is_secret()) is True, "kubeconfig would be shown in plain text"

    def targets_dns_endpoint(values):
        text, endpoint, name = values
        doc = json.loads(text)
        assert endpoint.endswith(".us-central1.gke.goog"), endpoint
        assert doc["clusters"] == [{"name": name, "cluster": {"server": f"https://{endpoint}"}}]
        assert doc["users"][0]["user"]["exec"]["command"] == "gke-gcloud-auth-plugin"
        assert doc["current-context"] == name

    apply_probe.check("kubeconfig", pulumi.Output.all(cluster.kubeconfig, cluster.dns_endpoint, cluster.name),
                      targets_dns_endpoint)


def test_agent_principal_names_the_agents_kubernetes_service_account(program, apply_probe):
    stack = program.namespace["cfg"].stack

    def is_workload_principal(principal: str) -> None:
        assert principal == (
            f"principal://iam.googleapis.com/projects/{FAKE_PROJECT_NUMBER}/locations/global/workloadIdentityPools/"
            f"gva-fixture-{stack}.svc.id.goog/subject/ns/voice-agents/sa/voice-agent")

    apply_probe.check("principal", program.namespace["identity"].principal, is_workload_principal)


def test_registry_url_and_node_account_are_the_stacks_own(program, apply_probe):
    stack = program.namespace["cfg"].stack
    apply_probe.check("registry url", program.namespace["registry"].url,
                      lambda url: _equal(url, f"us-central1-docker.pkg.dev/gva-fixture-{stack}/voice-agents-{stack}"))
    apply_probe.check("node account", program.namespace["cluster"].node_service_account_email,
                      lambda email: _equal(email, f"gva-{stack}-nodes@gva-fixture-{stack}.iam.gserviceaccount.com"))


def test_network_outputs_are_gcp_resource_paths(program, apply_probe):
    network = program.namespace["network"]
    stack = program.namespace["cfg"].stack
    apply_probe.check("network id", network.network_id,
                      lambda v: _prefix(v, f"projects/gva-fixture-{stack}/global/networks/network-vpc-"))
    apply_probe.check("subnet id", network.subnet_id,
                      lambda v: _prefix(v, f"projects/gva-fixture-{stack}/regions/us-central1/subnetworks/network-nodes-"))


def test_exports_are_resolved_values():
    """Every stack output a user reads after `pulumi up` is set (none left unknown)."""
    run = run_program("dev")
    values = {k: _sync_await(v.future()) for k, v in run.exports.items()}
    assert {k for k, v in values.items() if not v} == set()


def test_the_probe_catches_an_assertion_that_never_ran():
    """The guard itself: an apply on an unknown Output (what a preview yields) is skipped, and
    the probe must say so instead of passing."""
    probe = ApplyProbe()
    run_program("dev")  # installs mocks so Outputs can be built and awaited
    probe.check("on an unknown value", _unknown_output(), lambda _: None)
    with pytest.raises(AssertionError, match=r"never executed: \['on an unknown value'\]"):
        probe.verify()


def test_kubeconfig_uses_the_exec_plugin_and_no_ca_for_the_dns_endpoint():
    doc = json.loads(render_kubeconfig("ctx", "gke-abc.us-central1.gke.goog"))
    assert doc["clusters"][0]["cluster"] == {"server": "https://gke-abc.us-central1.gke.goog"}
    # The DNS endpoint presents a publicly trusted certificate; the legacy auth-provider block
    # stopped working in kubectl 1.26.
    assert "certificate-authority-data" not in json.dumps(doc)
    assert "auth-provider" not in json.dumps(doc)
    assert doc["users"][0]["user"]["exec"]["apiVersion"] == "client.authentication.k8s.io/v1beta1"


def _unknown_output() -> pulumi.Output:
    import asyncio

    from pulumi.output import Output

    def resolved(value):
        future = asyncio.get_event_loop().create_future()
        future.set_result(value)
        return future

    return Output(set(), resolved(None), resolved(False), resolved(False))


def _equal(actual, expected) -> None:
    assert actual == expected


def _prefix(actual: str, prefix: str) -> None:
    assert actual.startswith(prefix), actual
