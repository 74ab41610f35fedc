"""Config validation: every bad setting is refused before any resource, with key, value and rule."""

from __future__ import annotations

import pulumi
import pytest

from infra.config import ConfigError, parse_stack_config
from infra.stackfiles import load_stack_values

P = "gke-voice-agents:"
SECRETS = {"livekitApiKey": pulumi.Output.secret("k"), "livekitApiSecret": pulumi.Output.secret("s")}


def parse(stack: str = "dev", secrets=SECRETS, **overrides: str):
    raw = dict(load_stack_values(stack).config)
    for key, value in overrides.items():
        full = key if ":" in key else P + key
        if value is None:
            raw.pop(full, None)
        else:
            raw[full] = value
    return parse_stack_config(stack, raw, secrets)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_committed_stacks_parse(stack):
    cfg = parse(stack)
    assert cfg.stack == stack and cfg.region == "us-central1"


def test_prod_differs_where_prod_should():
    dev, prod = parse("dev"), parse("prod")
    assert (dev.cluster.deletion_protection, prod.cluster.deletion_protection) == (False, True)
    assert (dev.cluster.release_channel, prod.cluster.release_channel) == ("RAPID", "REGULAR")
    assert prod.workload.hpa.min_replicas >= 3 > dev.workload.hpa.min_replicas
    assert set(prod.cluster.maintenance_exclusions) == {"year-end-peak"}


@pytest.mark.parametrize("overrides, pattern", [
    ({"gcp:project": "Bad_Project"}, r"gcp:project = 'Bad_Project': must be a GCP project id"),
    ({"gcp:region": "mars-north1"}, r"gcp:region = 'mars-north1': must be one of .*us-central1"),
    ({"gcp:project": None}, r"gcp:project = None: is not set"),
    ({"nodeCidr": "10.0.0.0/33"}, r"nodeCidr = '10.0.0.0/33': must be an IPv4 CIDR"),
    ({"nodeCidr": "10.0.0.1/20"}, r"nodeCidr = '10.0.0.1/20': must be an IPv4 CIDR"),
    ({"nodeCidr": "8.8.0.0/20"}, r"nodeCidr = '8.8.0.0/20': must be a private"),
    ({"podCidr": "10.112.0.0/24"}, r"podCidr = '10.112.0.0/24': prefix length must be from /9 to /21"),
    ({"serviceCidr": "10.110.0.0/24"}, r"serviceCidr = '10.110.0.0/24': overlaps gke-voice-agents:nodeCidr"),
    ({"natMinPortsPerVm": "10"}, r"natMinPortsPerVm = 10: must be from 64 to 65536 ports"),
    ({"natUdpIdleTimeoutSec": "abc"}, r"natUdpIdleTimeoutSec = 'abc': must be a whole number"),
    ({"releaseChannel": "NIGHTLY"}, r"releaseChannel = 'NIGHTLY': must be one of RAPID, REGULAR, STABLE, EXTENDED"),
    ({"deletionProtection": "yes"}, r"deletionProtection = 'yes': must be true or false"),
    ({"maintenanceStartTime": "saturday"}, r"maintenanceStartTime = 'saturday': must be an RFC 3339 time"),
    ({"maintenanceEndTime": "2026-01-03T04:00:00Z"}, r"maintenanceEndTime = '2026-01-03T04:00:00Z': the window .* at least 4:00:00"),
    ({"maintenanceEndTime": "2026-01-02T04:00:00Z"}, r"maintenanceEndTime = '2026-01-02T04:00:00Z': must be after"),
    ({"maintenanceRecurrence": "weekly"}, r"maintenanceRecurrence = 'weekly': must be an RFC 5545 RRULE"),
    ({"maintenanceExclusions": '{"peak": {"start": "2026-12-01T00:00:00Z", "end": "2027-02-01T00:00:00Z"}}'},
     r"maintenanceExclusions.peak.end = '2027-02-01T00:00:00Z': a NO_UPGRADES exclusion may last at most 30 days"),
    ({"maintenanceExclusions": '{"peak": {"start": "2026-12-01T00:00:00Z", "end": "2026-12-02T00:00:00Z", "scope": "NEVER"}}'},
     r"maintenanceExclusions.peak.scope = 'NEVER': must be one of NO_UPGRADES"),
    ({"maintenanceExclusions": '{"Peak_1": {"start": "2026-12-01T00:00:00Z", "end": "2026-12-02T00:00:00Z"}}'},
     r"maintenanceExclusions.Peak_1 = 'Peak_1': exclusion names must be lower-case"),
    ({"maintenanceExclusions": '["a"]'}, r"maintenanceExclusions = '\[\"a\"\]': must be a map"),
    ({"controlPlaneAuthorizedNetworks": '{"anywhere": "0.0.0.0/0"}'},
     r"controlPlaneAuthorizedNetworks.anywhere = '0.0.0.0/0': opens the control plane to the whole internet"),
    ({"controlPlaneAuthorizedNetworks": '{"office": "203.0.113.7/24"}'},
     r"controlPlaneAuthorizedNetworks.office = '203.0.113.7/24': must be a CIDR block"),
    ({"registryKeepRecent": "0"}, r"registryKeepRecent = 0: must be from 1 to 1000 versions"),
    ({"agentNamespace": "Voice_Agents"}, r"agentNamespace = 'Voice_Agents': must be a DNS label"),
    ({"agentImageTag": "bad tag"}, r"agentImageTag = 'bad tag': must be a Docker tag"),
    ({"agentImageDigest": "sha256:abc"}, r"agentImageDigest = 'sha256:abc': must be empty or sha256:"),
    ({"agentSize": "XXL"}, r"agentSize = 'XXL': must be one of S, M, L"),
    ({"loadThreshold": "0"}, r"loadThreshold = 0.0: must be in \(0.0, 1.0\]"),
    ({"loadThreshold": "1.5"}, r"loadThreshold = 1.5: must be in \(0.0, 1.0\]"),
    ({"hpaMinReplicas": "5", "hpaMaxReplicas": "3"}, r"hpaMinReplicas = 5: must not exceed gke-voice-agents:hpaMaxReplicas = 3"),
    ({"hpaTargetCpuUtilization": "120"}, r"hpaTargetCpuUtilization = 120: must be from 10 to 95 %"),
    ({"hpaScaleDownPeriodSeconds": "3600"}, r"hpaScaleDownPeriodSeconds = 3600: must be from 1 to 1800 s"),
    ({"livekitUrl": "https://lk.example.com"}, r"livekitUrl = 'https://lk.example.com': must be a ws:// or wss:// URL"),
    ({"vertexLocation": "moon"}, r"vertexLocation = 'moon': must be one of"),
    ({"geminiModel": "Gemini Live!"}, r"geminiModel = 'Gemini Live!': must be a Gemini model id"),
    ({"agentLogLevel": "TRACE"}, r"agentLogLevel = 'TRACE': must be one of DEBUG, INFO, WARNING, ERROR"),
    ({"drainTimeoutSeconds": "10"}, r"drainTimeoutSeconds = 10: must be from 30 to 86400 s"),
])
def test_each_bad_setting_is_named_with_value_and_rule(overrides, pattern):
    with pytest.raises(ConfigError, match=pattern):
        parse("dev", **overrides)


