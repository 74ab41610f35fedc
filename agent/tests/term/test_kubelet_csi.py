"""The kubelet stand-in's Secrets Store CSI part (kubelet.SecretVolume), on small synthetic
manifests written to tmp_path: no LiveKit, no process. The shapes follow the contract of the
GKE stack's render (a `livekit-credentials` CSI volume of driver secrets-store-gke.csi.k8s.io,
SecretProviderClass `livekit` with provider gke and a `parameters.secrets` YAML string)."""

from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from term import scenarios
from term.kubelet import (
    SECRETS_STORE_DRIVER,
    container_spec,
    mount_secret_volumes,
    secret_files,
)

MOUNT = "/var/run/secrets/livekit"
KEY_RESOURCE = "projects/p-dev/secrets/dev-livekit-api-key/versions/latest"
SECRET_RESOURCE = "projects/p-dev/secrets/dev-livekit-api-secret/versions/latest"
SECRET_MANAGER = {KEY_RESOURCE: "APIlocalkey", SECRET_RESOURCE: "local-secret-value"}


def deployment(*, env: list[dict] | None = None, spc_name: str = "livekit") -> dict:
    """The agent Deployment in the default (files) mode, reduced to what the stand-in reads."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "voice-agent", "namespace": "voice-agents"},
        "spec": {"template": {"spec": {
            "containers": [{
                "name": "agent",
                "command": ["python", "-m", "voice_agent"],
                "args": ["start"],
                "env": env if env is not None else [
                    {"name": "LIVEKIT_URL", "value": "wss://my-project.livekit.cloud"},
                    {"name": "LIVEKIT_API_KEY_FILE", "value": f"{MOUNT}/api-key"},
                    {"name": "LIVEKIT_API_SECRET_FILE", "value": f"{MOUNT}/api-secret"},
                    {"name": "AGENT_TOOL_TOKEN_DIR", "value": "/var/run/secrets/tokens"},
                ],
                "volumeMounts": [
                    {"name": "tmp", "mountPath": "/tmp"},
                    {"name": "livekit-credentials", "mountPath": MOUNT, "readOnly": True},
                ],
            }],
            "volumes": [
                {"name": "tmp", "emptyDir": {"sizeLimit": "512Mi"}},
                {"name": "livekit-credentials", "csi": {
                    "driver": SECRETS_STORE_DRIVER, "readOnly": True,
                    "volumeAttributes": {"secretProviderClass": spc_name}}},
            ],
        }}},
    }


def secret_provider_class(*, name: str = "livekit", namespace: str = "voice-agents",
                          provider: str = "gke") -> dict:
    listed = [{"resourceName": KEY_RESOURCE, "path": "api-key"},
              {"resourceName": SECRET_RESOURCE, "path": "api-secret"}]
    return {
        "apiVersion": "secrets-store.csi.x-k8s.io/v1",
        "kind": "SecretProviderClass",
        "metadata": {"name": name, "namespace": namespace},
        # a YAML string, as the provider reads it
        "spec": {"provider": provider, "parameters": {"secrets": yaml.safe_dump(listed)}},
    }


def rendered(tmp_path: Path, deploy: dict, *spcs: dict) -> Path:
    """Write the manifests as the offline plan lays them out; return the manifests dir."""
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    for index, spc in enumerate(spcs):
        (manifests / f"0{index}-secretproviderclass-{spc['metadata']['name']}.yaml").write_text(yaml.safe_dump(spc))
    (manifests / "07-deployment-voice-agent.yaml").write_text(yaml.safe_dump(deploy))
    return manifests


def test_the_provider_files_are_written_per_pod_and_the_env_points_at_them(tmp_path):
    """What the agent reads in the pod: the payload Secret Manager holds for each listed
    resourceName at <mount>/<path>; here at the pod's own copy, with the env pointed there."""
    manifests = rendered(tmp_path, deployment(), secret_provider_class())
    spec = container_spec(deployment(), {}, manifests_dir=manifests, secret_manager=SECRET_MANAGER)
    assert [(v.name, v.mount_path, dict(v.files)) for v in spec.secret_volumes] == [
        ("livekit-credentials", MOUNT, {"api-key": "APIlocalkey", "api-secret": "local-secret-value"})
    ]
    a = mount_secret_volumes(spec, tmp_path / "pod-a")
    b = mount_secret_volumes(spec, tmp_path / "pod-b")
    root = tmp_path / "pod-a" / "livekit-credentials"
    assert a["LIVEKIT_API_KEY_FILE"] == str(root / "api-key")
    assert a["LIVEKIT_API_SECRET_FILE"] == str(root / "api-secret")
    assert Path(a["LIVEKIT_API_KEY_FILE"]).read_text() == "APIlocalkey"
    assert Path(a["LIVEKIT_API_SECRET_FILE"]).read_text() == "local-secret-value"
    assert b["LIVEKIT_API_KEY_FILE"].startswith(str(tmp_path / "pod-b")), "each pod has its own mount"
    # env outside the mount is left as rendered
    assert a["AGENT_TOOL_TOKEN_DIR"] == "/var/run/secrets/tokens"
    assert a["LIVEKIT_URL"] == "wss://my-project.livekit.cloud"
    assert "LIVEKIT_API_KEY" not in a and "LIVEKIT_API_SECRET" not in a
    # the spec itself keeps the rendered paths (what the Deployment says)
    assert spec.env["LIVEKIT_API_KEY_FILE"] == f"{MOUNT}/api-key"


