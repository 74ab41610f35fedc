"""AgentDatabase (infra/database.py) under the Pulumi mocks of tooling/mocks.py: what it declares
for a dev-sized and a prod-sized stack, the database policy rules over exactly those inputs,
every input a field of the pinned pulumi-gcp, and each validation at its boundary.

The component is built here in a program of its own (mocks, config and settings are
process-global: each build replaces them); tests/infra/test_recovery_wiring.py checks what
__main__.py makes of it and of the stack settings."""

from __future__ import annotations

import dataclasses
import re

import pulumi
import pytest
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.mocks import set_mocks
from pulumi.runtime.stack import wait_for_rpcs
from pulumi.runtime.sync_await import _sync_await

from infra.database import AgentDatabase, AgentDatabaseArgs, iam_user_name
from domain.database_rules import KEYS
from tooling.mocks import ParentTrackingMonitor, RecordingMocks, args_class
from domain.settings import ConfigError, DatabaseSettings
from policy.rules.base import Context
from policy.rules.database import RULES, SQL_INSTANCE
from tests.infra.test_provider_schema import unknown_fields

PRINCIPAL = "principal://iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p.svc.id.goog/subject/ns/voice-agents/sa/voice-agent"
NETWORK = "projects/gva-fixture-dev/global/networks/vpc"


def settings(stack: str, **changes) -> DatabaseSettings:
    base = DatabaseSettings(tier="db-custom-2-7680", disk_size_gb=10, version="POSTGRES_16", retained_backups=7,
                            transaction_log_retention_days=7, psa_prefix_length=20, psa_range_address="10.60.0.0",
                            production=stack == "prod")
    return dataclasses.replace(base, **changes)


def args(stack: str, **changes) -> AgentDatabaseArgs:
    return AgentDatabaseArgs(project=f"gva-fixture-{stack}", region="us-central1", stack=stack,
                             network_id=NETWORK, agent_principal=PRINCIPAL, settings=settings(stack, **changes))


def build(db_args: AgentDatabaseArgs):
    mocks = RecordingMocks()
    pulumi_settings.reset_options(project="gke-voice-agents", stack=db_args.stack, preview=False)
    set_mocks(mocks, project="gke-voice-agents", stack=db_args.stack, preview=False, monitor=ParentTrackingMonitor(mocks))
    component = AgentDatabase("checkpoints", db_args)
    _sync_await(wait_for_rpcs())
    return component, mocks


def recorded(mocks: RecordingMocks, resource_type: str):
    found = [r for r in mocks.resources if r.type == resource_type]
    assert len(found) == 1, f"{resource_type}: {[r.name for r in mocks.resources]}"
    return found[0].inputs


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_private_tls_iam_and_backups(stack):
    _, mocks = build(args(stack, tier="db-g1-small" if stack == "dev" else "db-custom-2-7680"))
    instance = recorded(mocks, SQL_INSTANCE)
    settings = instance["settings"]
    ip = settings["ipConfiguration"]
    assert ip["ipv4Enabled"] is False and ip["privateNetwork"] == NETWORK
    assert ip["sslMode"] == "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"
    assert settings["databaseFlags"] == [{"name": "cloudsql.iam_authentication", "value": "on"}]
    assert settings["backupConfiguration"]["enabled"] is True
    prod = stack == "prod"
    assert settings["availabilityType"] == ("REGIONAL" if prod else "ZONAL")
    assert settings["backupConfiguration"]["pointInTimeRecoveryEnabled"] is prod
    assert instance["deletionProtection"] is prod and settings["deletionProtectionEnabled"] is prod
    assert recorded(mocks, "gcp:compute/globalAddress:GlobalAddress")["purpose"] == "VPC_PEERING"
    assert recorded(mocks, "gcp:sql/user:User")["type"] == "CLOUD_IAM_SERVICE_ACCOUNT"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_database_policy_passes_on_what_the_component_declares(stack):
    """prod as a protected stack, dev as a throwaway one (policy/dev.json turns protection off)."""
    _, mocks = build(args(stack))
    props = recorded(mocks, SQL_INSTANCE)
    ctx = Context(protected=stack == "prod")
    instance_rules = [rule for rule in RULES if rule.check_resource is not None]
    assert len(instance_rules) == 4
    assert {rule.id: rule.check_resource(props, ctx) for rule in instance_rules} == {rule.id: [] for rule in instance_rules}


def test_dev_sizes_fail_the_backup_rule_on_a_protected_stack():
    """The rule is not vacuous for this component: dev's zonal instance without PITR is caught."""
    _, mocks = build(args("dev"))
    messages = next(r for r in RULES if r.id == "database-backups-in-prod").check_resource(
        recorded(mocks, SQL_INSTANCE), Context(protected=True))
    assert any("REGIONAL" in m for m in messages) and any("point-in-time" in m for m in messages)


