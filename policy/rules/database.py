"""Rules for the checkpoint database (Cloud SQL for PostgreSQL): private only, TLS, IAM logins,
backups (and point-in-time recovery, high availability) where calls must survive.

Pure functions over a resource's wire-form (camelCase) props. `database-backups-in-prod` reads
`protected` from the stack's policy config (policy/dev.json turns it off for the throwaway stack).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from policy.rules.base import MANDATORY, Rule, prop, unless
from policy.rules.workload import agent_pods

SQL_INSTANCE = "gcp:sql/databaseInstance:DatabaseInstance"
# Cloud SQL sslMode values that refuse unencrypted connections (ALLOW_UNENCRYPTED_AND_ENCRYPTED
# is the only one that does not).
SSL_REQUIRED_MODES = frozenset({"ENCRYPTED_ONLY", "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"})
IAM_AUTH_FLAG = "cloudsql.iam_authentication"


def _ip(p):
    return prop(p, "settings", "ipConfiguration", default={})


def _no_public_ip(p, ctx):
    # the provider's default for ipv4Enabled is true: only an explicit false is private
    messages = unless(prop(_ip(p), "ipv4Enabled") is False,
                      "the instance has a public IPv4 address (settings.ipConfiguration.ipv4Enabled is not false): "
                      "checkpoints hold callers' words; reach it only through its private IP")
    if not prop(_ip(p), "privateNetwork"):
        messages.append("no settings.ipConfiguration.privateNetwork: the instance has no private IP on the VPC")
    return messages


def _ssl_required(p, ctx):
    mode = prop(_ip(p), "sslMode")
    return unless(mode in SSL_REQUIRED_MODES,
                  f"settings.ipConfiguration.sslMode is {mode!r}: unencrypted connections are accepted; use "
                  "ENCRYPTED_ONLY or TRUSTED_CLIENT_CERTIFICATE_REQUIRED")


def _iam_auth(p, ctx):
    flags = {f.get("name"): str(f.get("value", "")).lower() for f in prop(p, "settings", "databaseFlags", default=[])}
    return unless(flags.get(IAM_AUTH_FLAG) == "on",
                  f"database flag {IAM_AUTH_FLAG} is {flags.get(IAM_AUTH_FLAG, 'unset')!r}: the agent's identity "
                  "cannot log in without passwords; set it to on")


def _backups_in_prod(p, ctx):
    if not ctx.protected:  # a throwaway stack (policy config protected=false)
        return []
    backup = prop(p, "settings", "backupConfiguration", default={})
    messages = unless(prop(backup, "enabled") is True, "automated backups are off: a lost instance loses every checkpoint")
    messages += unless(prop(backup, "pointInTimeRecoveryEnabled") is True,
                       "point-in-time recovery is off: a bad write can only be undone to the last daily backup")
    messages += unless(prop(p, "settings", "availabilityType") == "REGIONAL",
                       f"availabilityType is {prop(p, 'settings', 'availabilityType')!r}: one zone's outage stops every "
                       "checkpoint; use REGIONAL")
    messages += unless(prop(p, "settings", "deletionProtectionEnabled") is True and prop(p, "deletionProtection") is not False,
                       "deletion protection is off (settings.deletionProtectionEnabled and deletionProtection)")
    return messages


DSN_ENV = "AGENT_CHECKPOINT_DSN"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def _sidecar_listens(spec, port: int) -> bool:
    """A native sidecar (init container, restartPolicy Always) serving `port` on loopback: the
    Cloud SQL Auth Proxy as k8s/cloudsql_proxy.py declares it."""
    for c in prop(spec, "initContainers", default=[]):
        args = [str(a) for a in c.get("args", [])]
        if c.get("restartPolicy") == "Always" and f"--port={port}" in args and "--address=127.0.0.1" in args:
            return True
    return False


def _dsn_on_loopback(resources, ctx):
    """The checkpoint DSN reaches the database only through the pod's Auth Proxy: TLS, IAM and
    the private IP are the proxy's doing, so any other host would bypass all three."""
    findings = []
    for pod in agent_pods(resources):
        dsn = pod.env.get(DSN_ENV, "")
        if not dsn:
            continue  # recovery off
        parts = urlsplit(dsn)
        try:
            host, port = parts.hostname, parts.port or 5432
        except ValueError:
            host, port = None, None
        if host not in LOOPBACK_HOSTS:
            findings.append((pod.name, f"{DSN_ENV} points at {host!r}, not the Cloud SQL Auth Proxy sidecar on 127.0.0.1: "
                                       "the connection would skip the proxy's TLS, IAM login and private IP"))
        elif parts.password:
            findings.append((pod.name, f"{DSN_ENV} holds a password: the proxy logs in with IAM (--auto-iam-authn); "
                                       "remove it"))
        elif not _sidecar_listens(pod.spec, port):
            findings.append((pod.name, f"{DSN_ENV} points at 127.0.0.1:{port} but no native sidecar (init container "
                                       f"with restartPolicy Always) serves --address=127.0.0.1 --port={port}"))
    return findings


RULES: tuple[Rule, ...] = (
    Rule("database-no-public-ip", MANDATORY, "The checkpoint database has a private IP only.", (SQL_INSTANCE,), _no_public_ip),
    Rule("database-ssl-required", MANDATORY, "The checkpoint database refuses unencrypted connections.", (SQL_INSTANCE,), _ssl_required),
    Rule("database-iam-auth", MANDATORY, "IAM database authentication is on.", (SQL_INSTANCE,), _iam_auth),
    Rule("database-backups-in-prod", MANDATORY,
         "Protected stacks back up the database, with point-in-time recovery, high availability and deletion protection.",
         (SQL_INSTANCE,), _backups_in_prod, config=("protected",)),
    Rule("agent-checkpoint-dsn-on-loopback", MANDATORY,
         "The agent's checkpoint DSN goes to its Cloud SQL Auth Proxy sidecar on loopback, never to an address.",
         check_stack=_dsn_on_loopback),
)