def test_only_the_mount_path_and_what_is_under_it_are_rewritten(tmp_path):
    """A sibling directory that merely shares the prefix is another path."""
    env = [{"name": "LIVEKIT_API_KEY_FILE", "value": f"{MOUNT}/api-key"},
           {"name": "CREDENTIALS_DIR", "value": MOUNT},
           {"name": "OTHER", "value": f"{MOUNT}-other/x"}]
    manifests = rendered(tmp_path, deployment(env=env), secret_provider_class())
    spec = container_spec(deployment(env=env), {}, manifests_dir=manifests, secret_manager=SECRET_MANAGER)
    pod = mount_secret_volumes(spec, tmp_path / "pod")
    assert pod["CREDENTIALS_DIR"] == str(tmp_path / "pod" / "livekit-credentials")
    assert pod["OTHER"] == f"{MOUNT}-other/x"


def test_the_secrets_string_is_parsed_as_yaml():
    spc = secret_provider_class()
    assert isinstance(spc["spec"]["parameters"]["secrets"], str)
    assert secret_files(spc) == {"api-key": KEY_RESOURCE, "api-secret": SECRET_RESOURCE}


def test_a_missing_secret_provider_class_fails_like_the_mount(tmp_path):
    manifests = rendered(tmp_path, deployment(spc_name="livekit-typo"), secret_provider_class())
    with pytest.raises(LookupError, match=r"volume 'livekit-credentials' mounts SecretProviderClass "
                       r"'livekit-typo', but .*manifests holds none of that name in namespace "
                       r"'voice-agents': the driver would fail the mount"):
        container_spec(deployment(spc_name="livekit-typo"), {}, manifests_dir=manifests,
                       secret_manager=SECRET_MANAGER)


def test_a_secret_provider_class_in_another_namespace_is_not_found(tmp_path):
    """The driver looks the class up in the pod's namespace only."""
    manifests = rendered(tmp_path, deployment(), secret_provider_class(namespace="default"))
    with pytest.raises(LookupError, match=r"holds none of that name in namespace 'voice-agents'"):
        container_spec(deployment(), {}, manifests_dir=manifests, secret_manager=SECRET_MANAGER)


def test_a_class_for_another_provider_is_refused(tmp_path):
    manifests = rendered(tmp_path, deployment(), secret_provider_class(provider="gcp"))
    with pytest.raises(ValueError, match=r"SecretProviderClass 'livekit' names provider 'gcp'; the "
                       r"secrets-store-gke\.csi\.k8s\.io driver serves 'gke' only"):
        container_spec(deployment(), {}, manifests_dir=manifests, secret_manager=SECRET_MANAGER)


def test_a_secret_the_imitated_secret_manager_does_not_hold_fails_the_mount(tmp_path):
    manifests = rendered(tmp_path, deployment(), secret_provider_class())
    with pytest.raises(LookupError, match=rf"lists {SECRET_RESOURCE} \(path api-secret\), which the "
                       r"imitated Secret Manager does not hold"):
        container_spec(deployment(), {}, manifests_dir=manifests,
                       secret_manager={KEY_RESOURCE: "APIlocalkey"})


def test_a_csi_volume_needs_the_manifests_dir(tmp_path):
    with pytest.raises(ValueError, match=r"mounts SecretProviderClass 'livekit': pass the manifests "
                       r"directory the Deployment was rendered into"):
        container_spec(deployment(), {}, secret_manager=SECRET_MANAGER)


def test_a_file_env_under_no_mounted_volume_is_refused(tmp_path):
    """E.g. the mountPath and the _FILE env drifted apart in the render."""
    env = [{"name": "LIVEKIT_API_KEY_FILE", "value": "/var/run/secrets/livekit-creds/api-key"}]
    manifests = rendered(tmp_path, deployment(env=env), secret_provider_class())
    with pytest.raises(ValueError, match=r"LIVEKIT_API_KEY_FILE='/var/run/secrets/livekit-creds/api-key' "
                       r"points under no volume the container mounts \(/tmp, /var/run/secrets/livekit\)"):
        container_spec(deployment(env=env), {}, manifests_dir=manifests, secret_manager=SECRET_MANAGER)


def test_a_file_env_under_a_volume_the_stand_in_does_not_write_is_refused(tmp_path):
    env = [{"name": "LIVEKIT_API_KEY_FILE", "value": "/tmp/api-key"}]
    manifests = rendered(tmp_path, deployment(env=env), secret_provider_class())
    with pytest.raises(ValueError, match=r"is under /tmp \(volume 'tmp'\), which this stand-in does "
                       r"not provide"):
        container_spec(deployment(env=env), {}, manifests_dir=manifests, secret_manager=SECRET_MANAGER)