def test_every_input_is_a_field_of_the_pinned_provider():
    _, mocks = build(args("prod"))
    unknown = [path for r in mocks.resources if (cls := args_class(r.type)) is not None
               for path in unknown_fields(cls, r.inputs, r.name)]
    assert unknown == []
    assert all(r.parent == "checkpoints" for r in mocks.resources if r.name != "checkpoints")


def test_the_database_user_is_the_impersonated_service_account(apply_probe):
    component, mocks = build(args("prod"))
    impersonation = recorded(mocks, "gcp:serviceaccount/iAMMember:IAMMember")
    assert impersonation["role"] == "roles/iam.serviceAccountTokenCreator" and impersonation["member"] == PRINCIPAL
    apply_probe.check("db user", pulumi.Output.all(component.user, component.service_account_email),
                      lambda v: _equal(v[0], "gva-prod-db@gva-fixture-prod.iam"))
    apply_probe.check("sa email", component.service_account_email,
                      lambda e: _equal(e, "gva-prod-db@gva-fixture-prod.iam.gserviceaccount.com"))


def _equal(actual, expected):
    assert actual == expected, f"{actual!r} != {expected!r}"


def test_iam_user_name():
    assert iam_user_name("a@p.iam.gserviceaccount.com") == "a@p.iam"


@pytest.mark.parametrize(("field", "value", "ok"), [
    ("disk_size_gb", 9, False), ("disk_size_gb", 10, True), ("disk_size_gb", 65536, True), ("disk_size_gb", 65537, False),
    ("psa_prefix_length", 15, False), ("psa_prefix_length", 16, True), ("psa_prefix_length", 24, True), ("psa_prefix_length", 25, False),
    ("transaction_log_retention_days", 0, False), ("transaction_log_retention_days", 1, True),
    ("transaction_log_retention_days", 7, True), ("transaction_log_retention_days", 8, False),
    ("retained_backups", 0, False), ("retained_backups", 1, True), ("retained_backups", 365, True),
    ("retained_backups", 366, False),
    ("tier", "db-custom-2-7680", True), ("tier", "db-custom-3-7680", False), ("tier", "db-n1-standard-1", False),
    ("tier", "db-custom-96-98304", True), ("tier", "db-custom-98-98304", False),
    # 0.9..6.5 GiB per vCPU: 2 vCPU -> 1843.2..13312 MiB
    ("tier", "db-custom-2-1843", False), ("tier", "db-custom-2-1844", True),
    ("tier", "db-custom-2-13312", True), ("tier", "db-custom-2-13313", False),
    ("version", "POSTGRES_14", False), ("version", "POSTGRES_17", True),
    ("psa_range_address", "10.60.0.0", True), ("psa_range_address", "10.60.0.1", False),
    ("psa_range_address", "8.8.0.0", False), ("psa_range_address", "", False),
])
def test_validation_boundaries(field, value, ok):
    if ok:
        args("prod", **{field: value})
        return
    key = KEYS[field].split(":", 1)[1]
    with pytest.raises(ConfigError, match=rf"gke-voice-agents:{key} = {re.escape(repr(value) if isinstance(value, str) else str(value))}: "):
        args("prod", **{field: value})


def test_shared_core_is_refused_for_production_with_the_fix():
    with pytest.raises(ConfigError, match="databaseTier = 'db-f1-micro': shared-core tiers have no SLA.*use db-custom"):
        args("prod", tier="db-f1-micro")
    args("dev", tier="db-f1-micro")


def test_the_fixed_range_is_declared_and_gives_the_egress_rule_its_cidr():
    db_args = args("prod", psa_range_address="10.60.0.0")
    _, mocks = build(db_args)
    assert recorded(mocks, "gcp:compute/globalAddress:GlobalAddress")["address"] == "10.60.0.0"
    assert db_args.private_range_cidr == "10.60.0.0/20"
    assert args("prod", psa_prefix_length=24, psa_range_address="10.60.1.0").private_range_cidr == "10.60.1.0/24"


def test_connection_name_is_project_region_instance(apply_probe):
    """The proxy's last argument; GCP's connectionName has this form, built from the instance name."""
    component, mocks = build(args("prod"))
    [instance] = [r for r in mocks.resources if r.type == SQL_INSTANCE]
    apply_probe.check("connection name", component.connection_name,
                      lambda c: _equal(c, f"gva-fixture-prod:us-central1:{instance.name}-5288707"))


# --------------------------------------------------------------------------------------------
# The stack settings (Pulumi.yaml database*, recovery*): parsed by domain/config.py, each error
# one line naming the key, the value and the rule, the real program evaluated under mocks.

def _plan(stack: str, **settings: str):
    from tests.k8s.rendered import plan_with

    return plan_with(stack, **settings)


