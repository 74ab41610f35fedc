"""The database rules (policy/rules/database.py), each with a passing and a failing instance."""

from __future__ import annotations

import copy

import pytest

from policy.rules.base import Context
from policy.rules.database import RULES, SQL_INSTANCE

BY_ID = {rule.id: rule for rule in RULES}
GOOD = {
    "databaseVersion": "POSTGRES_16",
    "deletionProtection": True,
    "settings": {
        "tier": "db-custom-2-7680",
        "availabilityType": "REGIONAL",
        "deletionProtectionEnabled": True,
        "ipConfiguration": {"ipv4Enabled": False, "privateNetwork": "projects/p/global/networks/vpc",
                            "sslMode": "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"},
        "databaseFlags": [{"name": "cloudsql.iam_authentication", "value": "on"}],
        "backupConfiguration": {"enabled": True, "pointInTimeRecoveryEnabled": True},
    },
}
PROD, THROWAWAY = Context(protected=True), Context(protected=False)


def check(rule_id: str, props, ctx=PROD) -> list[str]:
    rule = BY_ID[rule_id]
    assert rule.resource_types == (SQL_INSTANCE,)
    return rule.check_resource(props, ctx)


def changed(path: str, value):
    props = copy.deepcopy(GOOD)
    *parents, leaf = path.split(".")
    node = props
    for key in parents:
        node = node[key]
    if value is None:
        node.pop(leaf)
    else:
        node[leaf] = value
    return props


INSTANCE_RULES = [rule for rule in RULES if rule.check_resource is not None]


def test_a_compliant_instance_passes_every_rule():
    assert {rule.id: check(rule.id, GOOD) for rule in INSTANCE_RULES} == {rule.id: [] for rule in INSTANCE_RULES}


def test_rule_ids_are_stable():
    assert list(BY_ID) == ["database-no-public-ip", "database-ssl-required", "database-iam-auth", "database-backups-in-prod",
                           "agent-checkpoint-dsn-on-loopback"]


@pytest.mark.parametrize(("path", "value", "expected"), [
    ("settings.ipConfiguration.ipv4Enabled", True, "public IPv4"),
    ("settings.ipConfiguration.ipv4Enabled", None, "public IPv4"),  # provider default is true
    ("settings.ipConfiguration.privateNetwork", None, "no settings.ipConfiguration.privateNetwork"),
])
def test_public_ip_or_no_private_network_fails(path, value, expected):
    messages = check("database-no-public-ip", changed(path, value))
    assert len(messages) == 1 and expected in messages[0]


@pytest.mark.parametrize(("mode", "ok"), [("ENCRYPTED_ONLY", True), ("TRUSTED_CLIENT_CERTIFICATE_REQUIRED", True),
                                          ("ALLOW_UNENCRYPTED_AND_ENCRYPTED", False), (None, False)])
def test_ssl_mode(mode, ok):
    messages = check("database-ssl-required", changed("settings.ipConfiguration.sslMode", mode))
    assert (messages == []) is ok
    if not ok:
        assert "ENCRYPTED_ONLY or TRUSTED_CLIENT_CERTIFICATE_REQUIRED" in messages[0]


@pytest.mark.parametrize(("flags", "ok"), [([{"name": "cloudsql.iam_authentication", "value": "On"}], True),
                                           ([{"name": "cloudsql.iam_authentication", "value": "off"}], False),
                                           ([], False)])
def test_iam_authentication_flag(flags, ok):
    messages = check("database-iam-auth", changed("settings.databaseFlags", flags))
    assert (messages == []) is ok


@pytest.mark.parametrize(("path", "value", "expected"), [
    ("settings.backupConfiguration.enabled", False, "automated backups are off"),
    ("settings.backupConfiguration.pointInTimeRecoveryEnabled", None, "point-in-time recovery is off"),
    ("settings.availabilityType", "ZONAL", "use REGIONAL"),
    ("settings.deletionProtectionEnabled", False, "deletion protection is off"),
    ("deletionProtection", False, "deletion protection is off"),
])
def test_protected_stacks_need_backups_pitr_ha_and_deletion_protection(path, value, expected):
    props = changed(path, value)
    messages = check("database-backups-in-prod", props)
    assert len(messages) == 1 and expected in messages[0]
    assert check("database-backups-in-prod", props, THROWAWAY) == [], "a throwaway stack may skip them"