def test_a_csi_volume_the_container_does_not_mount_is_not_read(tmp_path):
    """Only the agent container's mounts matter; a class that is not even rendered is no error."""
    deploy = deployment(env=[])
    deploy["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] = []
    spec = container_spec(deploy, {}, manifests_dir=rendered(tmp_path, deploy))
    assert spec.secret_volumes == ()


def test_a_pod_with_csi_volumes_needs_a_directory_of_its_own(tmp_path):
    manifests = rendered(tmp_path, deployment(), secret_provider_class())
    spec = container_spec(deployment(), {}, manifests_dir=manifests, secret_manager=SECRET_MANAGER)
    with pytest.raises(ValueError, match=r"the pod mounts \['livekit-credentials'\] \(Secrets Store "
                       r"CSI\): give it a directory of its own"):
        mount_secret_volumes(spec, None)


def test_the_secret_values_stay_out_of_the_spec_repr(tmp_path):
    manifests = rendered(tmp_path, deployment(), secret_provider_class())
    spec = container_spec(deployment(), {}, manifests_dir=manifests, secret_manager=SECRET_MANAGER)
    assert "local-secret-value" not in repr(spec)


# --- the LiveKit fixture's mapping (scenarios.py) -------------------------------------------

SERVER = SimpleNamespace(ws_url="ws://127.0.0.1:7880", api_key="devkey", api_secret="x" * 43)


def kubernetes_secret_deployment() -> dict:
    """The kubernetesSecret mode: all three from the `livekit` Secret, no CSI volume."""
    deploy = deployment(env=[
        {"name": name, "valueFrom": {"secretKeyRef": {"name": "livekit", "key": key}}}
        for name, key in (("LIVEKIT_URL", "url"), ("LIVEKIT_API_KEY", "api-key"),
                          ("LIVEKIT_API_SECRET", "api-secret"))
    ])
    pod = deploy["spec"]["template"]["spec"]
    pod["volumes"] = pod["volumes"][:1]
    pod["containers"][0]["volumeMounts"] = pod["containers"][0]["volumeMounts"][:1]
    return deploy


def test_files_mode_gets_the_server_credentials_as_files_and_never_as_env(tmp_path):
    """Both forms at once would make the agent refuse to start."""
    manifests = rendered(tmp_path, deployment(), secret_provider_class())
    spec = scenarios.pod_spec(SERVER, manifests / "07-deployment-voice-agent.yaml")
    assert "LIVEKIT_API_KEY" not in spec.env and "LIVEKIT_API_SECRET" not in spec.env
    assert spec.env["LIVEKIT_URL"] == SERVER.ws_url
    pod = mount_secret_volumes(spec, tmp_path / "pod")
    assert Path(pod["LIVEKIT_API_KEY_FILE"]).read_text() == "devkey"
    assert Path(pod["LIVEKIT_API_SECRET_FILE"]).read_text() == SERVER.api_secret


def test_kubernetes_secret_mode_still_gets_the_credentials_as_env(tmp_path):
    deploy = kubernetes_secret_deployment()
    manifests = rendered(tmp_path, deploy)
    spec = scenarios.pod_spec(SERVER, manifests / "07-deployment-voice-agent.yaml")
    assert spec.secret_volumes == ()
    assert {k: spec.env[k] for k in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET")} == {
        "LIVEKIT_URL": SERVER.ws_url, "LIVEKIT_API_KEY": "devkey", "LIVEKIT_API_SECRET": SERVER.api_secret}
    assert not any(name.endswith("_FILE") for name in spec.env)


def test_secret_env_the_test_does_not_supply_is_still_refused():
    deploy = kubernetes_secret_deployment()
    deploy["spec"]["template"]["spec"]["containers"][0]["env"].append(
        {"name": "OTHER_TOKEN", "valueFrom": {"secretKeyRef": {"name": "other", "key": "token"}}})
    with pytest.raises(ValueError, match=r"the Deployment reads \['OTHER_TOKEN'\] from a Secret; the "
                       r"test must supply them"):
        container_spec(deploy, {**scenarios.endpoint_overrides(SERVER),
                                **scenarios.livekit_secret_env(SERVER, deploy)})


def test_the_secret_manager_imitation_keys_on_the_rendered_resource_names(tmp_path):
    """Whatever the stack names its secrets, the one at path api-key holds the server's key."""
    spc = secret_provider_class()
    renamed = copy.deepcopy(spc)
    renamed["spec"]["parameters"]["secrets"] = spc["spec"]["parameters"]["secrets"].replace(
        "dev-livekit-api-key", "another-name")
    manifests = rendered(tmp_path, deployment(), renamed)
    assert scenarios.livekit_secret_manager(SERVER, deployment(), manifests) == {
        "projects/p-dev/secrets/another-name/versions/latest": "devkey",
        SECRET_RESOURCE: SERVER.api_secret,
    }
