"""How the agent container runs: one home for the command, ports, user and identity names.

The agent image (agent/Dockerfile) must agree with these; tests/k8s compares them.
"""

# Exec form, production mode. `start` drains on SIGTERM; `dev` would skip the drain.
COMMAND = ("python", "-m", "voice_agent")
ARGS = ("start",)
# The livekit-agents worker serves its health check on this port (GET / and /worker).
HEALTH_PORT = 8081
METRICS_PORT = 9100
# The agent's own probe server (agent/voice_agent/readiness.py) answers next to /metrics:
# /ready while registered with LiveKit and not draining, /live while its event loop answers.
# The framework's GET / on HEALTH_PORT stays 200 until the worker gives up on LiveKit (~130 s),
# so it is no readiness signal (DESIGN 7.5). tests/k8s checks the agent serves these paths.
METRICS_PORT_NAME = "metrics"
READY_PATH = "/ready"
LIVE_PATH = "/live"
RUN_AS_UID = 10001
RUN_AS_GID = 10001
# Kubernetes service account of the agent; infra/identity.py binds exactly this subject.
AGENT_SERVICE_ACCOUNT = "voice-agent"
CONTAINER_NAME = "agent"
# Every pod template of ours says what it is. The agent policy rules check the pods labelled
# AGENT_ROLE and no others: placeholder pods (k8s/spare_capacity.py) run no agent, and
# `python -m policy.manifests` may be handed Deployments that are not ours at all.
ROLE_LABEL = "gke-voice-agents/role"
AGENT_ROLE = "agent"
PLACEHOLDER_ROLE = "capacity-placeholder"

# Workload Identity: pods reach the metadata server at 169.254.169.254:80, which GKE serves from
# its gke-metadata-server on 169.254.169.252:988; GKE's Workload Identity docs ask network
# policies to allow the one their dataplane sees, so both are open and nothing else there.
METADATA_SERVER = ("169.254.169.254/32", 80)
GKE_METADATA_SERVER = ("169.254.169.252/32", 988)

# LiveKit credentials as files (livekitCredentials=secretManager, k8s/livekit_files.py): GKE's
# Secret Manager add-on mounts each secret at <dir>/<file>; the agent reads the path from
# <VARIABLE> (agent/voice_agent/env_declarations.py, read_secret). The policy rules recognise
# the mount by these.
LIVEKIT_FILES_DIR = "/var/run/secrets/livekit"
LIVEKIT_FILES = {"api-key": "LIVEKIT_API_KEY_FILE", "api-secret": "LIVEKIT_API_SECRET_FILE"}
LIVEKIT_SECRET_PROVIDER_CLASS = "livekit"
# The add-on's CSI driver; the open-source driver is secrets-store.csi.k8s.io (provider gcp).
SECRET_MANAGER_CSI_DRIVER = "secrets-store-gke.csi.k8s.io"
