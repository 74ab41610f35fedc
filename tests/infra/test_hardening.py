"""Issue 15: what a real first `pulumi up` would hit, and what the best GKE modules add.

Each defect test names its item and failed on the code before the fix. Dependencies come from
the offline plan's `dependsOn` (tooling/mocks.py records the engine request's dependency URNs:
explicit depends_on, a component expanded to its children, and every resource whose Output
feeds an input), which is what the engine orders creation by."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from domain.config import parse_stack_config
from domain.maintenance import least_availability, window_days
from tooling.plan import evaluate
from domain.settings import ConfigError
from domain.stackfiles import load_stack_values
from k8s import metrics_adapter

P = "gke-voice-agents:"
CLUSTER = "gcp:container/cluster:Cluster"
SECRETS = {P + "livekitApiKey": "key", P + "livekitApiSecret": "secret"}


# --- item 1: the Vertex AI grant names a pool that exists only once the cluster does -----------


def test_item1_the_vertex_grant_waits_for_the_cluster(plan):
    grant = plan.named("agent-identity-vertex-user")
    assert "gke-cluster" in grant["dependsOn"], grant["dependsOn"]
    pool = plan.one(CLUSTER)["inputs"]["workloadIdentityConfig"]["workloadPool"]
    assert f"/workloadIdentityPools/{pool}/subject/" in grant["inputs"]["member"]


def test_item1_the_places_link_waits_for_the_cluster_too(plan):
    """The same defect in the tool server's identity: its grant named `<project>.svc.id.goog`
    without waiting for the cluster that creates it (found while adding the LiveKit secrets).
    Now the pool is named by the link to the account the tool server acts as."""
    grant = plan.named("places-identity-link")
    assert "gke-cluster" in grant["dependsOn"], grant["dependsOn"]
    pool = plan.one(CLUSTER)["inputs"]["workloadIdentityConfig"]["workloadPool"]
    assert grant["inputs"]["member"] == f"serviceAccount:{pool}[voice-agents/places-mcp]"


# --- item 2: enable_components never empty ------------------------------------------------------


def test_item2_system_components_are_sent_even_with_workload_metrics_off():
    monitoring = evaluate("dev", {P + "workloadStateMetrics": "false"}).one(CLUSTER)["inputs"]["monitoringConfig"]
    assert monitoring == {"enableComponents": ["SYSTEM_COMPONENTS"], "managedPrometheus": {"enabled": True}}


# --- item 4: tagged versions are deleted too ----------------------------------------------------


def test_item4_tagged_versions_past_retention_are_deleted(plan):
    policies = {p["id"]: p for p in plan.one("gcp:artifactregistry/repository:Repository")["inputs"]["cleanupPolicies"]}
    assert policies["delete-old"] == {"id": "delete-old", "action": "DELETE",
                                      "condition": {"tagState": "ANY", "olderThan": f"{90 * 86400}s"}}
    # KEEP still wins for the newest versions (Artifact Registry: KEEP beats DELETE).
    assert policies["keep-recent"]["action"] == "KEEP"


@pytest.mark.parametrize("days, ok", [("6", False), ("7", True), ("8", True), ("3650", True), ("3651", False)])
def test_item4_retention_bounds(days, ok):
    raw = {**load_stack_values("dev").config, **SECRETS, P + "registryRetentionDays": days}
    if ok:
        assert parse_stack_config("dev", raw, tuple(SECRETS)).registry.retention_days == int(days)
    else:
        with pytest.raises(ConfigError, match=rf"registryRetentionDays = {days}: must be from 7 to 3650 days"):
            parse_stack_config("dev", raw, tuple(SECRETS))


# --- item 5: a replacement cluster is a new cluster, and the provider follows it ----------------


def test_item5_the_name_suffix_is_redrawn_when_a_replacement_forcing_input_changes(plan):
    keepers = plan.named("gke-suffix")["inputs"]["keepers"]
    cluster = plan.one(CLUSTER)["inputs"]
    assert keepers == {
        "project": cluster["project"], "location": cluster["location"], "network": cluster["network"],
        "subnetwork": cluster["subnetwork"], "podRange": cluster["ipAllocationPolicy"]["clusterSecondaryRangeName"],
        "serviceRange": cluster["ipAllocationPolicy"]["servicesSecondaryRangeName"]}
    # The name is the suffix's: a new suffix is a new name, so Pulumi creates before it deletes.
    assert cluster["name"].endswith("-a1b2")


def test_item5_the_kubernetes_provider_is_replaced_with_the_cluster(plan):
    provider = plan.one("pulumi:providers:kubernetes")
    assert provider["inputs"]["clusterIdentifier"] == plan.one(CLUSTER)["inputs"]["name"]
    assert "gke-cluster" in provider["dependsOn"]


# --- item 7: PodMonitoring after its CRD had time to appear -------------------------------------


def test_item7_podmonitoring_is_created_after_the_deployment(plan):
    monitoring = plan.named("agent-podmonitoring")
    assert "agent-deployment" in monitoring["dependsOn"]
    # The Deployment itself can only be created once the cluster is (through the provider).
    assert "gke-cluster" in plan.one("pulumi:providers:kubernetes")["dependsOn"]


# --- item 8: GKE's 48 h of maintenance availability in every 32 days ---------------------------


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _parse(overrides: dict[str, str]):
    raw = {**load_stack_values("dev").config, **SECRETS, **{P + k: v for k, v in overrides.items()}}
    return parse_stack_config("dev", raw, tuple(SECRETS))


@pytest.mark.parametrize("end, ok", [
    ("2026-01-03T08:00:00Z", True),    # 6 h on 8 weekend days of any 32: exactly 48 h
    ("2026-01-03T07:59:00Z", False),   # a minute shorter: 47.9 h
    ("2026-01-03T08:01:00Z", True),
])
def test_item8_the_window_alone_at_the_48_hour_boundary(end, ok):
    overrides = {"maintenanceStartTime": "2026-01-03T02:00:00Z", "maintenanceEndTime": end,
                 "maintenanceRecurrence": "FREQ=WEEKLY;BYDAY=SA,SU"}
    if ok:
        _parse(overrides)
    else:
        with pytest.raises(ConfigError, match=r"maintenanceRecurrence = 'FREQ=WEEKLY;BYDAY=SA,SU': the window .* leaves only "
                                              r"47\.9 h in the 32 days from .*GKE requires at least 48 h"):
            _parse(overrides)


# A daily 4 h window (02:00-06:00) and a NO_UPGRADES exclusion from 1 March: the worst 32 days
# hold 12 days outside the exclusion, i.e. 11 whole windows plus what the exclusion's end leaves
# of the window on its last day.
@pytest.mark.parametrize("end, ok", [
    ("2026-03-21T02:00:00Z", True),    # 11 x 4 h + 4 h = 48 h
    ("2026-03-21T03:00:00Z", False),   # 11 x 4 h + 3 h = 47 h
    ("2026-03-21T01:00:00Z", True),
])
def test_item8_a_no_upgrades_exclusion_at_the_48_hour_boundary(end, ok):
    exclusions = json.dumps({"spring-launch": {"start": "2026-03-01T00:00:00Z", "end": end}})
    overrides = {"maintenanceStartTime": "2026-01-03T02:00:00Z", "maintenanceEndTime": "2026-01-03T06:00:00Z",
                 "maintenanceRecurrence": "FREQ=DAILY", "maintenanceExclusions": exclusions}
    if ok:
        _parse(overrides)
    else:
        with pytest.raises(ConfigError, match=r"maintenanceExclusions\.spring-launch = '2026-03-21T03:00:00Z': with this "
                                              r"NO_UPGRADES exclusion the 32 days from .* keep only 47 h of maintenance"):
            _parse(overrides)


def test_item8_prods_old_year_end_exclusion_is_refused_and_the_new_scope_is_not():
    """prod's committed NO_UPGRADES exclusion left the weekend window 12 h in 32 days: GKE would
    have refused prod's maintenance policy at its first `pulumi up`."""
    raw = {**load_stack_values("prod").config, **SECRETS}
    old = json.dumps({"year-end-peak": {"start": "2026-12-15T00:00:00Z", "end": "2027-01-05T00:00:00Z", "scope": "NO_UPGRADES"}})
    with pytest.raises(ConfigError, match=r"year-end-peak = '2027-01-05T00:00:00Z': .* keep only 12 h of maintenance"):
        parse_stack_config("prod", {**raw, P + "maintenanceExclusions": old}, tuple(SECRETS))
    assert parse_stack_config("prod", raw, tuple(SECRETS)).cluster.maintenance_exclusions["year-end-peak"].scope == \
        "NO_MINOR_OR_NODE_UPGRADES"


