"""gke-voice-agents: wires the platform and the agent workload together. Nothing else."""

import pulumi

from infra.binauthz import AdmissionPolicy, AdmissionPolicyArgs
from infra.cluster import AutopilotCluster, AutopilotClusterArgs
from domain.config import load_stack_config
from infra.checkpoint_key import CheckpointKey, CheckpointKeyArgs
from infra.database import AgentDatabase, AgentDatabaseArgs
from infra.encryption import SecretsKey, SecretsKeyArgs
from infra.identity import AgentIdentity, AgentIdentityArgs
from k8s.livekit_secrets import LiveKitSecrets, LiveKitSecretsArgs
from infra.monitoring import AgentMonitoring, AgentMonitoringArgs
from infra.network import VpcNetwork, VpcNetworkArgs
from infra.notifications import UpgradeNotifications, UpgradeNotificationsArgs
from infra.registry import AgentRegistry, AgentRegistryArgs
from infra.tool_identity import ToolIdentity, ToolIdentityArgs
from k8s.provider import cluster_provider
from k8s.tool_server import ToolServer, ToolServerArgs, app_name, cluster_issuer
from k8s.runtime import AGENT_SERVICE_ACCOUNT
from k8s.metrics_adapter import IMAGE as METRICS_ADAPTER_IMAGE, MetricsAdapter, MetricsAdapterArgs
from k8s.spare_capacity import CAPACITY_BUFFER_MIN_VERSION, PAUSE_IMAGE, SpareCapacity, SpareCapacityArgs
from k8s.workload import AgentWorkload, AgentWorkloadArgs, image_reference, outside_agent_image
from infra.images import IMAGES, reference as image_at
from k8s.cloudsql_proxy import IMAGE as CLOUDSQL_PROXY_IMAGE, CheckpointDatabase

cfg = load_stack_config()

network = VpcNetwork("network", VpcNetworkArgs(project=cfg.project, region=cfg.region, settings=cfg.network))
notifications = (UpgradeNotifications("upgrades", UpgradeNotificationsArgs(project=cfg.project, stack=cfg.stack))
                 if cfg.cluster.upgrade_notifications else None)
secrets_key = (SecretsKey("secrets-key", SecretsKeyArgs(project=cfg.project, region=cfg.region, stack=cfg.stack))
               if cfg.cluster.secrets_encryption else None)
cluster = AutopilotCluster("gke", AutopilotClusterArgs(
    project=cfg.project, region=cfg.region, stack=cfg.stack,
    network_id=network.network_id, subnet_id=network.subnet_id,
    pod_range_name=network.pod_range_name, service_range_name=network.service_range_name,
    settings=cfg.cluster,
    notification_topic=notifications.topic_id if notifications else None,
    secrets_key=secrets_key.key_id if secrets_key else None,
    # CapacityBuffer is served only from this GKE version on: the cluster is pinned to it.
    min_master_version=(CAPACITY_BUFFER_MIN_VERSION if cfg.workload.spare_capacity_pods
                        and cfg.workload.spare_capacity_mode == "capacityBuffer" else None)))
registry = AgentRegistry("registry", AgentRegistryArgs(
    project=cfg.project, region=cfg.region, stack=cfg.stack, settings=cfg.registry,
    reader_member=cluster.node_service_account_member))
if cfg.cluster.binary_authorization:
    AdmissionPolicy("admission", AdmissionPolicyArgs(
        project=cfg.project, registry_url=registry.url, attestor=cfg.cluster.binary_authorization_attestor,
        outside_images=outside_agent_image(cfg.workload),
        platform_images=(METRICS_ADAPTER_IMAGE,
                         *((PAUSE_IMAGE,) if cfg.workload.spare_capacity_pods else ()),
                         *((CLOUDSQL_PROXY_IMAGE,) if cfg.workload.recovery_enabled else ()))))
identity = AgentIdentity("agent-identity", AgentIdentityArgs(
    project=cfg.project, namespace=cfg.workload.namespace, service_account=AGENT_SERVICE_ACCOUNT,
    workload_pool=cluster.workload_pool))

# Crash recovery (docs/recovery.md): the checkpoint database, its IAM database user (a service
# account only the agent's principal may impersonate), the KMS key only the agent's principal
# may use to seal the checkpoints, and what the agent's pod needs of them.
database_args = AgentDatabaseArgs(
    project=cfg.project, region=cfg.region, stack=cfg.stack, network_id=network.network_id,
    agent_principal=identity.principal, settings=cfg.database)
database = AgentDatabase("checkpoints", database_args) if cfg.workload.recovery_enabled else None
checkpoint_key = (CheckpointKey("checkpoint-key", CheckpointKeyArgs(
    project=cfg.project, region=cfg.region, stack=cfg.stack, agent_principal=identity.principal))
    if database else None)
