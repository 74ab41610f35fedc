"""AgentDatabase: Cloud SQL for PostgreSQL holding the agent's call checkpoints (docs/recovery.md).

Private IP only (private services access on the stack's VPC), TLS with client certificates
required, IAM database authentication, automated backups; point-in-time recovery, REGIONAL
high availability and deletion protection when `production` is set.

Who logs in: Cloud SQL IAM database users are Google accounts or service accounts (user types
CLOUD_IAM_USER / CLOUD_IAM_SERVICE_ACCOUNT / CLOUD_IAM_GROUP); a Workload Identity Federation
principal (`principal://...`, what the agent uses for Vertex AI) cannot be one. So a dedicated
service account is the database user, and only the pod's Cloud SQL Auth Proxy sidecar acts as
it (`--impersonate-service-account`, with the agent's principal holding Token Creator on that
account alone). The pod's own identity stays the direct principal: annotating the Kubernetes
service account with a Google service account instead would move every Google call of the pod
(Vertex AI included) to that account.

Why the Auth Proxy (a native sidecar) and not the Python Connector: every job process is its
own process; the Connector would fetch an ephemeral certificate from the SQL Admin API in each
one (per call, against a per-project quota), while one proxy per pod refreshes once an hour,
and the agent's code path is a plain PostgreSQL connection to 127.0.0.1 - the exact path the
tests run against a real PostgreSQL server.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.names import child, name_part, type_token
from infra.settings import ConfigError, Problem

DATABASE_NAME = "voice_agent"
IAM_AUTH_FLAG = "cloudsql.iam_authentication"
CLIENT_ROLES = ("roles/cloudsql.client", "roles/cloudsql.instanceUser")
TOKEN_CREATOR = "roles/iam.serviceAccountTokenCreator"
SSL_MODE = "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"
POSTGRES_VERSIONS = ("POSTGRES_15", "POSTGRES_16", "POSTGRES_17")
# Enterprise edition tiers: shared-core (db-f1-micro, db-g1-small) or db-custom-<vCPU>-<MiB>.
_TIER = re.compile(r"^(db-f1-micro|db-g1-small|db-custom-(\d+)-(\d+))$")
# Cloud SQL: disk 10 GB .. 64 TB; Enterprise edition keeps transaction logs 1..7 days; private
# services access ranges: Google asks for at least /24, allows up to /16.
DISK_GB = (10, 65536)
LOG_RETENTION_DAYS = (1, 7)
RETAINED_BACKUPS = (1, 365)
PSA_PREFIX = (16, 24)
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


@dataclass(frozen=True)
class AgentDatabaseArgs:
    """Inputs of AgentDatabase; `network_id` is the stack VPC's id, `agent_principal` the
    agent's Workload Identity principal (infra/identity.py)."""

    project: str
    region: str
    stack: str
    network_id: pulumi.Input[str]
    agent_principal: pulumi.Input[str]
    production: bool = True
    tier: str = "db-custom-1-3840"
    disk_size_gb: int = 10
    database_version: str = "POSTGRES_16"
    retained_backups: int = 7
    transaction_log_retention_days: int = 7
    backup_start_time: str = "03:00"
    psa_prefix_length: int = 20
    psa_range_address: str | None = None
    """First address of the private services access range (e.g. 10.60.0.0); set it so the
    agent's egress NetworkPolicy can name the database's CIDR at plan time (GCP picks one
    otherwise). Must not overlap the VPC's subnets and ranges."""

    @property
    def private_range_cidr(self) -> str | None:
        return f"{self.psa_range_address}/{self.psa_prefix_length}" if self.psa_range_address else None

    def __post_init__(self) -> None:
        problems = list(_problems(self))
        if problems:
            raise ConfigError(problems)