@pytest.mark.parametrize(("key", "value", "ok"), [
    ("databaseDiskSizeGb", "9", False), ("databaseDiskSizeGb", "10", True), ("databaseDiskSizeGb", "65536", True),
    ("databaseDiskSizeGb", "65537", False), ("databaseDiskSizeGb", "ten", False),
    ("databaseRetainedBackups", "0", False), ("databaseRetainedBackups", "1", True), ("databaseRetainedBackups", "365", True),
    ("databaseRetainedBackups", "366", False),
    ("databaseTransactionLogRetentionDays", "0", False), ("databaseTransactionLogRetentionDays", "1", True),
    ("databaseTransactionLogRetentionDays", "7", True), ("databaseTransactionLogRetentionDays", "8", False),
    ("databasePsaPrefixLength", "15", False), ("databasePsaPrefixLength", "16", True),
    ("databasePsaPrefixLength", "24", True), ("databasePsaPrefixLength", "25", False),
    ("recoveryRetentionSeconds", "59", False), ("recoveryRetentionSeconds", "60", True),
    ("recoveryRetentionSeconds", "2592000", True), ("recoveryRetentionSeconds", "2592001", False),
    ("recoveryRetentionSeconds", "15m", False),
])
def test_stack_setting_ranges_at_their_boundaries(key, value, ok):
    if ok:
        assert _plan("prod", **{key: value}).named("checkpoints-instance")
        return
    shown = f"'{value}'" if not value.isdigit() else value
    with pytest.raises(ConfigError, match=rf"gke-voice-agents:{key} = {shown}: must be (a whole number )?from \d+ to \d+"):
        _plan("prod", **{key: value})


@pytest.mark.parametrize(("settings", "message"), [
    ({"databaseTier": "db-n1-standard-1"}, r"databaseTier = 'db-n1-standard-1': must be an Enterprise edition tier"),
    ({"databaseTier": "db-g1-small"}, r"databaseTier = 'db-g1-small': shared-core tiers .* databaseProduction true"),
    ({"databaseVersion": "POSTGRES_14"}, r"databaseVersion = 'POSTGRES_14': must be one of POSTGRES_15, POSTGRES_16, POSTGRES_17"),
    ({"databasePsaRangeAddress": "10.60.0.1"}, r"databasePsaRangeAddress = '10.60.0.1': must be a private IPv4 network address "
                                                r"aligned to /20"),
    ({"databasePsaRangeAddress": ""}, r"databasePsaRangeAddress = '': must be a private IPv4 network address"),
    ({"databaseProduction": "maybe"}, r"databaseProduction = 'maybe': must be true or false"),
    ({"recoveryEnabled": "yes"}, r"recoveryEnabled = 'yes': must be true or false"),
    ({"recoveryWatcher": "off"}, r"recoveryWatcher = 'off': must be true or false"),
    # prod's nodes are 10.10.0.0/20 (Pulumi.yaml default), its services 10.20.0.0/20
    ({"databasePsaRangeAddress": "10.10.0.0"}, r"databasePsaRangeAddress = '10.10.0.0': 10\.10\.0\.0/20 overlaps "
                                                r"gke-voice-agents:nodeCidr = 10\.10\.0\.0/20: pick a /20 outside"),
    ({"databasePsaRangeAddress": "10.16.0.0", "databasePsaPrefixLength": "16"},
     r"10\.16\.0\.0/16 overlaps gke-voice-agents:podCidr = 10\.16\.0\.0/14"),
])
def test_stack_setting_errors_name_key_value_and_rule(settings, message):
    with pytest.raises(ConfigError, match=message):
        _plan("prod", **settings)


def test_range_next_to_the_vpc_ranges_is_accepted():
    """Boundary of the overlap check: 10.20.16.0/20 starts right after prod's service range."""
    _plan("prod", databasePsaRangeAddress="10.20.16.0")
    with pytest.raises(ConfigError, match="overlaps gke-voice-agents:serviceCidr"):
        _plan("prod", databasePsaRangeAddress="10.20.0.0")


def test_a_shared_core_tier_is_fine_without_production():
    assert _plan("prod", databaseTier="db-f1-micro", databaseProduction="false").named("checkpoints-instance")


@pytest.mark.parametrize("stack, tier, disk, backups, production", [
    ("dev", "db-g1-small", 10, 7, False), ("prod", "db-custom-2-7680", 20, 14, True)])
def test_each_stack_gets_its_database(stack, tier, disk, backups, production):
    inputs = _plan(stack).named("checkpoints-instance")["inputs"]
    s = inputs["settings"]
    assert (s["tier"], s["diskSize"], s["backupConfiguration"]["backupRetentionSettings"]["retainedBackups"]) == (tier, disk, backups)
    assert (s["availabilityType"] == "REGIONAL", inputs["deletionProtection"]) == (production, production)
    assert s["backupConfiguration"]["pointInTimeRecoveryEnabled"] is production
    assert s["ipConfiguration"]["allocatedIpRange"].startswith("checkpoints-psa-range-")  # auto-named