checkpoint = (CheckpointDatabase(
    connection_name=database.connection_name, service_account_email=database.service_account_email,
    user=database.user, database=database.database,
    private_range_cidr=database_args.private_range_cidr, kms_key=checkpoint_key.key_id)
    if database and checkpoint_key else None)

# The LiveKit key and secret: Secret Manager secrets only the agent's principal reads, mounted
# as files by the cluster's add-on; or, where a stack opts out, a Kubernetes Secret.
livekit_secrets = (LiveKitSecrets("livekit", LiveKitSecretsArgs(
    project=cfg.project, region=cfg.region, stack=cfg.stack, agent_principal=identity.principal,
    api_key=cfg.livekit_api_key, api_secret=cfg.livekit_api_secret, protected=cfg.cluster.deletion_protection))
    if cfg.workload.livekit_credentials == "secretManager" else None)

provider = cluster_provider("gke-k8s", cluster.kubeconfig, cluster.name)
workload = AgentWorkload(
    "agent",
    AgentWorkloadArgs(
        settings=cfg.workload,
        image=image_reference(registry.url, cfg.workload),
        gcp_project=cfg.project,
        livekit_files=livekit_secrets.files if livekit_secrets else None,
        livekit_api_key=None if livekit_secrets else cfg.livekit_api_key,
        livekit_api_secret=None if livekit_secrets else cfg.livekit_api_secret,
        database=checkpoint,
        tools=("places",) if cfg.tool_server.places_enabled else (),
    ),
    # Pods need their Vertex AI grant and the nodes their image pull grant before they start.
    # The Auth Proxy sidecar must find its instance and its grant, or it holds the agent back;
    # the credential files their secrets and the agent's right to read them.
    opts=pulumi.ResourceOptions(provider=provider, depends_on=[
        identity, registry, *([database, checkpoint_key] if database and checkpoint_key else []),
        *([livekit_secrets] if livekit_secrets else [])]),
)

# The HPA's calls metric: Managed Prometheus through the Custom Metrics Stackdriver Adapter,
# with its own Workload Identity principal and roles/monitoring.viewer only.
MetricsAdapter("metrics-adapter", MetricsAdapterArgs(
    project=cfg.project, workload_pool=cluster.workload_pool, provider=provider))

# Seed 001's runbook as code: the dashboard and alert policies over the agents' metrics
# (domain/runbook.py holds every PromQL expression; tooling/rollout_check.py asks the same).
AgentMonitoring("monitoring", AgentMonitoringArgs(project=cfg.project, stack=cfg.stack,
                                                 latency_alert_p95_seconds=cfg.latency_alert_p95_seconds))

if cfg.workload.spare_capacity_pods:
    SpareCapacity("spare", SpareCapacityArgs(settings=cfg.workload),
                  opts=pulumi.ResourceOptions(provider=provider, depends_on=[workload]))

if cfg.tool_server.places_enabled:
    # Its own Google service account with its own role (Places takes no federated token,
    # infra/tool_identity.py); the agent's identity gains nothing.
    places_identity = ToolIdentity("places-identity", ToolIdentityArgs(
        project=cfg.project, stack=cfg.stack, tool="places", namespace=cfg.workload.namespace,
        service_account=app_name("places"),
        workload_pool=cluster.workload_pool))
    places = ToolServer(
        "places",
        ToolServerArgs(
            name="places", namespace=cfg.workload.namespace, project=cfg.project,
            image=image_at(registry.url, IMAGES["places"], cfg.tool_server.places_image_digest, cfg.workload.image_tag),
            issuer=pulumi.Output.all(cluster.name, cluster.location).apply(
                lambda nl: cluster_issuer(cfg.project, nl[1], nl[0])),
            replicas=cfg.tool_server.places_replicas,
            google_service_account=places_identity.email),
        opts=pulumi.ResourceOptions(provider=provider, depends_on=[workload, places_identity]))
    pulumi.export("placesToolUrl", places.url)
    pulumi.export("placesToolServiceAccount", places_identity.email)

pulumi.export("clusterName", cluster.name)
pulumi.export("clusterLocation", cluster.location)
pulumi.export("clusterDnsEndpoint", cluster.dns_endpoint)
pulumi.export("registryUrl", registry.url)
pulumi.export("kubeconfig", cluster.kubeconfig)
pulumi.export("agentPrincipal", identity.principal)
pulumi.export("nodeServiceAccount", cluster.node_service_account_email)
pulumi.export("agentNamespace", workload.namespace)
# The release the stack runs: deploy.yml reads it to refuse a run older than what is deployed.
pulumi.export("agentImageTag", cfg.workload.image_tag)
if database:
    # README "Going to `pulumi up`": the one-time GRANT names this instance and this user.
    pulumi.export("checkpointDatabaseInstance", database.instance_name)
    pulumi.export("checkpointDatabaseUser", database.user)
