"""The checkpoint database rules at their edges (policy/rules/database.py): the DSN's host, port
and password as Python's URL parser reads them, the sidecar's exact flags, and the instance
settings left unset where the provider supplies a default."""

from __future__ import annotations

import copy

import pytest

from tests.conftest import _fixture_plan
from tests.policy.test_rules_database import GOOD, PROD, THROWAWAY, _dsn_findings, _pod_spec, _set_dsn, changed, check


def _prod() -> list[dict]:
    return copy.deepcopy(_fixture_plan("prod").resources)


@pytest.mark.parametrize(("dsn", "expected"), [
    ("postgresql://u@127.0.0.1/voice_agent", None),                # no port: PostgreSQL's 5432, the sidecar's
    ("postgresql://u@127.0.0.1:5433/voice_agent", "serves --address=127.0.0.1 --port=5433"),
    ("postgresql://u@127.0.0.2:5432/voice_agent", "points at '127.0.0.2'"),  # loopback range, not the sidecar's address
    ("postgresql://u@127.0.0.1:99999/voice_agent", "points at None"),       # a port Python refuses: no host either
    ("postgresql://u:@127.0.0.1:5432/voice_agent", None),          # an empty password is none
    ("postgresql://u:x@127.0.0.1:5432/voice_agent", "holds a password"),
    ("postgresql://u:x@10.0.0.1:5432/voice_agent", "points at '10.0.0.1'"),  # the host is named first
])
def test_dsn_edges(dsn, expected):
    resources = _prod()
    _set_dsn(resources, dsn)
    found = _dsn_findings(resources)
    assert (found == []) if expected is None else (len(found) == 1 and expected in found[0]), found


@pytest.mark.parametrize(("change", "ok"), [
    (lambda c: None, True),
    (lambda c: c.update(args=[a if not a.startswith("--address=") else "--address=0.0.0.0" for a in c["args"]]), False),
    (lambda c: c.update(args=[a for a in c["args"] if not a.startswith("--port=")]), False),
    (lambda c: c.update(restartPolicy="OnFailure"), False),
])
def test_the_sidecar_must_listen_exactly_there(change, ok):
    resources = _prod()
    sidecar = _pod_spec(resources)["initContainers"][0]
    assert "--address=127.0.0.1" in sidecar["args"] and "--port=5432" in sidecar["args"]
    change(sidecar)
    assert (_dsn_findings(resources) == []) is ok


@pytest.mark.parametrize(("path", "value", "ok"), [
    ("settings.ipConfiguration.sslMode", "ENCRYPTED_ONLY", True),
    ("settings.ipConfiguration.sslMode", "encrypted_only", False),   # the API's values are upper case
    ("settings.databaseFlags", [{"name": "cloudsql.iam_authentication", "value": "ON"}], True),
    ("settings.databaseFlags", [{"name": "cloudsql.iam_authentication"}], False),
    ("settings.databaseFlags", [{"name": "cloudsql.iam_authentication_x", "value": "on"}], False),
])
def test_instance_values_at_their_edges(path, value, ok):
    rule = "database-ssl-required" if "sslMode" in path else "database-iam-auth"
    assert (check(rule, changed(path, value)) == []) is ok


@pytest.mark.parametrize(("path", "value", "count"), [
    ("settings.backupConfiguration", None, 2),           # unset: no backups, no PITR
    ("settings.availabilityType", None, 1),              # unset: the provider's ZONAL
    ("settings.deletionProtectionEnabled", None, 1),     # unset: off
    ("deletionProtection", None, 0),                     # unset: the provider's default true
])
def test_backup_settings_unset_take_the_providers_default(path, value, count):
    props = changed(path, value)
    assert len(check("database-backups-in-prod", props)) == count
    assert check("database-backups-in-prod", props, THROWAWAY) == []


def test_the_good_instance_is_good_in_both_readings():
    assert check("database-backups-in-prod", GOOD, PROD) == [] == check("database-no-public-ip", GOOD)
