"""A first `pulumi up` that cannot fail on ordering or existence (issue 24).

tooling/preconditions.py holds one row per documented precondition (API enabled, service agent,
peering before a private instance, a kind the cluster serves, a metric for a PromQL alert, a
token the called API accepts, ...), each with its source. Here every fixture stack's plan meets
all of them, and every row is shown to fail on a plan broken the way the row describes, so no
row is a check that cannot fail.
"""

from __future__ import annotations

import copy
from typing import Any, Callable

import pytest

from tooling.preconditions import (
    CAPACITY_BUFFER_MIN_VERSION, FEDERATED_TOKEN_APIS, PRECONDITIONS, PlanGraph, check_plan, gke_version,
)
from tooling.plan import PlanResult

CLUSTER = "gcp:container/cluster:Cluster"


def test_every_row_names_its_source_and_what_it_needs():
    ids = [p.id for p in PRECONDITIONS]
    assert len(ids) == len(set(ids))
    for p in PRECONDITIONS:
        assert p.needs and p.applies_to
        assert "http" in p.source or ".py" in p.source, p.id


def test_every_fixture_stack_meets_every_precondition(plan: PlanResult):
    problems = {k: v for k, v in check_plan(plan.resources).items() if v}
    assert problems == {}, f"{plan.stack}: {problems}"


def _named(resources: list[dict], name: str) -> dict:
    [found] = [r for r in resources if r["name"] == name]
    return found


def _forget(resources: list[dict], name: str, dependency: str) -> None:
    """Drop one edge: `name` (and its ancestors) no longer wait for `dependency`."""
    r = _named(resources, name)
    while r is not None:
        r["dependsOn"] = [d for d in r["dependsOn"] if d != dependency]
        r = next((p for p in resources if p["name"] == r["parent"]), None)


def _no_validation_switch(rs):
    for r in rs:
        if r["type"] == "gcp:monitoring/alertPolicy:AlertPolicy":
            for c in r["inputs"]["conditions"]:
                c["conditionPrometheusQueryLanguage"].pop("disableMetricValidation")


def _unpinned(rs):
    for r in rs:
        if r["type"] == CLUSTER:
            r["inputs"].pop("minMasterVersion")


def _pinned_too_low(rs):
    for r in rs:
        if r["type"] == CLUSTER:
            r["inputs"]["minMasterVersion"] = "1.35.2-gke.1841999"


def _places_on_its_principal(rs):
    grant = _named(rs, "places-identity-quota-user")
    grant["inputs"]["member"] = _named(rs, "agent-identity-vertex-user")["inputs"]["member"].replace(
        "/sa/voice-agent", "/sa/places-mcp")
    grant["dependsOn"] = ["gke-cluster"]  # as a grant to a principal must (workload-pool-exists)


def _unknown_api(rs):
    rs.append({"type": "gcp:dns/managedZone:ManagedZone", "name": "zone", "parent": None, "dependsOn": [],
               "provider": None, "inputs": {}})


def _lazy_service_agent(rs):
    grant = _named(rs, "livekit-api-key-agent-reader")
    grant["inputs"]["member"] = "serviceAccount:service-123@gcp-sa-secretmanager.iam.gserviceaccount.com"


def _iam_flag_off(rs):
    instance = _named(rs, "checkpoints-instance")
    instance["inputs"]["settings"]["databaseFlags"] = []


def _user_not_an_account(rs):
    """The account the user logs in as is the bootstrap's (infra/accounts.py): only its name is here."""
    _named(rs, "checkpoints-user")["inputs"]["name"] = "postgres"


def _default_provider(rs):
    _named(rs, "agent-namespace")["provider"] = None
    _forget(rs, "agent-namespace", "gke-cluster")


def _no_add_on(rs):
    _named(rs, "gke-cluster")["inputs"]["secretManagerConfig"] = {"enabled": False}


def _no_managed_prometheus(rs):
    _named(rs, "gke-cluster")["inputs"]["monitoringConfig"]["managedPrometheus"] = {"enabled": False}


def _no_node_role(rs):
    rs.remove(_named(rs, "gke-nodes-container-defaultnodeserviceaccount"))


