"""Assertions inside `apply` must run. With preview=True, unknown values would skip them
silently, so each check here counts its runs and the test fails if the count stays zero."""

from __future__ import annotations

import json

import pulumi
from pulumi.runtime.sync_await import _sync_await

from infra.kubeconfig import render_kubeconfig


class ApplyProbe:
    def __init__(self) -> None:
        self.runs = 0

    def check(self, output: pulumi.Output, assertion) -> pulumi.Output:
        def run(value):
            assertion(value)
            self.runs += 1
            return value
        return output.apply(run)


def test_apply_assertion_on_a_component_output_runs():
    from infra.plan import evaluate

    probe = ApplyProbe()
    result = evaluate("dev")
    # evaluate() resolved every export through its Output; check one through a real apply too.
    kubeconfig = pulumi.Output.secret(result.outputs["kubeconfig"])

    def uses_auth_plugin(text: str) -> None:
        assert json.loads(text)["users"][0]["user"]["exec"]["command"] == "gke-gcloud-auth-plugin"

    _sync_await(probe.check(kubeconfig, uses_auth_plugin).future())
    assert probe.runs == 1


def test_kubeconfig_renders_the_dns_endpoint_with_the_auth_plugin():
    doc = json.loads(render_kubeconfig("ctx", "gke-abc.us-central1.gke.goog"))
    assert doc["clusters"][0]["cluster"] == {"server": "https://gke-abc.us-central1.gke.goog"}
    assert "certificate-authority-data" not in json.dumps(doc)
    assert doc["users"][0]["user"]["exec"]["apiVersion"] == "client.authentication.k8s.io/v1beta1"
    assert "auth-provider" not in json.dumps(doc)
