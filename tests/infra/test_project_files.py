"""The files the Pulumi CLI reads before it runs anything: Pulumi.yaml against Pulumi's own
published project schema (vendored at the pinned SDK version, tests/schemas/SOURCES.md) and
PulumiPolicy.yaml against the fields the CLI's PolicyPackProject struct has (pulumi/pulumi
publishes no schema for it at v3.272.0). Issue 19, item 2: `loadThreshold: {type: number}`
passed every test here while the real CLI would refuse the project file."""

from __future__ import annotations

import copy

import yaml

from domain.stackfiles import project_declarations
from tests.ci.project_schema import ROOT, document_errors, project_file_errors

# sdk/go/common/workspace/project.go, type PolicyPackProject (v3.272.0): yaml field names.
POLICY_PACK_FIELDS = {"runtime", "version", "main", "description", "author", "website", "license"}


def test_the_main_project_file_is_valid_for_the_cli():
    assert project_file_errors(ROOT / "Pulumi.yaml") == []


def test_a_number_type_is_what_the_cli_would_refuse():
    """Negative control: the declaration as it stood, put back into today's file."""
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    broken = copy.deepcopy(project)
    broken["config"]["loadThreshold"] = {"type": "number", "default": 0.7}
    assert any(e.startswith("#/config/loadThreshold") for e in document_errors(broken))


def test_load_threshold_is_declared_as_a_string_and_read_as_a_number():
    declaration = project_declarations()["gke-voice-agents:loadThreshold"]
    assert declaration["type"] == "string" and declaration["default"] == "0.7"
    from tooling.plan import evaluate

    env = {e["name"]: e.get("value") for e in evaluate("dev").named("agent-deployment")["inputs"]["spec"]["template"]
           ["spec"]["containers"][0]["env"]}
    assert env["AGENT_LOAD_THRESHOLD"] == "0.7"


def test_the_policy_pack_project_file_has_only_fields_the_cli_reads():
    pack = yaml.safe_load((ROOT / "policy" / "PulumiPolicy.yaml").read_text())
    assert isinstance(pack, dict) and pack.get("runtime"), "the CLI's PolicyPackProject.Validate() requires a runtime"
    assert set(pack) <= POLICY_PACK_FIELDS, set(pack) - POLICY_PACK_FIELDS
    runtime = pack["runtime"]
    name = runtime if isinstance(runtime, str) else runtime.get("name")
    assert name == "python"
    assert (ROOT / "policy" / "__main__.py").is_file()
