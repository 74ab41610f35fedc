"""The cluster, network and registry rules on every branch, with fields unset where GKE or the
provider supply a default. Each case starts from the committed prod plan and changes one thing;
every passing case has a failing twin one step away."""

from __future__ import annotations

import copy
import functools

import pytest

from policy.engine import evaluate_plan
from tooling.plan import evaluate
from tests.conftest import _fixture_plan

CLUSTER = "gcp:container/cluster:Cluster"
NAT = "gcp:compute/routerNat:RouterNat"
SUBNET = "gcp:compute/subnetwork:Subnetwork"
REPOSITORY = "gcp:artifactregistry/repository:Repository"
POLICY = "gcp:binaryauthorization/policy:Policy"


def _prod() -> list[dict]:
    return _fixture_plan("prod").resources


@functools.lru_cache(maxsize=None)
def _prod_admitting_its_registry_plan():
    """Prod without the CI attestor: Binary Authorization admits the registry by pattern (the
    allowlist this rule judges); with the attestor every image needs the attestation instead."""
    return evaluate("prod", {"gke-voice-agents:binaryAuthorizationAttestor": ""})


def _prod_admitting_its_registry() -> list[dict]:
    return copy.deepcopy(_prod_admitting_its_registry_plan().resources)


def _first(resources: list[dict], typ: str) -> dict:
    return next(r for r in resources if r["type"] == typ)["inputs"]


def _messages(resources: list[dict], rule: str, config: dict | None = None) -> list[str]:
    return [v["message"] for v in evaluate_plan(resources, "prod", config) if v["rule"] == rule]


# --------------------------------------------------------------------------------------------
# gke-no-open-control-plane. GKE keeps the control plane's IP endpoint on unless
# controlPlaneEndpointsConfig.ipEndpointsConfig.enabled is false (GKE "Control plane access":
# "the IP-based endpoint is enabled by default"); prod turns it off.


@pytest.mark.parametrize(("endpoints", "networks", "flagged"), [
    ({"ipEndpointsConfig": {"enabled": False}}, None, False),
    ({"ipEndpointsConfig": {"enabled": True}}, None, True),
    ({"ipEndpointsConfig": {}}, None, True),          # enabled unset: on
    ({}, None, True),                                 # no ipEndpointsConfig: on
    (None, None, True),                               # no controlPlaneEndpointsConfig at all: on
    (None, {"cidrBlocks": [{"cidrBlock": "203.0.113.0/24", "displayName": "office"}]}, False),
    (None, {"cidrBlocks": []}, True),
])
def test_the_ip_endpoint_is_on_unless_turned_off(endpoints, networks, flagged):
    resources = _prod()
    cluster = _first(resources, CLUSTER)
    cluster.pop("controlPlaneEndpointsConfig", None)
    cluster.pop("masterAuthorizedNetworksConfig", None)
    if endpoints is not None:
        cluster["controlPlaneEndpointsConfig"] = endpoints
    if networks is not None:
        cluster["masterAuthorizedNetworksConfig"] = networks
    found = _messages(resources, "gke-no-open-control-plane")
    assert found == (["the control plane's IP endpoint is on with no authorized networks: any address may try it; "
                      "disable ipEndpointsConfig or name narrow ranges (CI uses the DNS endpoint)"] if flagged else [])


@pytest.mark.parametrize(("cidr", "flagged"), [("0.0.0.0/0", True), ("::/0", True), ("0.0.0.0/1", False),
                                               ("203.0.113.0/24", False)])
def test_an_authorized_network_open_to_the_internet(cidr, flagged):
    resources = _prod()
    _first(resources, CLUSTER)["masterAuthorizedNetworksConfig"] = {"cidrBlocks": [{"cidrBlock": cidr, "displayName": "n"}]}
    found = _messages(resources, "gke-no-open-control-plane")
    assert found == ([f"authorized network n = {cidr} opens the control plane to the internet"] if flagged else [])


def test_google_cloud_ranges_flag_only_when_true():
    resources = _prod()
    cluster = _first(resources, CLUSTER)
    cluster["controlPlaneEndpointsConfig"]["ipEndpointsConfig"]["enabled"] = True
    cluster["masterAuthorizedNetworksConfig"] = {"cidrBlocks": [{"cidrBlock": "203.0.113.0/24"}],
                                                 "gcpPublicCidrsAccessEnabled": False}
    assert _messages(resources, "gke-no-open-control-plane") == []
    cluster["masterAuthorizedNetworksConfig"]["gcpPublicCidrsAccessEnabled"] = True
    assert len(_messages(resources, "gke-no-open-control-plane")) == 1


