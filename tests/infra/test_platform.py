"""The GCP platform each committed stack declares, read from the offline plan under mocks."""

from __future__ import annotations

import json

import pytest

from infra.names import TYPE_PREFIX

CLUSTER = "gcp:container/cluster:Cluster"


def test_every_component_type_shares_the_prefix(plan):
    components = [r for r in plan.resources if r["type"].count(":") == 2 and not r["type"].startswith(("gcp:", "kubernetes:", "random:", "pulumi:"))]
    assert {r["type"] for r in components} == {
        f"{TYPE_PREFIX}:infra:VpcNetwork", f"{TYPE_PREFIX}:infra:AutopilotCluster", f"{TYPE_PREFIX}:infra:AgentRegistry",
        f"{TYPE_PREFIX}:infra:AgentIdentity", f"{TYPE_PREFIX}:k8s:AgentWorkload",
        # prod keeps spare capacity; dev does not (spareCapacityPods = 0)
        *([f"{TYPE_PREFIX}:k8s:SpareCapacity"] if plan.stack == "prod" else [])}


def test_every_resource_but_the_provider_is_parented_to_a_component(plan):
    orphans = [r["name"] for r in plan.resources if r["parent"] is None and not r["type"].startswith((TYPE_PREFIX, "pulumi:providers:"))]
    assert orphans == []
    names = {r["name"] for r in plan.resources}
    assert all(r["parent"] in names for r in plan.resources if r["parent"])


def test_child_names_are_derived_from_the_component(plan):
    for r in plan.resources:
        if r["parent"]:
            assert r["name"].startswith(r["parent"] + "-"), r


def test_subnet_is_private_google_access_with_named_secondary_ranges(plan):
    subnet = plan.one("gcp:compute/subnetwork:Subnetwork")["inputs"]
    assert subnet["privateIpGoogleAccess"] is True
    assert [r["rangeName"] for r in subnet["secondaryIpRanges"]] == ["pods", "services"]
    vpc = plan.one("gcp:compute/network:Network")["inputs"]
    assert vpc["autoCreateSubnetworks"] is False


def test_nat_covers_pods_logs_errors_and_allocates_ports_explicitly(plan):
    nat = plan.one("gcp:compute/routerNat:RouterNat")["inputs"]
    assert nat["sourceSubnetworkIpRangesToNat"] == "ALL_SUBNETWORKS_ALL_IP_RANGES"
    assert nat["logConfig"] == {"enable": True, "filter": "ERRORS_ONLY"}
    assert nat["enableDynamicPortAllocation"] is False and nat["enableEndpointIndependentMapping"] is False
    assert nat["minPortsPerVm"] == 4096
    # Long enough that a quiet but open WebSocket to LiveKit or Vertex AI is not cut.
    assert nat["tcpEstablishedIdleTimeoutSec"] >= 1200


def test_cluster_is_private_autopilot_without_node_config(plan):
    cluster = plan.one(CLUSTER)["inputs"]
    assert cluster["enableAutopilot"] is True
    assert cluster["privateClusterConfig"]["enablePrivateNodes"] is True
    assert "nodeConfig" not in cluster
    assert cluster["ipAllocationPolicy"] == {"clusterSecondaryRangeName": "pods", "servicesSecondaryRangeName": "services"}
    assert cluster["monitoringConfig"]["managedPrometheus"]["enabled"] is True
    assert cluster["secretManagerConfig"]["enabled"] is True
    assert cluster["workloadIdentityConfig"]["workloadPool"] == f"my-voice-agents-{plan.stack}.svc.id.goog"


def test_control_plane_is_reached_by_dns_and_the_ip_endpoint_is_closed(plan):
    endpoints = plan.one(CLUSTER)["inputs"]["controlPlaneEndpointsConfig"]
    assert endpoints["dnsEndpointConfig"]["allowExternalTraffic"] is True
    assert endpoints["ipEndpointsConfig"]["enabled"] is False
    assert "masterAuthorizedNetworksConfig" not in plan.one(CLUSTER)["inputs"]


def test_authorized_networks_open_the_ip_endpoint_only_to_them():
    from infra.plan import evaluate

    result = evaluate("dev", {"gke-voice-agents:controlPlaneAuthorizedNetworks": '{"office": "203.0.113.0/24"}'})
    cluster = result.one(CLUSTER)["inputs"]
    assert cluster["controlPlaneEndpointsConfig"]["ipEndpointsConfig"]["enabled"] is True
    assert cluster["masterAuthorizedNetworksConfig"]["cidrBlocks"] == [{"cidrBlock": "203.0.113.0/24", "displayName": "office"}]


@pytest.mark.parametrize("stack, channel, protected", [("dev", "RAPID", False), ("prod", "REGULAR", True)])
def test_release_channel_and_deletion_protection_per_stack(stack, channel, protected):
    from tests.conftest import _committed_plan

    cluster = _committed_plan(stack).one(CLUSTER)["inputs"]
    assert cluster["releaseChannel"]["channel"] == channel
    assert cluster["deletionProtection"] is protected