def test_item8_narrower_scopes_do_not_count_against_availability():
    weekend = (_t("2026-01-03T02:00:00Z"), _t("2026-01-03T08:00:00Z"), "FREQ=WEEKLY;BYDAY=SA,SU")
    assert least_availability(*weekend).least.total_seconds() == 48 * 3600
    assert least_availability(*weekend, [(_t("2026-03-01T00:00:00Z"), _t("2026-03-08T00:00:00Z"))]).least.total_seconds() < 48 * 3600


@pytest.mark.parametrize("recurrence", ["FREQ=MONTHLY", "FREQ=WEEKLY", "FREQ=WEEKLY;BYDAY=SA;INTERVAL=2", "FREQ=WEEKLY;BYDAY=XX"])
def test_item8_only_recurrences_the_check_can_expand_are_accepted(recurrence):
    with pytest.raises(ValueError, match="unsupported recurrence"):
        window_days(recurrence)
    with pytest.raises(ConfigError, match=r"maintenanceRecurrence = .*: must be FREQ=DAILY or FREQ=WEEKLY;BYDAY=<days>"):
        _parse({"maintenanceRecurrence": recurrence})


# --- what the best modules add ------------------------------------------------------------------


def test_kubelet_read_only_port_is_off_and_cost_allocation_on(plan):
    cluster = plan.one(CLUSTER)["inputs"]
    assert cluster["nodePoolAutoConfig"] == {"nodeKubeletConfig": {"insecureKubeletReadonlyPortEnabled": "FALSE"}}
    assert cluster["costManagementConfig"] == {"enabled": True}


