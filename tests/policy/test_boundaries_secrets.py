"""The LiveKit secrets' label through every way it can be wrong, and the SecretProviderClass
entries at the edges of their patterns (policy/rules/secrets.py). Each case starts from the real
prod plan (livekitCredentials: secretManager) and changes one thing; the label is read from its
home (infra/names.py), never spelled here."""

from __future__ import annotations

import copy
import functools

import pytest
import yaml

from infra.names import LIVEKIT_SECRET_LABEL
from tooling.plan import evaluate
from policy.engine import evaluate_plan

SPC = "kubernetes:secrets-store.csi.x-k8s.io/v1:SecretProviderClass"
SECRET = "gcp:secretmanager/secret:Secret"
KEY, VALUE = LIVEKIT_SECRET_LABEL


@functools.lru_cache(maxsize=None)
def _evaluated():
    return evaluate("prod", {"gke-voice-agents:livekitCredentials": "secretManager"})


def _resources() -> list:
    return copy.deepcopy(_evaluated().resources)


def _files_rule(resources) -> list[str]:
    return [v["message"] for v in evaluate_plan(resources, "prod") if v["rule"] == "livekit-credentials-as-files"]


def _labels(resources) -> list[dict]:
    return [r["inputs"].setdefault("labels", {}) for r in resources if r["type"] == SECRET]


def test_both_secrets_carry_the_label_in_the_plan():
    resources = _resources()
    assert [labels.get(KEY) for labels in _labels(resources)] == [VALUE, VALUE]
    assert _files_rule(resources) == []


@pytest.mark.parametrize("break_label", [
    pytest.param(lambda labels: labels.update({KEY: VALUE + "-old"}), id="wrong-value"),
    pytest.param(lambda labels: labels.update({KEY: VALUE.upper()}), id="wrong-case"),
    pytest.param(lambda labels: labels.update({KEY + "x": labels.pop(KEY)}), id="wrong-key"),
    pytest.param(lambda labels: labels.pop(KEY), id="absent"),
    pytest.param(lambda labels: labels.clear(), id="no-labels"),
])
def test_a_livekit_secret_without_exactly_the_label_is_refused(break_label):
    resources = _resources()
    first = next(r for r in resources if r["type"] == SECRET)
    break_label(first["inputs"]["labels"])
    secret_id = first["inputs"]["secretId"]
    [message] = _files_rule(resources)
    assert f"secret {secret_id} lacks the label {KEY}={VALUE}" in message


def test_a_secret_the_stack_does_not_declare_is_checked_by_name_only():
    """`python -m policy.manifests` sees no GCP resources: the names and paths still hold."""
    resources = [r for r in _resources() if r["type"] != SECRET]
    assert _files_rule(resources) == []


def _entries(resources) -> list:
    return yaml.safe_load(next(r for r in resources if r["type"] == SPC)["inputs"]["spec"]["parameters"]["secrets"])


def _set_entries(resources, entries) -> None:
    next(r for r in resources if r["type"] == SPC)["inputs"]["spec"]["parameters"]["secrets"] = yaml.safe_dump(entries)


@pytest.mark.parametrize(("change", "says"), [
    (lambda e: e.update(resourceName=e["resourceName"] + "/extra"), "not from a LiveKit secret version"),
    (lambda e: e.update(resourceName=e["resourceName"].replace("/versions/", "/version/")), "not from a LiveKit secret version"),
    (lambda e: e.update(path="api-key.txt"), "path 'api-key.txt' is not one of the LiveKit files"),
    (lambda e: e.update(fileName=e.pop("path")), None),  # the add-on accepts fileName as the older spelling
])
def test_entry_patterns_at_their_edges(change, says):
    resources = _resources()
    entries = _entries(resources)
    change(entries[0])
    _set_entries(resources, entries)
    found = _files_rule(resources)
    if says is None:
        assert found == []
    else:
        assert len(found) == 1 and says in found[0], found


@pytest.mark.parametrize(("text", "says"), [
    ("[not: a list", "its parameters.secrets is not a YAML list"),
    ("a: mapping", "its parameters.secrets is not a YAML list"),
    ("- just-a-string", "entry 'just-a-string' is not a mapping"),
])
def test_secrets_that_are_not_a_list_of_mappings(text, says):
    resources = _resources()
    next(r for r in resources if r["type"] == SPC)["inputs"]["spec"]["parameters"]["secrets"] = text
    assert any(says in m for m in _files_rule(resources))


def test_an_unprotected_stack_is_not_held_to_it():
    resources = _resources()
    _labels(resources)[0].clear()
    config = {"livekit-credentials-as-files": {"protected": False}}
    assert [v for v in evaluate_plan(resources, "prod", config) if v["rule"] == "livekit-credentials-as-files"] == []
    assert _files_rule(resources) != []
