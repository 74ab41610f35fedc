"""The GCP platform each committed stack declares, read from its offline plan under mocks.

Every test taking the `plan` fixture runs for both committed stacks (dev and prod). GCP is
faked by tooling/mocks.py; the values checked here are the program's own inputs."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import pytest

from domain.settings import ClusterSettings
from infra.names import TYPE_PREFIX, name_part, stack_account_ids
from tooling.plan import evaluate

P = "gke-voice-agents:"
CLUSTER = "gcp:container/cluster:Cluster"
NETWORK = "gcp:compute/network:Network"
SUBNET = "gcp:compute/subnetwork:Subnetwork"
ROUTER = "gcp:compute/router:Router"
NAT = "gcp:compute/routerNat:RouterNat"
ACCOUNT = "gcp:serviceaccount/account:Account"
PROJECT_MEMBER = "gcp:projects/iAMMember:IAMMember"
REPOSITORY = "gcp:artifactregistry/repository:Repository"
REPOSITORY_MEMBER = "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember"
ROOT = Path(__file__).resolve().parents[2]
# GCP naming rules: service account ids 6-30 chars, cluster names at most 40, repository ids 63.
SA_ID = re.compile(r"^[a-z](?:[-a-z0-9]{4,28}[a-z0-9])$")
CLUSTER_NAME = re.compile(r"^[a-z](?:[-a-z0-9]{0,38}[a-z0-9])$")
REPOSITORY_ID = re.compile(r"^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])$")


def project(plan) -> str:
    return f"gva-fixture-{plan.stack}"


# --------------------------------------------------------------------------------------------
# Structure: tokens, parents, names


def test_every_type_token_starts_with_the_prefix_constant(plan):
    """Component tokens are part of every URN; one drifted token would replace its subtree."""
    ours = {r["type"] for r in plan.resources if not r["type"].startswith(("gcp:", "kubernetes:", "random:", "pulumi:providers:"))}
    assert ours and all(t.startswith(f"{TYPE_PREFIX}:") for t in ours), ours
    assert {t for t in ours if t.startswith(f"{TYPE_PREFIX}:infra:")} == {
        f"{TYPE_PREFIX}:infra:VpcNetwork", f"{TYPE_PREFIX}:infra:AutopilotCluster",
        f"{TYPE_PREFIX}:infra:AgentRegistry", f"{TYPE_PREFIX}:infra:AgentIdentity",
        f"{TYPE_PREFIX}:infra:UpgradeNotifications", f"{TYPE_PREFIX}:infra:AgentDatabase",
        f"{TYPE_PREFIX}:infra:AgentMonitoring", f"{TYPE_PREFIX}:infra:ToolIdentity",
        f"{TYPE_PREFIX}:infra:LiveKitSecrets", f"{TYPE_PREFIX}:infra:CheckpointKey",
        *([f"{TYPE_PREFIX}:infra:SecretsKey", f"{TYPE_PREFIX}:infra:AdmissionPolicy"] if plan.stack == "prod" else [])}


def test_every_resource_but_the_provider_is_parented_to_a_component(plan):
    orphans = [r["name"] for r in plan.resources if r["parent"] is None and not r["type"].startswith((TYPE_PREFIX, "pulumi:providers:"))]
    assert orphans == []
    names = {r["name"] for r in plan.resources}
    assert all(r["parent"] in names for r in plan.resources if r["parent"])


def test_child_names_are_derived_from_the_component(plan):
    for r in plan.resources:
        if r["parent"]:
            assert r["name"].startswith(r["parent"] + "-"), r


def test_platform_children_by_component(plan):
    children = {}
    for r in plan.resources:
        children.setdefault(r["parent"], []).append((r["type"], r["name"]))
    assert sorted(children["network"]) == sorted(
        [(NETWORK, "network-vpc"), (SUBNET, "network-nodes"), (ROUTER, "network-router"), (NAT, "network-nat")])
    assert sorted(children["gke"]) == sorted([
        ("random:index/randomId:RandomId", "gke-suffix"),
        (PROJECT_MEMBER, "gke-nodes-container-defaultnodeserviceaccount"), (CLUSTER, "gke-cluster")])
    assert sorted(children["registry"]) == sorted([(REPOSITORY, "registry-docker"), (REPOSITORY_MEMBER, "registry-node-reader")])
    assert children["agent-identity"] == [(PROJECT_MEMBER, "agent-identity-vertex-user")]


# --------------------------------------------------------------------------------------------
# Network


def test_vpc_is_custom_mode(plan):
    vpc = plan.one(NETWORK)["inputs"]
    assert vpc["autoCreateSubnetworks"] is False
    assert vpc["project"] == project(plan)


def test_subnet_has_private_google_access_and_named_secondary_ranges(plan):
    subnet = plan.one(SUBNET)["inputs"]
    cidrs = {"dev": ("10.110.0.0/20", "10.112.0.0/14", "10.120.0.0/20"), "prod": ("10.10.0.0/20", "10.16.0.0/14", "10.20.0.0/20")}
    node, pods, services = cidrs[plan.stack]
    assert subnet["privateIpGoogleAccess"] is True
    assert subnet["ipCidrRange"] == node
    assert subnet["secondaryIpRanges"] == [{"rangeName": "pods", "ipCidrRange": pods},
                                           {"rangeName": "services", "ipCidrRange": services}]


def test_network_pieces_are_wired_by_reference(plan):
    """Inputs that come from another resource's outputs are present and point at it (an input
    whose Output never resolved would silently vanish from the plan)."""
    network_id = plan.one(SUBNET)["inputs"]["network"]
    assert re.fullmatch(rf"projects/{project(plan)}/global/networks/network-vpc-[0-9a-f]{{7}}", network_id)
    assert plan.one(ROUTER)["inputs"]["network"] == network_id
    assert re.fullmatch(r"network-router-[0-9a-f]{7}", plan.one(NAT)["inputs"]["router"])
    cluster = plan.one(CLUSTER)["inputs"]
    assert cluster["network"] == network_id
    assert re.fullmatch(rf"projects/{project(plan)}/regions/us-central1/subnetworks/network-nodes-[0-9a-f]{{7}}", cluster["subnetwork"])


def test_nat_covers_pods_logs_errors_and_allocates_ports_explicitly(plan):
    nat = plan.one(NAT)["inputs"]
    assert nat["sourceSubnetworkIpRangesToNat"] == "ALL_SUBNETWORKS_ALL_IP_RANGES"
    assert nat["logConfig"] == {"enable": True, "filter": "ERRORS_ONLY"}
    assert nat["enableDynamicPortAllocation"] is False and nat["enableEndpointIndependentMapping"] is False
    assert "maxPortsPerVm" not in nat  # only valid with dynamic allocation
    assert nat["minPortsPerVm"] == 4096
    assert nat["natIpAllocateOption"] == "AUTO_ONLY"


def test_nat_idle_timeouts_come_from_the_stack_config(plan):
    nat = plan.one(NAT)["inputs"]
    assert (nat["tcpEstablishedIdleTimeoutSec"], nat["tcpTransitoryIdleTimeoutSec"], nat["udpIdleTimeoutSec"]) == (3600, 30, 60)
    # Above Cloud NAT's 1200 s default: a quiet but open WebSocket to LiveKit is not cut.
    assert nat["tcpEstablishedIdleTimeoutSec"] > 1200


def test_nat_settings_follow_overrides():
    nat = evaluate("dev", {P + "natMinPortsPerVm": "8192", P + "natTcpEstablishedIdleTimeoutSec": "7200",
                           P + "natUdpIdleTimeoutSec": "120"}).one(NAT)["inputs"]
    assert (nat["minPortsPerVm"], nat["tcpEstablishedIdleTimeoutSec"], nat["udpIdleTimeoutSec"]) == (8192, 7200, 120)


# --------------------------------------------------------------------------------------------
# Cluster


def test_cluster_is_private_regional_autopilot_without_node_config(plan):
    cluster = plan.one(CLUSTER)["inputs"]
    assert cluster["enableAutopilot"] is True
    assert cluster["location"] == "us-central1"
    assert cluster["privateClusterConfig"] == {"enablePrivateNodes": True}
    assert "nodeConfig" not in cluster and "nodePools" not in cluster
    # Autopilot runs vertical pod autoscaling itself; setting it is not our business.
    assert "verticalPodAutoscaling" not in cluster
    assert cluster["ipAllocationPolicy"] == {"clusterSecondaryRangeName": "pods", "servicesSecondaryRangeName": "services"}


def test_cluster_add_ons(plan):
    cluster = plan.one(CLUSTER)["inputs"]
    # SYSTEM_COMPONENTS always sent: an empty list means "disable all" (TGKE #1786).
    assert cluster["monitoringConfig"] == {"enableComponents": ["SYSTEM_COMPONENTS", "HPA", "DEPLOYMENT", "POD"],
                                           "managedPrometheus": {"enabled": True}}
    assert cluster["secretManagerConfig"] == {"enabled": True}
    # Configuration auditing on; GKE's standard vulnerability scanning tier no longer exists.
    assert cluster["securityPostureConfig"] == {"mode": "BASIC", "vulnerabilityMode": "VULNERABILITY_DISABLED"}
    assert cluster["workloadIdentityConfig"] == {"workloadPool": f"{project(plan)}.svc.id.goog"}


def test_control_plane_is_reached_by_dns_and_the_ip_endpoint_is_closed(plan):
    cluster = plan.one(CLUSTER)["inputs"]
    assert cluster["controlPlaneEndpointsConfig"] == {
        "dnsEndpointConfig": {"allowExternalTraffic": True}, "ipEndpointsConfig": {"enabled": False}}
    assert "masterAuthorizedNetworksConfig" not in cluster


def test_authorized_networks_open_the_ip_endpoint_only_to_them():
    networks = json.dumps({"office": "203.0.113.0/24", "ci-runner": "198.51.100.7/32"})
    cluster = evaluate("prod", {P + "controlPlaneAuthorizedNetworks": networks}).one(CLUSTER)["inputs"]
    assert cluster["controlPlaneEndpointsConfig"]["ipEndpointsConfig"] == {"enabled": True}
    assert cluster["controlPlaneEndpointsConfig"]["dnsEndpointConfig"] == {"allowExternalTraffic": True}
    assert cluster["masterAuthorizedNetworksConfig"] == {
        "gcpPublicCidrsAccessEnabled": False,
        "cidrBlocks": [{"displayName": "ci-runner", "cidrBlock": "198.51.100.7/32"},
                       {"displayName": "office", "cidrBlock": "203.0.113.0/24"}]}


@pytest.mark.parametrize("cidr", ["0.0.0.0/0", "::/0"])
def test_the_component_refuses_an_open_range_even_without_the_config_parser(cidr):
    """Settings built in code skip the parser; the component still never opens the endpoint."""
    from infra.cluster import _control_plane_access

    settings = ClusterSettings("REGULAR", True, "", "", "", {}, {"anywhere": cidr}, workload_state_metrics=True,
                               upgrade_notifications=True, secrets_encryption=False, binary_authorization=False,
                               binary_authorization_attestor="", cost_allocation=True)
    with pytest.raises(ValueError, match=rf"authorized network anywhere = {re.escape(cidr)} opens the control plane"):
        _control_plane_access(settings.authorized_networks)


@pytest.mark.parametrize("stack, channel, protected", [("dev", "RAPID", False), ("prod", "REGULAR", True)])
def test_release_channel_and_deletion_protection_per_stack(stack, channel, protected):
    from tests.conftest import _fixture_plan

    cluster = _fixture_plan(stack).one(CLUSTER)["inputs"]
    assert cluster["releaseChannel"] == {"channel": channel}
    assert cluster["deletionProtection"] is protected


def test_maintenance_window_and_named_exclusions(plan):
    policy = plan.one(CLUSTER)["inputs"]["maintenancePolicy"]
    assert policy["recurringWindow"] == {
        "startTime": "2026-01-03T02:00:00Z", "endTime": "2026-01-03T08:00:00Z", "recurrence": "FREQ=WEEKLY;BYDAY=SA,SU"}
    expected = {"dev": [], "prod": [{
        "exclusionName": "year-end-peak", "startTime": "2026-12-15T00:00:00Z", "endTime": "2027-01-05T00:00:00Z",
        "exclusionOptions": {"scope": "NO_MINOR_OR_NODE_UPGRADES"}}]}
    assert policy["maintenanceExclusions"] == expected[plan.stack]


def test_exclusions_are_keyed_by_name_whatever_the_order_written():
    exclusions = {"launch": {"start": "2026-03-01T00:00:00Z", "end": "2026-03-08T00:00:00Z", "scope": "NO_MINOR_UPGRADES"},
                  "black-friday": {"start": "2026-11-27T00:00:00Z", "end": "2026-11-27T12:00:00Z"}}
    # A daily window keeps GKE's 48 h in 32 days with a short NO_UPGRADES exclusion in it.
    policy = evaluate("dev", {P + "maintenanceExclusions": json.dumps(exclusions),
                              P + "maintenanceRecurrence": "FREQ=DAILY"}).one(CLUSTER)["inputs"]["maintenancePolicy"]
    assert [(e["exclusionName"], e["exclusionOptions"]["scope"]) for e in policy["maintenanceExclusions"]] == [
        ("black-friday", "NO_UPGRADES"), ("launch", "NO_MINOR_UPGRADES")]


def test_nodes_run_as_a_dedicated_least_privilege_account(plan):
    # The bootstrap creates it (infra/accounts.py); the stack names it and grants its one role.
    email = f"gva-{plan.stack}-nodes@{project(plan)}.iam.gserviceaccount.com"
    defaults = plan.one(CLUSTER)["inputs"]["clusterAutoscaling"]["autoProvisioningDefaults"]
    assert defaults == {"serviceAccount": email, "oauthScopes": ["https://www.googleapis.com/auth/cloud-platform"]}
    assert not email.endswith("-compute@developer.gserviceaccount.com")
    grants = [r["inputs"] for r in plan.of_type(PROJECT_MEMBER) if r["inputs"]["member"] == f"serviceAccount:{email}"]
    assert grants == [{"member": f"serviceAccount:{email}", "project": project(plan), "role": "roles/container.defaultNodeServiceAccount"}]


def test_names_carry_the_stack_and_a_random_suffix(plan):
    suffix = plan.named("gke-suffix")["inputs"]
    assert suffix["byteLength"] == 2
    assert plan.one(CLUSTER)["inputs"]["name"] == f"voice-agents-{plan.stack}-a1b2"
    # The accounts carry no suffix: the bootstrap creates them before the stack exists.
    assert plan.outputs["nodeServiceAccount"] == f"gva-{plan.stack}-nodes@{project(plan)}.iam.gserviceaccount.com"


def test_any_stack_name_yields_valid_gcp_names(tmp_path: Path):
    """Pulumi allows stack names GCP ids do not (upper case, `_`, `.`, 100 characters)."""
    stack = "Customer_Facing.Production-Europe-West-Very-Long"
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copy(ROOT / "tests/fixtures/stacks/Pulumi.prod.yaml", tmp_path / f"Pulumi.{stack}.yaml")
    result = evaluate(stack, root=tmp_path, stack_dir=tmp_path)
    for account_id in stack_account_ids(stack).values():
        assert SA_ID.match(account_id), account_id
    assert CLUSTER_NAME.match(result.one(CLUSTER)["inputs"]["name"]), result.one(CLUSTER)["inputs"]["name"]
    assert REPOSITORY_ID.match(result.one(REPOSITORY)["inputs"]["repositoryId"])
    assert stack_account_ids(stack) == {"nodes": "gva-customer-facing-nodes", "database": "gva-customer-facing-pr-db",
                                        "places": "gva-customer-facing-places"}
    assert result.outputs["nodeServiceAccount"].startswith("gva-customer-facing-nodes@")


@pytest.mark.parametrize("text, limit, expected", [
    ("dev", 15, "dev"), ("Prod_EU.1", 15, "prod-eu-1"), ("a" * 40, 15, "a" * 15), ("abc-----def", 4, "abc"), ("___", 5, "stack")])
def test_name_part(text, limit, expected):
    assert name_part(text, limit) == expected


# --------------------------------------------------------------------------------------------
# Registry and identity


def test_registry_is_docker_immutable_cleaned_and_scanned(plan):
    repo = plan.one(REPOSITORY)["inputs"]
    assert (repo["format"], repo["location"], repo["repositoryId"]) == ("DOCKER", "us-central1", f"voice-agents-{plan.stack}")
    assert repo["dockerConfig"] == {"immutableTags": True}
    assert repo["cleanupPolicyDryRun"] is False
    assert repo["cleanupPolicies"] == [
        {"id": "keep-recent", "action": "KEEP", "mostRecentVersions": {"keepCount": 20}},
        {"id": "delete-untagged", "action": "DELETE", "condition": {"tagState": "UNTAGGED", "olderThan": f"{14 * 86400}s"}},
        {"id": "delete-old", "action": "DELETE", "condition": {"tagState": "ANY", "olderThan": f"{90 * 86400}s"}}]
    assert repo["vulnerabilityScanningConfig"] == {"enablementConfig": "INHERITED"}


def test_cleanup_policies_follow_the_config():
    repo = evaluate("dev", {P + "registryKeepRecent": "5", P + "registryUntaggedRetentionDays": "3"}).one(REPOSITORY)["inputs"]
    by_id = {p["id"]: p for p in repo["cleanupPolicies"]}
    assert by_id["keep-recent"]["mostRecentVersions"] == {"keepCount": 5}
    assert by_id["delete-untagged"]["condition"]["olderThan"] == "259200s"


def test_only_the_node_account_reads_the_registry_and_only_this_repository(plan):
    repo = plan.one(REPOSITORY)["inputs"]
    reader = plan.one(REPOSITORY_MEMBER)["inputs"]
    assert reader == {"project": project(plan), "location": "us-central1", "repository": repo["repositoryId"],
                      "role": "roles/artifactregistry.reader",
                      "member": f"serviceAccount:gva-{plan.stack}-nodes@{project(plan)}.iam.gserviceaccount.com"}
    assert not [r for r in plan.of_type(PROJECT_MEMBER) if r["inputs"]["role"].startswith("roles/artifactregistry.")]


def test_vertex_access_is_bound_to_the_agents_kubernetes_identity(plan):
    grants = [r["inputs"] for r in plan.of_type(PROJECT_MEMBER) if r["inputs"]["role"] == "roles/aiplatform.user"]
    assert grants == [{
        "project": project(plan), "role": "roles/aiplatform.user",
        "member": (f"principal://iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/"
                   f"{project(plan)}.svc.id.goog/subject/ns/voice-agents/sa/voice-agent")}]
    assert set(plan.invokes) == {"gcp:organizations/getProject:getProject", "gcp:serviceaccount/getAccount:getAccount"}


def test_the_principal_follows_the_namespace_setting():
    grant = evaluate("dev", {P + "agentNamespace": "calls"}).named("agent-identity-vertex-user")["inputs"]
    assert grant["member"].endswith("/subject/ns/calls/sa/voice-agent")


def test_no_keys_and_no_google_service_account_for_the_agent(plan):
    assert plan.of_type("gcp:serviceaccount/key:Key") == []
    # The other accounts are the checkpoint database's IAM user (infra/database.py) and the one
    # the Places tool server acts as (infra/tool_identity.py: Places takes no federated token).
    # The agent's own principal may impersonate the first only; the tool server's Kubernetes
    # service account is linked to the second only.
    # All three are the bootstrap's (infra/accounts.py): the stack declares no account at all.
    assert plan.of_type(ACCOUNT) == []
    grants = {r["parent"]: r["inputs"] for r in plan.of_type("gcp:serviceaccount/iAMMember:IAMMember")}
    assert set(grants) == {"checkpoints", "places-identity"}
    assert grants["checkpoints"]["role"] == "roles/iam.serviceAccountTokenCreator"
    assert grants["checkpoints"]["member"] == plan.outputs["agentPrincipal"]
    assert grants["places-identity"]["role"] == "roles/iam.workloadIdentityUser"
    assert grants["places-identity"]["member"].endswith("[voice-agents/places-mcp]")


# --------------------------------------------------------------------------------------------
# Stack outputs


def test_stack_outputs_a_user_needs_next(plan):
    out = plan.outputs
    assert {"clusterName", "clusterLocation", "clusterDnsEndpoint", "registryUrl", "kubeconfig", "agentPrincipal",
            "nodeServiceAccount"} <= set(out)
    assert out["clusterName"] == f"voice-agents-{plan.stack}-a1b2"
    assert out["clusterLocation"] == "us-central1"
    assert out["registryUrl"] == f"us-central1-docker.pkg.dev/{project(plan)}/voice-agents-{plan.stack}"
    assert re.fullmatch(r"gke-[0-9a-f]+-123456789012\.us-central1\.gke\.goog", out["clusterDnsEndpoint"])
    assert out["nodeServiceAccount"] == f"gva-{plan.stack}-nodes@{project(plan)}.iam.gserviceaccount.com"
    assert out["agentPrincipal"].endswith("/subject/ns/voice-agents/sa/voice-agent")
    kubeconfig = json.loads(out["kubeconfig"])
    assert kubeconfig["clusters"][0]["cluster"]["server"] == f"https://{out['clusterDnsEndpoint']}"
    assert kubeconfig["users"][0]["user"]["exec"]["command"] == "gke-gcloud-auth-plugin"


def test_kubeconfig_is_a_secret_everywhere_it_is_recorded(plan):
    provider = plan.one("pulumi:providers:kubernetes")["inputs"]
    assert provider["kubeconfig"] == "[secret]"
    assert "gke-gcloud-auth-plugin" not in json.dumps(plan.resources)


def test_settings_dataclasses_are_frozen():
    """Component arguments cannot change after a component read them."""
    from infra.cluster import AutopilotClusterArgs
    from infra.identity import AgentIdentityArgs
    from infra.network import VpcNetworkArgs
    from infra.registry import AgentRegistryArgs

    for cls in (VpcNetworkArgs, AutopilotClusterArgs, AgentRegistryArgs, AgentIdentityArgs):
        assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen, cls