def test_the_backup_rule_reads_the_protected_setting():
    assert BY_ID["database-backups-in-prod"].config == ("protected",)


# Mutations of a committed stack's evaluated plan, for tests/policy/test_rules.py's table: each
# rule also fails on what the real program declares, not only on the hand-written GOOD above.
def _instance(resources) -> dict:
    [props] = [r["inputs"] for r in resources if r["type"] == SQL_INSTANCE]
    return props


FAILING_CASES = {
    "database-no-public-ip": (lambda rs: _instance(rs)["settings"]["ipConfiguration"].update(ipv4Enabled=True),
                              "public IPv4"),
    "database-ssl-required": (lambda rs: _instance(rs)["settings"]["ipConfiguration"].update(
        sslMode="ALLOW_UNENCRYPTED_AND_ENCRYPTED"), "unencrypted connections are accepted"),
    "database-iam-auth": (lambda rs: _instance(rs)["settings"].update(databaseFlags=[]), "cannot log in without passwords"),
    "database-backups-in-prod": (lambda rs: _instance(rs)["settings"].update(availabilityType="ZONAL"), "use REGIONAL"),
    "agent-checkpoint-dsn-on-loopback": (lambda rs: _set_dsn(rs, "postgresql://u@10.60.0.3:5432/voice_agent"),
                                         "points at '10.60.0.3', not the Cloud SQL Auth Proxy sidecar"),
}


def _pod_spec(resources) -> dict:
    [spec] = [r["inputs"]["spec"]["template"]["spec"] for r in resources if r["name"] == "agent-deployment"]
    return spec


def _set_dsn(resources, dsn: str) -> None:
    for env in _pod_spec(resources)["containers"][0]["env"]:
        if env["name"] == "AGENT_CHECKPOINT_DSN":
            env["value"] = dsn


def _dsn_findings(resources) -> list[str]:
    from policy.rules.base import Resource

    rule = BY_ID["agent-checkpoint-dsn-on-loopback"]
    return [m for _, m in rule.findings([Resource(r["type"], r["name"], r["inputs"]) for r in resources], PROD)]


@pytest.mark.parametrize(("dsn", "expected"), [
    (None, None),  # the committed plan: sidecar on 127.0.0.1:5432
    ("postgresql://u@localhost:5432/voice_agent", None),
    ("postgresql://u@10.60.0.3/voice_agent", "points at '10.60.0.3'"),
    ("postgresql://u@34.1.2.3:5432/voice_agent", "points at '34.1.2.3'"),
    ("postgresql://u:hunter2@127.0.0.1:5432/voice_agent", "holds a password"),
    ("postgresql://u@127.0.0.1:6543/voice_agent", "no native sidecar"),
    ("", None),  # recovery off
])
def test_the_dsn_goes_to_the_sidecar_on_loopback(dsn, expected):
    from tests.conftest import _fixture_plan

    resources = copy.deepcopy(_fixture_plan("prod").resources)
    if dsn is not None:
        _set_dsn(resources, dsn)
    found = _dsn_findings(resources)
    assert (found == []) if expected is None else (len(found) == 1 and expected in found[0]), found


def test_a_dsn_without_a_native_sidecar_fails():
    """The proxy as an ordinary init container would exit before the agent starts."""
    from tests.conftest import _fixture_plan

    resources = copy.deepcopy(_fixture_plan("prod").resources)
    assert _dsn_findings(resources) == []
    _pod_spec(resources)["initContainers"][0].pop("restartPolicy")
    [message] = _dsn_findings(resources)
    assert "no native sidecar" in message
