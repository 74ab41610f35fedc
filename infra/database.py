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

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from domain.database_rules import database_problems
from infra.accounts import bootstrap_account
from infra.names import child, database_account_id, type_token
from domain.settings import ConfigError, DatabaseSettings

DATABASE_NAME = "voice_agent"
IAM_AUTH_FLAG = "cloudsql.iam_authentication"
CLIENT_ROLES = ("roles/cloudsql.client", "roles/cloudsql.instanceUser")
TOKEN_CREATOR = "roles/iam.serviceAccountTokenCreator"
SSL_MODE = "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"
# `pulumi destroy` must get through the network. The VPC is the stack's own, so nothing else
# peers through this connection; ABANDON left the peering behind, and a network with a peering
# cannot be deleted. REMOVE_PEERING deletes the connection and, when Service Networking still
# refuses (it does for a while after the Cloud SQL instance is gone), removes the peering from
# the network instead (pulumi-gcp 10.2.0 servicenetworking/connection.py, deletion_policy).
PSA_DELETION_POLICY = "REMOVE_PEERING"
# The IAM user owns the checkpoint tables the agent creates, and Cloud SQL cannot delete a
# PostgreSQL user that owns objects or holds granted privileges ("Manage users with IAM database
# authentication", https://cloud.google.com/sql/docs/postgres/add-manage-iam-users: reassign or
# drop them first; pulumi-gcp 10.2.0 sql/user.py, deletion_policy). The user goes with its
# instance on destroy, so Pulumi only forgets it; a user dropped from the program while its
# instance stays is left in the database, unable to log in once its service account is gone.
USER_DELETION_POLICY = "ABANDON"
# Daily backups at 03:00 UTC, before the Sunday 04:00 maintenance window (_settings).
BACKUP_START_TIME = "03:00"


@dataclass(frozen=True)
class AgentDatabaseArgs:
    """Inputs of AgentDatabase; `network_id` is the stack VPC's id (VpcNetwork.network_id),
    `agent_principal` the agent's Workload Identity principal (AgentIdentity.principal)."""

    project: str
    region: str
    stack: str
    network_id: pulumi.Input[str]
    agent_principal: pulumi.Input[str]
    settings: DatabaseSettings

    @property
    def private_range_cidr(self) -> str:
        """The private services access range: the only destination of the agent's TCP 3307."""
        return f"{self.settings.psa_range_address}/{self.settings.psa_prefix_length}"

    def __post_init__(self) -> None:
        problems = database_problems(self.settings)
        if problems:
            raise ConfigError(problems)


def iam_user_name(email: str) -> str:
    """Cloud SQL's PostgreSQL user name for a service account: its email without the
    `.gserviceaccount.com` suffix."""
    return email.removesuffix(".gserviceaccount.com")


def instance_condition(project: str, instance: pulumi.Input[str]) -> gcp.projects.IAMMemberConditionArgs:
    """An IAM condition that holds a project grant to one Cloud SQL instance."""
    expression = pulumi.Output.from_input(instance).apply(
        lambda i: f"resource.name == 'projects/{project}/instances/{i}' && "
                  "resource.type == 'sqladmin.googleapis.com/Instance'")
    return gcp.projects.IAMMemberConditionArgs(title="checkpoint instance only", expression=expression,
                                               description="this stack's checkpoint database, no other instance")