# --------------------------------------------------------------------------------------------
# The other cluster rules, each through its branches.


@pytest.mark.parametrize(("value", "flagged"), [(True, False), (False, True), (None, True)])
def test_private_nodes_only_when_explicitly_true(value, flagged):
    resources = _prod()
    _first(resources, CLUSTER)["privateClusterConfig"] = {} if value is None else {"enablePrivateNodes": value}
    assert bool(_messages(resources, "gke-private-nodes")) is flagged


@pytest.mark.parametrize(("channel", "flagged"), [("REGULAR", False), ("STABLE", False), ("RAPID", False),
                                                  ("UNSPECIFIED", True), ("", True), (None, True)])
def test_release_channel(channel, flagged):
    resources = _prod()
    _first(resources, CLUSTER)["releaseChannel"] = {} if channel is None else {"channel": channel}
    assert bool(_messages(resources, "gke-release-channel")) is flagged


@pytest.mark.parametrize(("autoprovisioning", "node_config", "flagged"), [
    ("nodes@p.iam.gserviceaccount.com", None, False),
    ("default", None, True),
    ("123-compute@developer.gserviceaccount.com", None, True),
    (None, None, True),                                               # unset: the default compute account
    (None, "nodes@p.iam.gserviceaccount.com", False),                 # the node config's account is read too
    (None, "123-compute@developer.gserviceaccount.com", True),
])
def test_node_service_account(autoprovisioning, node_config, flagged):
    resources = _prod()
    cluster = _first(resources, CLUSTER)
    cluster["clusterAutoscaling"]["autoProvisioningDefaults"].pop("serviceAccount")
    if autoprovisioning:
        cluster["clusterAutoscaling"]["autoProvisioningDefaults"]["serviceAccount"] = autoprovisioning
    if node_config:
        cluster["nodeConfig"] = {"serviceAccount": node_config}
    assert bool(_messages(resources, "gke-no-default-compute-sa")) is flagged


@pytest.mark.parametrize(("autopilot", "node_config", "says"), [
    (True, None, None), (True, {}, None),
    (True, {"machineType": "e2-medium"}, "nodeConfig is set on an Autopilot cluster"),
    (False, None, "enableAutopilot is not true"), (None, None, "enableAutopilot is not true"),
])
def test_autopilot_without_node_config(autopilot, node_config, says):
    resources = _prod()
    cluster = _first(resources, CLUSTER)
    cluster.pop("enableAutopilot")
    if autopilot is not None:
        cluster["enableAutopilot"] = autopilot
    if node_config is not None:
        cluster["nodeConfig"] = node_config
    found = _messages(resources, "gke-autopilot-no-node-config")
    assert (found == []) if says is None else (len(found) == 1 and found[0].startswith(says))


@pytest.mark.parametrize(("value", "flagged"), [("FALSE", False), ("TRUE", True), (None, True)])
def test_kubelet_read_only_port(value, flagged):
    """Unset is GKE's default, which leaves the port on for clusters created before 1.32."""
    resources = _prod()
    config = _first(resources, CLUSTER)["nodePoolAutoConfig"]["nodeKubeletConfig"]
    config.pop("insecureKubeletReadonlyPortEnabled")
    if value is not None:
        config["insecureKubeletReadonlyPortEnabled"] = value
    found = _messages(resources, "gke-kubelet-readonly-port-off")
    assert bool(found) is flagged
    if value is None:
        assert "is left to the GKE default" in found[0]


@pytest.mark.parametrize(("components", "flagged"), [
    (["SYSTEM_COMPONENTS"], False), (["HPA", "DEPLOYMENT"], True), ([], True), (None, True)])
def test_system_metrics(components, flagged):
    resources = _prod()
    monitoring = _first(resources, CLUSTER)["monitoringConfig"]
    monitoring.pop("enableComponents")
    if components is not None:
        monitoring["enableComponents"] = components
    assert bool(_messages(resources, "gke-system-metrics")) is flagged


@pytest.mark.parametrize(("encryption", "flagged"), [
    ({"state": "ENCRYPTED", "keyName": "projects/p/locations/l/keyRings/r/cryptoKeys/k"}, False),
    ({"state": "ENCRYPTED", "keyName": ""}, True), ({"state": "ENCRYPTED"}, True),
    ({"state": "DECRYPTED", "keyName": "projects/p/locations/l/keyRings/r/cryptoKeys/k"}, True),
])
def test_secrets_encryption_needs_state_and_key(encryption, flagged):
    resources = _prod()
    _first(resources, CLUSTER)["databaseEncryption"] = encryption
    assert bool(_messages(resources, "gke-secrets-encryption")) is flagged
    assert _messages(resources, "gke-secrets-encryption", {"gke-secrets-encryption": {"protected": False}}) == []