def _problems(a: AgentDatabaseArgs):
    match = _TIER.match(a.tier)
    if not match:
        yield Problem("database.tier", a.tier, "an Enterprise edition tier: db-f1-micro, db-g1-small or "
                      "db-custom-<vCPU>-<MiB>, e.g. db-custom-1-3840")
    elif match.group(2):
        cpus, mib = int(match.group(2)), int(match.group(3))
        # Cloud SQL custom machines: 1 or an even vCPU count up to 96, 0.9..6.5 GiB per vCPU
        if not (cpus == 1 or cpus % 2 == 0) or cpus > 96 or not 0.9 * 1024 * cpus <= mib <= 6.5 * 1024 * cpus:
            yield Problem("database.tier", a.tier, "db-custom-<vCPU>-<MiB> needs 1 or an even vCPU count up to 96 "
                          "and 0.9..6.5 GiB of memory per vCPU (e.g. db-custom-2-7680)")
    if a.production and match and not match.group(2):
        yield Problem("database.tier", a.tier, "shared-core tiers have no SLA and no high availability: use "
                      "db-custom-<vCPU>-<MiB> for production")
    for key, value, (low, high), what in (
        ("database.diskSizeGb", a.disk_size_gb, DISK_GB, "GB of SSD (Cloud SQL limits)"),
        ("database.retainedBackups", a.retained_backups, RETAINED_BACKUPS, "automated backups kept"),
        ("database.transactionLogRetentionDays", a.transaction_log_retention_days, LOG_RETENTION_DAYS,
         "days of point-in-time recovery (Enterprise edition allows 1..7)"),
        ("database.psaPrefixLength", a.psa_prefix_length, PSA_PREFIX,
         "prefix length of the private services access range (/16 .. /24)"),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            yield Problem(key, value, f"allowed {low}..{high}: {what}")
    if a.psa_range_address is not None:
        try:
            network = ipaddress.IPv4Network(f"{a.psa_range_address}/{a.psa_prefix_length}")
        except ValueError:
            network = None
        if network is None or not network.is_private:
            yield Problem("database.psaRangeAddress", a.psa_range_address,
                          f"a private IPv4 network address aligned to /{a.psa_prefix_length}, e.g. 10.60.0.0")
    if a.database_version not in POSTGRES_VERSIONS:
        yield Problem("database.version", a.database_version, f"one of {', '.join(POSTGRES_VERSIONS)}")
    if not _HHMM.match(a.backup_start_time):
        yield Problem("database.backupStartTime", a.backup_start_time, "HH:MM in UTC, e.g. 03:00")


def iam_user_name(email: str) -> str:
    """Cloud SQL's PostgreSQL user name for a service account: its email without the
    `.gserviceaccount.com` suffix."""
    return email.removesuffix(".gserviceaccount.com")


class AgentDatabase(pulumi.ComponentResource):
    connection_name: pulumi.Output[str]
    database: pulumi.Output[str]
    user: pulumi.Output[str]
    service_account_email: pulumi.Output[str]

    def __init__(self, name: str, args: AgentDatabaseArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("infra", "AgentDatabase"), name, None, opts)
        child_opts = pulumi.ResourceOptions(parent=self)
        psa_range = gcp.compute.GlobalAddress(
            child(name, "psa-range"), project=args.project, network=args.network_id,
            purpose="VPC_PEERING", address_type="INTERNAL", prefix_length=args.psa_prefix_length,
            address=args.psa_range_address, opts=child_opts)
        peering = gcp.servicenetworking.Connection(
            child(name, "psa"), network=args.network_id, service="servicenetworking.googleapis.com",
            reserved_peering_ranges=[psa_range.name],
            # ABANDON: the peering may be shared by other managed services on the same VPC
            deletion_policy="ABANDON", opts=child_opts)
        instance = gcp.sql.DatabaseInstance(
            child(name, "instance"), project=args.project, region=args.region,
            database_version=args.database_version, deletion_protection=args.production,
            settings=_settings(args, psa_range.name),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[peering]))
        database = gcp.sql.Database(child(name, "db"), project=args.project, instance=instance.name,
                                    name=DATABASE_NAME, opts=child_opts)
        account = gcp.serviceaccount.Account(
            child(name, "sa"), project=args.project, account_id=f"gva-{name_part(args.stack, 18)}-db",
            display_name="voice agent checkpoint database user (impersonated by the Cloud SQL Auth Proxy)",
            opts=child_opts)
        for role in CLIENT_ROLES:
            gcp.projects.IAMMember(child(name, role.split(".")[-1].lower()), project=args.project, role=role,
                                   member=account.member, opts=child_opts)
        gcp.serviceaccount.IAMMember(child(name, "impersonation"), service_account_id=account.name,
                                     role=TOKEN_CREATOR, member=args.agent_principal, opts=child_opts)
        user = gcp.sql.User(child(name, "user"), project=args.project, instance=instance.name,
                            name=account.email.apply(iam_user_name), type="CLOUD_IAM_SERVICE_ACCOUNT",
                            opts=child_opts)
        self.connection_name = instance.connection_name
        self.database = database.name
        self.user = user.name
        self.service_account_email = account.email
        self.register_outputs({"connection_name": self.connection_name, "database": self.database,
                               "user": self.user, "service_account_email": self.service_account_email})


def _settings(a: AgentDatabaseArgs, allocated_range: pulumi.Input[str]) -> gcp.sql.DatabaseInstanceSettingsArgs:
    return gcp.sql.DatabaseInstanceSettingsArgs(
        tier=a.tier, edition="ENTERPRISE",
        availability_type="REGIONAL" if a.production else "ZONAL",
        disk_size=a.disk_size_gb, disk_type="PD_SSD", disk_autoresize=True,
        deletion_protection_enabled=a.production,
        ip_configuration=gcp.sql.DatabaseInstanceSettingsIpConfigurationArgs(
            ipv4_enabled=False, private_network=a.network_id, allocated_ip_range=allocated_range,
            ssl_mode=SSL_MODE, enable_private_path_for_google_cloud_services=False),
        database_flags=[gcp.sql.DatabaseInstanceSettingsDatabaseFlagArgs(name=IAM_AUTH_FLAG, value="on")],
        backup_configuration=gcp.sql.DatabaseInstanceSettingsBackupConfigurationArgs(
            enabled=True, start_time=a.backup_start_time,
            point_in_time_recovery_enabled=a.production,
            transaction_log_retention_days=a.transaction_log_retention_days,
            backup_retention_settings=gcp.sql.DatabaseInstanceSettingsBackupConfigurationBackupRetentionSettingsArgs(
                retained_backups=a.retained_backups, retention_unit="COUNT")),
        # Sunday 04:00 UTC, on the stable track (updates land after the preview track's)
        maintenance_window=gcp.sql.DatabaseInstanceSettingsMaintenanceWindowArgs(day=7, hour=4, update_track="stable"),
    )