class AgentDatabase(pulumi.ComponentResource):
    connection_name: pulumi.Output[str]
    instance_name: pulumi.Output[str]
    database: pulumi.Output[str]
    user: pulumi.Output[str]
    service_account_email: pulumi.Output[str]

    def __init__(self, name: str, args: AgentDatabaseArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("infra", "AgentDatabase"), name, None, opts)
        child_opts = pulumi.ResourceOptions(parent=self)
        s = args.settings
        psa_range = gcp.compute.GlobalAddress(
            child(name, "psa-range"), project=args.project, network=args.network_id,
            purpose="VPC_PEERING", address_type="INTERNAL", prefix_length=s.psa_prefix_length,
            address=s.psa_range_address, opts=child_opts)
        peering = gcp.servicenetworking.Connection(
            child(name, "psa"), network=args.network_id, service="servicenetworking.googleapis.com",
            reserved_peering_ranges=[psa_range.name],
            deletion_policy=PSA_DELETION_POLICY, opts=child_opts)
        instance = gcp.sql.DatabaseInstance(
            child(name, "instance"), project=args.project, region=args.region,
            database_version=s.version, deletion_protection=s.production,
            settings=_settings(s, args.network_id, psa_range.name),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[peering]))
        database = gcp.sql.Database(child(name, "db"), project=args.project, instance=instance.name,
                                    name=DATABASE_NAME, opts=child_opts)
        # Created by the bootstrap (infra/accounts.py), like every account the stack runs as.
        account = bootstrap_account(args.project, database_account_id(args.stack),
                                    "the checkpoint database's IAM user", args.stack)
        # Cloud SQL has no instance-level policy: a project grant reaches every instance of the
        # project, so each is held to this instance by an IAM condition on resource.name (IAM
        # Conditions resource attributes; Cloud SQL's sample, terraform-docs-samples
        # cloud_sql/instance_iam_condition/main.tf). The agent reaches these roles through its
        # token creator grant below; policy/rules/access.py refuses them without the condition.
        for role in CLIENT_ROLES:
            gcp.projects.IAMMember(child(name, role.split(".")[-1].lower()), project=args.project, role=role,
                                   member=account.member, condition=instance_condition(args.project, instance.name),
                                   opts=child_opts)
        gcp.serviceaccount.IAMMember(child(name, "impersonation"), service_account_id=account.name,
                                     role=TOKEN_CREATOR, member=args.agent_principal, opts=child_opts)
        user = gcp.sql.User(child(name, "user"), project=args.project, instance=instance.name,
                            name=iam_user_name(account.email), type="CLOUD_IAM_SERVICE_ACCOUNT",
                            deletion_policy=USER_DELETION_POLICY, opts=child_opts)
        # GCP's connectionName is `project:region:instance`; built here from the instance's
        # name so it is known wherever the name is (the offline plan's mocks compute no
        # provider outputs).
        self.connection_name = pulumi.Output.concat(args.project, ":", args.region, ":", instance.name)
        self.instance_name = instance.name
        self.database = database.name
        self.user = user.name
        self.service_account_email = pulumi.Output.from_input(account.email)
        self.register_outputs({"connection_name": self.connection_name, "instance_name": self.instance_name,
                               "database": self.database,
                               "user": self.user, "service_account_email": self.service_account_email})


def _settings(a: DatabaseSettings, network_id: pulumi.Input[str],
              allocated_range: pulumi.Input[str]) -> gcp.sql.DatabaseInstanceSettingsArgs:
    return gcp.sql.DatabaseInstanceSettingsArgs(
        tier=a.tier, edition="ENTERPRISE",
        availability_type="REGIONAL" if a.production else "ZONAL",
        disk_size=a.disk_size_gb, disk_type="PD_SSD", disk_autoresize=True,
        deletion_protection_enabled=a.production,
        ip_configuration=gcp.sql.DatabaseInstanceSettingsIpConfigurationArgs(
            ipv4_enabled=False, private_network=network_id, allocated_ip_range=allocated_range,
            ssl_mode=SSL_MODE, enable_private_path_for_google_cloud_services=False),
        database_flags=[gcp.sql.DatabaseInstanceSettingsDatabaseFlagArgs(name=IAM_AUTH_FLAG, value="on")],
        backup_configuration=gcp.sql.DatabaseInstanceSettingsBackupConfigurationArgs(
            enabled=True, start_time=BACKUP_START_TIME,
            point_in_time_recovery_enabled=a.production,
            transaction_log_retention_days=a.transaction_log_retention_days,
            backup_retention_settings=gcp.sql.DatabaseInstanceSettingsBackupConfigurationBackupRetentionSettingsArgs(
                retained_backups=a.retained_backups, retention_unit="COUNT")),
        # Sunday 04:00 UTC, on the stable track (updates land after the preview track's)
        maintenance_window=gcp.sql.DatabaseInstanceSettingsMaintenanceWindowArgs(day=7, hour=4, update_track="stable"),
    )