@pytest.mark.parametrize(("mode", "flagged"), [("PROJECT_SINGLETON_POLICY_ENFORCE", False), ("DISABLED", True),
                                               ("POLICY_BINDINGS", True)])
def test_binary_authorization_mode(mode, flagged):
    resources = _prod()
    _first(resources, CLUSTER)["binaryAuthorization"] = {"evaluationMode": mode}
    assert bool(_messages(resources, "gke-binary-authorization")) is flagged
    assert _messages(resources, "gke-binary-authorization", {"gke-binary-authorization": {"protected": False}}) == []


@pytest.mark.parametrize(("value", "flagged"), [(True, False), (False, True), (None, True)])
def test_deletion_protection(value, flagged):
    resources = _prod()
    cluster = _first(resources, CLUSTER)
    cluster.pop("deletionProtection", None)
    if value is not None:
        cluster["deletionProtection"] = value
    assert bool(_messages(resources, "gke-deletion-protection")) is flagged
    assert _messages(resources, "gke-deletion-protection", {"gke-deletion-protection": {"protected": False}}) == []


# --------------------------------------------------------------------------------------------
# Network.


@pytest.mark.parametrize(("log", "flagged"), [
    ({"enable": True, "filter": "ERRORS_ONLY"}, False), ({"enable": True, "filter": "ALL"}, False),
    ({"enable": True, "filter": "TRANSLATIONS_ONLY"}, True), ({"enable": False, "filter": "ALL"}, True),
    ({"filter": "ALL"}, True), (None, True),
])
def test_nat_logs_errors(log, flagged):
    resources = _prod()
    nat = _first(resources, NAT)
    nat.pop("logConfig")
    if log is not None:
        nat["logConfig"] = log
    assert bool(_messages(resources, "nat-error-logging")) is flagged


@pytest.mark.parametrize(("scope", "flagged"), [("ALL_SUBNETWORKS_ALL_IP_RANGES", False),
                                                ("ALL_SUBNETWORKS_ALL_PRIMARY_IP_RANGES", True),
                                                ("LIST_OF_SUBNETWORKS", True), (None, True)])
def test_nat_covers_every_range(scope, flagged):
    resources = _prod()
    _first(resources, NAT)["sourceSubnetworkIpRangesToNat"] = scope
    assert bool(_messages(resources, "nat-all-subnet-ranges")) is flagged


@pytest.mark.parametrize(("value", "flagged"), [(True, False), (False, True), (None, True)])
def test_private_google_access(value, flagged):
    resources = _prod()
    _first(resources, SUBNET)["privateIpGoogleAccess"] = value
    assert bool(_messages(resources, "subnet-private-google-access")) is flagged


@pytest.mark.parametrize(("interfaces", "flagged"), [
    ([{"network": "n"}], []), ([{"network": "n", "accessConfigs": []}], []),
    ([{"network": "n", "accessConfigs": [{}]}], [0]), ([{"network": "n"}, {"accessConfigs": [{}]}], [1]),
])
def test_no_external_ip_on_instances_and_templates(interfaces, flagged):
    for typ in ("gcp:compute/instance:Instance", "gcp:compute/instanceTemplate:InstanceTemplate"):
        resources = _prod() + [{"type": typ, "name": "vm", "parent": None, "inputs": {"networkInterfaces": interfaces}}]
        found = _messages(resources, "no-node-external-ip")
        assert [int(m.split()[2]) for m in found] == flagged


# --------------------------------------------------------------------------------------------
# Registry.


@pytest.mark.parametrize(("repo", "flagged"), [
    ({"format": "DOCKER", "dockerConfig": {"immutableTags": True}}, False),
    ({"format": "DOCKER", "dockerConfig": {"immutableTags": False}}, True),
    ({"format": "DOCKER", "dockerConfig": {}}, True),          # the provider's default: mutable
    ({"format": "DOCKER"}, True),
    ({"format": "PYTHON"}, False),                             # tags are a Docker notion
])
def test_immutable_tags(repo, flagged):
    resources = _prod()
    inputs = _first(resources, REPOSITORY)
    inputs.pop("dockerConfig")
    inputs.update(repo)
    assert bool(_messages(resources, "registry-immutable-tags")) is flagged


def _delete(tag_state: str | None) -> dict:
    condition = {"olderThan": "1s"} if tag_state is None else {"olderThan": "1s", "tagState": tag_state}
    return {"id": f"d-{tag_state}", "action": "DELETE", "condition": condition}