def test_missing_secrets_name_the_command_that_sets_them():
    with pytest.raises(ConfigError, match=r"livekitApiKey = None: is not set; run `pulumi config set --secret livekitApiKey"):
        parse("dev", secrets={})


def test_all_problems_are_reported_at_once_one_per_line():
    with pytest.raises(ConfigError) as caught:
        parse("dev", **{"gcp:region": "nowhere", "agentSize": "XXL", "hpaTargetCpuUtilization": "5"})
    assert len(caught.value.problems) == 3
    lines = str(caught.value).splitlines()
    assert lines[0] == "invalid stack configuration (3 problem(s)):"
    assert [line.split(" = ")[0].strip("- ").strip() for line in lines[1:]] == [
        "gcp:region", "gke-voice-agents:agentSize", "gke-voice-agents:hpaTargetCpuUtilization"]


def test_authorized_networks_are_kept_by_name():
    cfg = parse("dev", controlPlaneAuthorizedNetworks='{"office": "203.0.113.0/24", "ci": "198.51.100.0/28"}')
    assert cfg.cluster.authorized_networks == {"ci": "198.51.100.0/28", "office": "203.0.113.0/24"}


def test_every_setting_pulumi_yaml_declares_is_read_and_required():
    """Pulumi.yaml is the one list of settings: each declared key must reach the parser (which
    reports it missing when absent), so a declared-but-ignored setting cannot slip in."""
    from infra.stackfiles import project_declarations

    for key, declaration in project_declarations().items():
        if declaration.get("secret"):
            continue
        with pytest.raises(ConfigError, match=rf"{key} = None: is not set"):
            parse("dev", **{key: None})