def test_cost_allocation_can_be_turned_off():
    assert evaluate("dev", {P + "costAllocation": "false"}).one(CLUSTER)["inputs"]["costManagementConfig"] == {"enabled": False}


def test_upgrade_notifications_go_to_the_stacks_topic(plan):
    topic = plan.one("gcp:pubsub/topic:Topic")
    assert topic["inputs"]["name"] == f"voice-agents-{plan.stack}-gke-notifications"
    notification = plan.one(CLUSTER)["inputs"]["notificationConfig"]["pubsub"]
    assert notification == {"enabled": True, "topic": f"projects/gva-fixture-{plan.stack}/topics/{topic['inputs']['name']}",
                            "filter": {"eventTypes": ["UPGRADE_AVAILABLE_EVENT", "UPGRADE_EVENT", "SECURITY_BULLETIN_EVENT"]}}
    assert "upgrades-topic" in plan.one(CLUSTER)["dependsOn"]


def test_upgrade_notifications_can_be_turned_off():
    result = evaluate("dev", {P + "upgradeNotifications": "false"})
    assert result.of_type("gcp:pubsub/topic:Topic") == [] and "notificationConfig" not in result.one(CLUSTER)["inputs"]


def _secrets_key(plan, resource_type: str) -> dict:
    # the checkpoint key (infra/checkpoint_key.py, tests/infra/test_checkpoint_key.py) is the other
    [found] = [r for r in plan.of_type(resource_type) if r["parent"] == "secrets-key"]
    return found