@pytest.mark.parametrize(("policies", "dry_run", "says"), [
    ([_delete("ANY")], False, []),
    ([_delete("TAGGED")], False, []),
    ([_delete(None)], False, []),                              # tagState unset: ANY
    ([_delete("UNTAGGED")], False, ["no DELETE policy matches tagged versions"]),
    ([{"id": "k", "action": "KEEP", "condition": {"tagState": "ANY"}}], False, ["no DELETE policy matches tagged versions"]),
    ([_delete("ANY")], True, ["cleanup policies are in dry-run mode and delete nothing"]),
    ([_delete("ANY")] * 10, False, []),                        # Artifact Registry's limit is 10
    ([_delete("ANY")] * 11, False, ["11 cleanup policies; Artifact Registry allows at most 10"]),
    ([], False, ["no cleanup policies"]),
])
def test_cleanup_policies(policies, dry_run, says):
    resources = _prod()
    _first(resources, REPOSITORY).update(cleanupPolicies=policies, cleanupPolicyDryRun=dry_run)
    found = _messages(resources, "registry-cleanup-policies")
    assert [m.split(":")[0] for m in found] == [s.split(":")[0] for s in says]


def _repository_path(resources) -> str:
    repo = _first(resources, REPOSITORY)
    return f"{repo['location']}-docker.pkg.dev/{repo['project']}/{repo['repositoryId']}/"


@pytest.mark.parametrize(("pattern", "outside"), [
    ("{repo}**", False), ("{repo}agent*", False),
    ("docker.io/**", True), ("docker.io/library/nginx:1", True),
    ("gcr.io/cloud-sql-connectors/cloud-sql-proxy:9.9.9", True),   # exact, but no workload runs it
])
def test_binauthz_allowlist_patterns(pattern, outside):
    resources = _prod()
    policy = _first(resources, POLICY)
    policy["admissionWhitelistPatterns"].append({"namePattern": pattern.format(repo=_repository_path(resources))})
    assert bool(_messages(resources, "binauthz-only-stack-registry")) is outside


@pytest.mark.parametrize(("rule", "flagged"), [
    ({"evaluationMode": "ALWAYS_DENY", "enforcementMode": "ENFORCED_BLOCK_AND_AUDIT_LOG"}, False),
    ({"evaluationMode": "ALWAYS_DENY", "enforcementMode": "DRYRUN_AUDIT_LOG_ONLY"}, True),
    ({"evaluationMode": "ALWAYS_ALLOW", "enforcementMode": "ENFORCED_BLOCK_AND_AUDIT_LOG"}, True),
    ({}, True),
])
def test_binauthz_default_rule(rule, flagged):
    resources = _prod()
    _first(resources, POLICY)["defaultAdmissionRule"] = rule
    assert bool(_messages(resources, "binauthz-only-stack-registry")) is flagged


@pytest.mark.parametrize(("patterns", "refused"), [
    (lambda repo: [f"{repo}**"], False),
    (lambda repo: [f"{repo}*"], False),                  # one segment: the images sit right below the repo
    (lambda repo: [f"{repo}voice-*"], False),            # a prefix of the image's own segment
    (lambda repo: [f"{repo}other-*"], True),             # the segment does not start so
    (lambda repo: [f"{repo[:-1]}*"], True),              # `*` never crosses the `/` below the repository
    (lambda repo: [f"{repo}voice-agent:0.1.0"], False),
    (lambda repo: [f"{repo}voice-agent:0.1.1"], True),
    (lambda repo: [f"{repo}sub/**"], True),
    (lambda repo: [], True),
])
def test_binauthz_admits_the_agent_image(patterns, refused):
    resources = _prod_admitting_its_registry()
    repo = _repository_path(resources)
    policy = _first(resources, POLICY)
    others = [p for p in policy["admissionWhitelistPatterns"] if not p["namePattern"].startswith(repo)]
    policy["admissionWhitelistPatterns"] = others + [{"namePattern": p} for p in patterns(repo)]
    found = _messages(resources, "binauthz-admits-the-workloads")
    assert any(f"image {repo}voice-agent:0.1.0 is not admitted" in m for m in found) is refused


@pytest.mark.parametrize(("role", "flagged"), [("roles/artifactregistry.reader", False),
                                               ("roles/artifactregistry.repoAdmin", False),
                                               ("roles/artifactregistry.createOnPushWriter", True),
                                               ("roles/viewer", True)])
def test_node_reader_role(role, flagged):
    resources = _prod()
    member = next(r for r in resources if r["type"] == "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember")
    member["inputs"]["role"] = role
    assert bool(_messages(resources, "registry-node-reader")) is flagged
