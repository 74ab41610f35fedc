"""The LiveKit credentials' rules: livekit-credentials-as-files (protected stacks) and the one
secret store and the two secrets the tool rules admit for the agent (policy/rules/secrets.py,
policy/rules/tools.py). Each case starts from a real evaluated plan and changes it the way a
hand-edited program or a careless setting would."""

from __future__ import annotations

import copy
import functools

import pytest
import yaml

from k8s import livekit_secrets
from infra.names import LIVEKIT_SECRET_LABEL
from tooling.plan import evaluate
from policy.engine import evaluate_plan
from policy.rules import secrets as rules

RULE_IDS = ("livekit-credentials-as-files", "agent-mounts-no-tool-credential", "agent-identity-holds-no-tool-role")
SPC = "kubernetes:secrets-store.csi.x-k8s.io/v1:SecretProviderClass"
SECRET = "gcp:secretmanager/secret:Secret"
MEMBER = "gcp:secretmanager/secretIamMember:SecretIamMember"


@functools.lru_cache(maxsize=None)
def _evaluated(stack: str, credentials: str = "secretManager"):
    return evaluate(stack, {"gke-voice-agents:livekitCredentials": credentials})


def _resources(stack: str, credentials: str = "secretManager") -> list:
    return copy.deepcopy(_evaluated(stack, credentials).resources)


def _violations(resources, stack):
    return [(v["rule"], v["message"]) for v in evaluate_plan(resources, stack) if v["rule"] in RULE_IDS]


def _container(resources):
    deployment = next(r for r in resources if r["name"] == "agent-deployment")["inputs"]
    return deployment["spec"]["template"]["spec"]["containers"][0]


def _entries(resources) -> list:
    return yaml.safe_load(next(r for r in resources if r["type"] == SPC)["inputs"]["spec"]["parameters"]["secrets"])


def _set_entries(resources, entries) -> None:
    next(r for r in resources if r["type"] == SPC)["inputs"]["spec"]["parameters"]["secrets"] = yaml.safe_dump(entries)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_committed_stacks_pass(stack):
    assert _violations(_resources(stack), stack) == []


def test_the_kubernetes_secret_mode_passes_in_dev_only():
    """Unprotected stacks may choose the Secret; a protected one may not, and is told why."""
    assert _violations(_resources("dev", "kubernetesSecret"), "dev") == []
    found = _violations(_resources("prod", "kubernetesSecret"), "prod")
    messages = [m for rule, m in found if rule == "livekit-credentials-as-files"]
    assert {rule for rule, _ in found} == {"livekit-credentials-as-files"}
    assert any(m.startswith("env LIVEKIT_API_KEY carries a LiveKit credential (from a Secret)") for m in messages)
    assert any(m.startswith("LIVEKIT_API_SECRET_FILE is not set") for m in messages)
    assert any("no SecretProviderClass livekit is declared" in m for m in messages)
    assert all("livekitCredentials: secretManager" in m for m in messages)


def _plain_key(resources):
    _container(resources)["env"].append({"name": "LIVEKIT_API_KEY", "value": "APIsomething"})


def _file_outside_the_mount(resources):
    for e in _container(resources)["env"]:
        if e["name"] == "LIVEKIT_API_SECRET_FILE":
            e["value"] = "/tmp/api-secret"


def _mount_elsewhere(resources):
    """The volume is mounted, but not where the variables point: /var/run/secrets/livekitx is
    no prefix match for /var/run/secrets/livekit/ (boundary of the path check)."""
    for m in _container(resources)["volumeMounts"]:
        if m["name"] == "livekit-credentials":
            m["mountPath"] = "/var/run/secrets/livekitx"


def _open_source_provider(resources):
    next(r for r in resources if r["type"] == SPC)["inputs"]["spec"]["provider"] = "gcp"


def _env_from_secret(resources):
    """Every key of a Secret as env (envFrom), which is how a team's own manifest often does it."""
    _container(resources)["envFrom"] = [{"configMapRef": {"name": "agent-tuning"}}, {"secretRef": {"name": "livekit-api"}}]


@pytest.mark.parametrize(("mutate", "says"), [
    (_plain_key, "env LIVEKIT_API_KEY carries a LiveKit credential (in plain text)"),
    (_env_from_secret, "envFrom reads Secret livekit-api"),
    (_file_outside_the_mount, "LIVEKIT_API_SECRET_FILE=/tmp/api-secret is under no mounted volume"),
    (_mount_elsewhere, "LIVEKIT_API_KEY_FILE=/var/run/secrets/livekit/api-key is under no mounted volume"),
    (_open_source_provider, "its provider is 'gcp', not gke"),
])
def test_the_files_rule_fails_for_its_reason_in_prod_only(mutate, says):
    resources = _resources("prod")
    mutate(resources)
    messages = [m for rule, m in _violations(resources, "prod") if rule == "livekit-credentials-as-files"]
    assert any(says in m for m in messages), messages
    dev = _resources("dev")
    mutate(dev)
    assert [m for rule, m in _violations(dev, "dev") if rule == "livekit-credentials-as-files"] == []