def test_prod_encrypts_secrets_with_its_own_key_usable_by_the_gke_agent(prod_plan):
    key = _secrets_key(prod_plan, "gcp:kms/cryptoKey:CryptoKey")
    ring = _secrets_key(prod_plan, "gcp:kms/keyRing:KeyRing")["inputs"]
    assert ring["location"] == "us-central1" and ring["name"] == "voice-agents-prod-a1b2"
    assert key["inputs"]["purpose"] == "ENCRYPT_DECRYPT" and key["inputs"]["rotationPeriod"] == f"{90 * 86400}s"
    grant = _secrets_key(prod_plan, "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember")["inputs"]
    assert grant["role"] == "roles/cloudkms.cryptoKeyEncrypterDecrypter"
    assert grant["member"] == "serviceAccount:service-123456789012@container-engine-robot.iam.gserviceaccount.com"
    encryption = prod_plan.one(CLUSTER)["inputs"]["databaseEncryption"]
    assert encryption == {"state": "ENCRYPTED", "keyName": grant["cryptoKeyId"]}
    # GKE checks the key at creation: the cluster waits for the grant, not only for the key.
    assert "secrets-key-gke-agent" in prod_plan.one(CLUSTER)["dependsOn"]


def test_dev_has_no_key_and_no_binary_authorization(dev_plan):
    cluster = dev_plan.one(CLUSTER)["inputs"]
    assert "databaseEncryption" not in cluster and "binaryAuthorization" not in cluster
    # dev's one key ring is its checkpoint key's (tests/infra/test_checkpoint_key.py)
    assert [r["parent"] for r in dev_plan.of_type("gcp:kms/keyRing:KeyRing")] == ["checkpoint-key"]
    assert not dev_plan.of_type("gcp:binaryauthorization/policy:Policy")


PLATFORM_IMAGES = ["gcr.io/cloud-sql-connectors/cloud-sql-proxy:2.14.2", metrics_adapter.IMAGE, "registry.k8s.io/pause:3.10"]


def test_prod_admits_only_attested_images_and_the_exact_platform_images(prod_plan):
    """binaryAuthorizationAttestor: every image of the registry needs the CI build's attestation,
    so no wildcard over the registry (it would bypass the attestation); the platform's third-party
    images by their exact reference."""
    policy = prod_plan.one("gcp:binaryauthorization/policy:Policy")["inputs"]
    attestor = load_stack_values("prod").config[P + "binaryAuthorizationAttestor"]
    assert attestor.startswith("projects/") and "/attestors/" in attestor
    assert policy["defaultAdmissionRule"] == {"evaluationMode": "REQUIRE_ATTESTATION",
                                              "enforcementMode": "ENFORCED_BLOCK_AND_AUDIT_LOG",
                                              "requireAttestationsBies": [attestor]}
    assert policy["globalPolicyEvaluationMode"] == "ENABLE"
    assert [p["namePattern"] for p in policy["admissionWhitelistPatterns"]] == PLATFORM_IMAGES
    assert prod_plan.one(CLUSTER)["inputs"]["binaryAuthorization"] == {"evaluationMode": "PROJECT_SINGLETON_POLICY_ENFORCE"}


def test_without_an_attestor_the_policy_admits_the_stacks_registry():
    plan = evaluate("prod", {P + "binaryAuthorizationAttestor": ""})
    policy = plan.one("gcp:binaryauthorization/policy:Policy")["inputs"]
    assert policy["defaultAdmissionRule"] == {"evaluationMode": "ALWAYS_DENY", "enforcementMode": "ENFORCED_BLOCK_AND_AUDIT_LOG"}
    assert [p["namePattern"] for p in policy["admissionWhitelistPatterns"]] == [f"{plan.outputs['registryUrl']}/**", *PLATFORM_IMAGES]


def test_without_placeholders_no_outside_image_is_admitted():
    policy = evaluate("prod", {P + "spareCapacityPods": "0", P + "recoveryEnabled": "false"}).one(
        "gcp:binaryauthorization/policy:Policy")["inputs"]
    # the HPA's metrics adapter (k8s/metrics_adapter.py) only: no pause image, no Auth Proxy
    assert [p["namePattern"] for p in policy["admissionWhitelistPatterns"]] == [
        metrics_adapter.IMAGE]


@pytest.mark.parametrize("key", ["workloadStateMetrics", "upgradeNotifications", "secretsEncryption", "binaryAuthorization",
                                 "costAllocation"])
def test_hardening_switches_are_booleans(key):
    with pytest.raises(ConfigError, match=rf"{key} = 'sometimes': must be true or false"):
        _parse({key: "sometimes"})