# (row id, stack, how the plan is broken, words the finding must contain)
BROKEN: list[tuple[str, str, Callable[[list[dict]], Any], str]] = [
    ("api-enabled", "dev", _unknown_api, "no API known for gcp:dns/managedZone:ManagedZone"),
    ("service-agent-exists", "dev", _lazy_service_agent, "exists only after first use"),
    ("cmek-grant-before-cluster", "prod", lambda rs: _forget(rs, "gke-cluster", "secrets-key-gke-agent"),
     "gke-cluster does not wait for the GKE service agent's grant"),
    ("node-role-before-cluster", "dev",
     lambda rs: _forget(rs, "gke-cluster", "gke-nodes-container-defaultnodeserviceaccount"),
     "gke-cluster does not wait for the node service account's role"),
    ("node-role-before-cluster", "dev", _no_node_role, "never gets its node role"),
    ("workload-pool-exists", "dev", lambda rs: _forget(rs, "agent-identity-vertex-user", "gke-cluster"),
     "agent-identity-vertex-user does not wait for the cluster"),
    ("psa-before-private-sql", "dev", lambda rs: _forget(rs, "checkpoints-instance", "checkpoints-psa"),
     "checkpoints-instance does not wait for the private services connection"),
    ("iam-database-user", "dev", _iam_flag_off, "cloudsql.iam_authentication off"),
    ("iam-database-user", "dev", _user_not_an_account,
     "checkpoints-user: 'postgres' is not a service account's database user name"),
    ("k8s-after-cluster", "dev", _default_provider, "on the default provider"),
    ("namespace-first", "dev", lambda rs: _forget(rs, "agent-ksa", "agent-namespace"),
     "agent-ksa does not wait for namespace voice-agents"),
    ("service-account-first", "dev", lambda rs: _forget(rs, "agent-deployment", "agent-ksa"),
     "agent-deployment does not wait for service account voice-agent"),
    ("priority-class-first", "prod", lambda rs: _forget(rs, "spare-placeholders", "spare-priority"),
     "spare-placeholders does not wait for priority class"),
    ("secret-files-first", "dev", lambda rs: _forget(rs, "agent-deployment", "agent-livekit-files"),
     "does not wait for SecretProviderClass livekit"),
    ("secret-files-first", "dev", lambda rs: _forget(rs, "agent", "livekit-api-secret-agent-reader"),
     "does not wait for the pod's read grant (livekit-api-secret-agent-reader)"),
    ("auth-proxy-instance-first", "dev", lambda rs: _forget(rs, "agent", "checkpoints-impersonation"),
     "does not wait for the impersonation grant"),
    ("image-repository-first", "dev", lambda rs: _forget(rs, "agent", "registry-node-reader"),
     "agent-deployment does not wait for the nodes' read grant"),
    ("custom-kinds-served", "dev", _unpinned,
     f"CapacityBuffer is served from GKE {CAPACITY_BUFFER_MIN_VERSION}; the cluster's minimum version is the channel default"),
    ("custom-kinds-served", "dev", _pinned_too_low, "minimum version is 1.35.2-gke.1841999"),
    ("custom-kinds-served", "dev", lambda rs: _forget(rs, "spare-buffer", "spare-template"),
     "spare-buffer does not wait for PodTemplate voice-agent-spare"),
    ("custom-kinds-served", "dev", _no_add_on, "needs the cluster's Secret Manager add-on"),
    ("custom-kinds-served", "dev", _no_managed_prometheus, "needs Managed Service for Prometheus"),
    ("promql-metric-may-be-missing", "prod", _no_validation_switch, "set disable_metric_validation"),
    ("federated-token-accepted", "prod", _places_on_its_principal,
     "places.googleapis.com is not known to accept Workload Identity Federation tokens"),
]


@pytest.mark.parametrize("row, stack, breaking, words", BROKEN, ids=[f"{b[0]}-{i}" for i, b in enumerate(BROKEN)])
def test_each_row_finds_the_break_it_describes(row, stack, breaking, words, request):
    plan = request.getfixturevalue(f"{stack}_plan")
    resources = copy.deepcopy(plan.resources)
    breaking(resources)
    found = check_plan(resources)
    assert any(words in problem for problem in found[row]), found[row]
    # and only the broken row speaks (a finding elsewhere would mean the rows overlap or the
    # break was wider than meant)
    assert {k for k, v in found.items() if v} == {row}, found


def test_every_row_is_exercised_by_a_break():
    assert {p.id for p in PRECONDITIONS} == {b[0] for b in BROKEN}


def test_waiting_goes_through_the_parent_and_the_provider(dev_plan):
    """A child of a component registers only after the component, which waits for its own
    dependencies; Kubernetes objects wait for their provider, which waits for the cluster."""
    graph = PlanGraph(dev_plan.resources)
    assert "agent-identity-vertex-user" in dev_plan.named("agent")["dependsOn"]
    assert "agent-identity-vertex-user" not in dev_plan.named("agent-namespace")["dependsOn"]
    assert "agent-identity-vertex-user" in graph.waits_for("agent-namespace")
    assert dev_plan.named("agent-namespace")["provider"] == "gke-k8s"
    assert "gke-cluster" in graph.waits_for("agent-namespace")


def test_a_cycle_is_reported_not_looped():
    rs = [{"type": "x", "name": "a", "parent": None, "dependsOn": ["b"], "provider": None, "inputs": {}},
          {"type": "x", "name": "b", "parent": None, "dependsOn": ["a"], "provider": None, "inputs": {}}]
    with pytest.raises(ValueError, match="dependency cycle: a -> b -> a"):
        PlanGraph(rs).waits_for("a")


@pytest.mark.parametrize("version, at_least", [
    ("1.35.2-gke.1842000", True), ("1.35.2-gke.1841999", False), ("1.35.2-gke.1842001", True),
    ("1.35.1-gke.9999999", False), ("1.36.0-gke.1", True),
])
def test_version_boundary(version, at_least):
    assert (gke_version(version) >= gke_version(CAPACITY_BUFFER_MIN_VERSION)) is at_least


def test_places_is_the_one_called_api_not_trusted_with_federated_tokens():
    assert [api for api, ok in FEDERATED_TOKEN_APIS.items() if not ok] == ["places.googleapis.com"]
