"""The agent's LiveKit credentials as files (livekitCredentials=secretManager).

GKE's Secret Manager add-on (a managed Secrets Store CSI driver with Google's provider) mounts
each Secret Manager secret a SecretProviderClass lists into the pod's volume, as a file in
memory; the pod's own Workload Identity principal reads them (k8s/livekit_secrets.py grants it
exactly these two secrets). So the key and secret are in no pod spec (which anyone who may read
the Deployment sees), no Kubernetes Secret and no etcd. (Inside the container livekit-agents
1.8.9 exports them to its job processes' environment, worker.py; that is the framework's.)

The add-on reads `parameters.secrets` as a YAML list of {resourceName, path}; the provider it
derives from parses it so (GoogleCloudPlatform/secrets-store-csi-driver-provider-gcp v1.7.0,
config/config.go, `Secret`), and its examples name the provider `gke` and the driver
secrets-store-gke.csi.k8s.io (Secret Manager docs, "Use Secret Manager add-on with GKE").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import yaml

from k8s import runtime

VOLUME = "livekit-credentials"
# On the pod template: a rotation (a new secret version) changes it, so the Deployment rolls out
# new pods that mount the new version while the old ones drain with the credentials they hold.
REVISION_ANNOTATION = "gke-voice-agents/livekit-credentials-revision"


@dataclass(frozen=True)
class LiveKitFiles:
    project: str
    # file (runtime.LIVEKIT_FILES) -> Secret Manager secret id in `project`
    secret_ids: Mapping[str, str]
    # The secret versions the pods read, e.g. "1-1"; a rotation changes it.
    revision: pulumi.Input[str]


def secret_provider_class_spec(files: LiveKitFiles) -> dict:
    # `latest`, not a pinned version: a pod started after a rotation reads the new value, and the
    # revision annotation makes sure new pods are started (each reads its files once at start).
    secrets = [{"resourceName": f"projects/{files.project}/secrets/{files.secret_ids[name]}/versions/latest",
                "path": name} for name in runtime.LIVEKIT_FILES]
    return {"provider": "gke", "parameters": {"secrets": yaml.safe_dump(secrets, sort_keys=False)}}


def volume() -> dict:
    return {"name": VOLUME, "csi": {"driver": runtime.SECRET_MANAGER_CSI_DRIVER, "readOnly": True,
                                    "volumeAttributes": {"secretProviderClass": runtime.LIVEKIT_SECRET_PROVIDER_CLASS}}}


def mount() -> dict:
    return {"name": VOLUME, "mountPath": runtime.LIVEKIT_FILES_DIR, "readOnly": True}


def env(livekit_url: str) -> list[dict]:
    """The URL is no secret; the key and secret are paths (agent/voice_agent/env_declarations.py)."""
    return [{"name": "LIVEKIT_URL", "value": livekit_url},
            *({"name": variable, "value": f"{runtime.LIVEKIT_FILES_DIR}/{name}"}
              for name, variable in runtime.LIVEKIT_FILES.items())]