def test_maintenance_window_and_named_exclusions(prod_plan, dev_plan):
    policy = prod_plan.one(CLUSTER)["inputs"]["maintenancePolicy"]
    assert policy["recurringWindow"]["recurrence"] == "FREQ=WEEKLY;BYDAY=SA,SU"
    assert policy["maintenanceExclusions"] == [{
        "exclusionName": "year-end-peak", "startTime": "2026-12-15T00:00:00Z", "endTime": "2027-01-05T00:00:00Z",
        "exclusionOptions": {"scope": "NO_UPGRADES"}}]
    assert dev_plan.one(CLUSTER)["inputs"]["maintenancePolicy"]["maintenanceExclusions"] == []


def test_nodes_run_as_a_dedicated_least_privilege_account(plan):
    account = plan.one("gcp:serviceaccount/account:Account")["inputs"]
    email = f"{account['accountId']}@my-voice-agents-{plan.stack}.iam.gserviceaccount.com"
    defaults = plan.one(CLUSTER)["inputs"]["clusterAutoscaling"]["autoProvisioningDefaults"]
    assert defaults["serviceAccount"] == email
    roles = sorted(r["inputs"]["role"] for r in plan.of_type("gcp:projects/iAMMember:IAMMember") if r["inputs"]["member"] == f"serviceAccount:{email}")
    assert roles == ["roles/container.defaultNodeServiceAccount"]


def test_names_carry_the_stack_and_a_random_suffix(plan):
    assert plan.one("random:index/randomId:RandomId")["inputs"]["byteLength"] == 2
    assert plan.one(CLUSTER)["inputs"]["name"] == f"voice-agents-{plan.stack}-a1b2"
    assert plan.one("gcp:serviceaccount/account:Account")["inputs"]["accountId"] == f"gva-{plan.stack}-nodes-a1b2"


def test_registry_is_immutable_cleaned_scanned_and_readable_by_nodes_only(plan):
    repo = plan.one("gcp:artifactregistry/repository:Repository")["inputs"]
    assert repo["format"] == "DOCKER" and repo["dockerConfig"] == {"immutableTags": True}
    assert repo["cleanupPolicyDryRun"] is False
    assert {p["id"]: p["action"] for p in repo["cleanupPolicies"]} == {"keep-recent": "KEEP", "delete-untagged": "DELETE"}
    assert repo["cleanupPolicies"][1]["condition"] == {"tagState": "UNTAGGED", "olderThan": f"{14 * 86400}s"}
    assert repo["vulnerabilityScanningConfig"] == {"enablementConfig": "INHERITED"}
    reader = plan.one("gcp:artifactregistry/repositoryIamMember:RepositoryIamMember")["inputs"]
    assert reader["role"] == "roles/artifactregistry.reader"
    assert reader["repository"] == repo["repositoryId"]
    assert reader["member"].startswith(f"serviceAccount:gva-{plan.stack}-nodes-")


def test_vertex_access_is_bound_to_the_agents_kubernetes_identity(plan):
    grant = next(r["inputs"] for r in plan.of_type("gcp:projects/iAMMember:IAMMember") if r["inputs"]["role"] == "roles/aiplatform.user")
    project = f"my-voice-agents-{plan.stack}"
    assert grant["member"] == (f"principal://iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/"
                               f"{project}.svc.id.goog/subject/ns/voice-agents/sa/voice-agent")
    assert plan.of_type("gcp:serviceaccount/key:Key") == []
    assert "gcp:organizations/getProject:getProject" in plan.invokes


def test_stack_outputs_a_user_needs_next(plan):
    out = plan.outputs
    assert set(out) >= {"clusterName", "clusterLocation", "clusterDnsEndpoint", "registryUrl", "kubeconfig", "agentPrincipal", "nodeServiceAccount"}
    assert out["registryUrl"] == f"us-central1-docker.pkg.dev/my-voice-agents-{plan.stack}/voice-agents-{plan.stack}"
    assert out["clusterDnsEndpoint"].endswith(".us-central1.gke.goog")
    kubeconfig = json.loads(out["kubeconfig"])
    assert kubeconfig["clusters"][0]["cluster"]["server"] == f"https://{out['clusterDnsEndpoint']}"
    assert kubeconfig["users"][0]["user"]["exec"]["command"] == "gke-gcloud-auth-plugin"


def test_kubeconfig_is_a_secret_everywhere_it_is_recorded(plan):
    provider = plan.one("pulumi:providers:kubernetes")["inputs"]
    assert provider["kubeconfig"] == "[secret]"
    assert provider["clusterIdentifier"] == "gke-k8s-cluster"
    assert provider["enableServerSideApply"] == "true"