def _extra_file(resources):
    _set_entries(resources, [*_entries(resources),
                             {"resourceName": "projects/p/secrets/places-key/versions/latest", "path": "places-key"}])


def _foreign_secret_as_api_key(resources):
    entries = _entries(resources)
    entries[0]["resourceName"] = "projects/p/secrets/places-key/versions/latest"
    _set_entries(resources, entries)


def _path_listed_twice(resources):
    entries = _entries(resources)
    _set_entries(resources, [*entries, entries[0]])


def _unlabelled_secret(resources):
    next(r for r in resources if r["type"] == SECRET)["inputs"]["labels"].pop(LIVEKIT_SECRET_LABEL[0])


@pytest.mark.parametrize(("mutate", "says"), [
    (_extra_file, "path 'places-key' is not one of the LiveKit files"),
    (_foreign_secret_as_api_key, "api-key comes from 'projects/p/secrets/places-key/versions/latest'"),
    (_path_listed_twice, "path api-key is listed twice"),
    (_unlabelled_secret, "lacks the label gke-voice-agents-role=livekit-credentials"),
])
def test_a_class_that_is_more_than_the_livekit_files_is_a_credential_store(mutate, says):
    """The class is then refused as a secret store in the agent pod, and the agent's read grants
    on the LiveKit secrets lose their exception too (the class no longer says what they are)."""
    resources = _resources("dev")
    mutate(resources)
    found = _violations(resources, "dev")
    mounts = [m for rule, m in found if rule == "agent-mounts-no-tool-credential"]
    assert len(mounts) == 1 and "volume livekit-credentials is a CSI volume" in mounts[0] and says in mounts[0], mounts
    grants = [m for rule, m in found if rule == "agent-identity-holds-no-tool-role"]
    assert len(grants) == 2 and all("other than its LiveKit files" in m for m in grants)


def _another_class(resources):
    spec = next(r for r in resources if r["name"] == "agent-deployment")["inputs"]["spec"]["template"]["spec"]
    volume = next(v for v in spec["volumes"] if v["name"] == "livekit-credentials")
    volume["csi"]["volumeAttributes"]["secretProviderClass"] = "places-keys"


def _admin_on_a_livekit_secret(resources):
    next(r for r in resources if r["type"] == MEMBER)["inputs"]["role"] = "roles/secretmanager.admin"


def _reader_of_another_secret(resources):
    member = copy.deepcopy(next(r for r in resources if r["type"] == MEMBER))
    member["name"], member["inputs"]["secretId"] = "agent-reads-places", "dev-places-key"
    resources.append(member)


@pytest.mark.parametrize(("mutate", "rule", "says"), [
    (_another_class, "agent-mounts-no-tool-credential", "volume livekit-credentials is a CSI volume (secrets-store-gke"),
    (_admin_on_a_livekit_secret, "agent-identity-holds-no-tool-role", "(roles/secretmanager.admin) other than its LiveKit"),
    (_reader_of_another_secret, "agent-identity-holds-no-tool-role", "(roles/secretmanager.secretAccessor) other than"),
])
def test_the_exceptions_are_exactly_the_livekit_files(mutate, rule, says):
    resources = _resources("dev")
    mutate(resources)
    found = _violations(resources, "dev")
    assert [r for r, _ in found] == [rule], found
    assert says in found[0][1]


def test_names_spelled_in_the_rules_match_their_homes():
    assert rules.ACCESSOR_ROLE == livekit_secrets.ACCESSOR_ROLE


# For tests/policy/test_rules.py: the rule's failing case from the real prod plan.
FAILING_CASES = {
    "livekit-credentials-as-files": (_plain_key, "env LIVEKIT_API_KEY carries a LiveKit credential (in plain text)"),
}


@pytest.mark.parametrize("env_from", [None, [], [{"configMapRef": {"name": "agent-tuning"}}]])
def test_env_from_without_a_secret_is_no_credential(env_from):
    """envFrom unset (null, as a rendered manifest may carry it), empty, or naming only a
    ConfigMap: nothing to report, and no error either."""
    resources = _resources("prod")
    _container(resources)["envFrom"] = env_from
    assert _violations(resources, "prod") == []
