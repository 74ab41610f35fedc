"""The database rules (policy/rules_database.py), each with a passing and a failing instance."""

from __future__ import annotations

import copy

import pytest

from policy.rules.base import Context
from policy.rules_database import RULES, SQL_INSTANCE

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


def test_a_compliant_instance_passes_every_rule():
    assert {rule.id: check(rule.id, GOOD) for rule in RULES} == {rule.id: [] for rule in RULES}


def test_rule_ids_are_stable():
    assert list(BY_ID) == ["database-no-public-ip", "database-ssl-required", "database-iam-auth", "database-backups-in-prod"]


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
