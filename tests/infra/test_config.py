"""Config validation: every bad setting is refused before any resource, with key, value and rule."""

from __future__ import annotations

import pytest

from domain.config import parse_stack_config
from domain.settings import ConfigError
from domain.stackfiles import load_stack_values

P = "gke-voice-agents:"
SECRETS = {P + "livekitApiKey": "k", P + "livekitApiSecret": "s"}


def parse(stack: str = "dev", secrets=SECRETS, **overrides: str):
    """The stack's own values, with the secrets set as `pulumi config set --secret` would."""
    raw = {**load_stack_values(stack).config, **secrets}
    for key, value in overrides.items():
        full = key if ":" in key else P + key
        if value is None:
            raw.pop(full, None)
        else:
            raw[full] = value
    return parse_stack_config(stack, raw, tuple(secrets))


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
    ({"gcp:region": "mars-north1"}, r"gcp:region = 'mars-north1': is not a known GKE Autopilot region \(42 allowed"),
    ({"gcp:region": "us-centrl1"}, r"gcp:region = 'us-centrl1': is not a known GKE Autopilot region; did you mean us-central1\?"),
    ({"gcp:project": None}, r"gcp:project = \(not set\): is not set"),
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
    ({"maintenanceRecurrence": "weekly"}, r"maintenanceRecurrence = 'weekly': must be FREQ=DAILY or FREQ=WEEKLY;BYDAY=<days>"),
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
    ({"vertexLocation": "moon"}, r"vertexLocation = 'moon': is not a known Vertex AI location \(43 allowed"),
    ({"geminiModel": "Gemini Live!"}, r"geminiModel = 'Gemini Live!': must be a Gemini model id"),
    ({"agentLogLevel": "TRACE"}, r"agentLogLevel = 'TRACE': must be one of DEBUG, INFO, WARNING, ERROR"),
    ({"logCallIds": "on"}, r"logCallIds = 'on': must be one of off, hashed, plain"),
    ({"drainTimeoutSeconds": "10"}, r"drainTimeoutSeconds = 10: must be from 30 to 3500 s"),
    # Paths not reached by the cases above.
    ({"podCidr": "10.110.0.0/14"}, r"podCidr = '10.110.0.0/14': must be an IPv4 CIDR block .*host bits set"),
    ({"podCidr": "10.108.0.0/14"}, r"podCidr = '10.108.0.0/14': overlaps gke-voice-agents:nodeCidr = 10.110.0.0/20"),
    ({"serviceCidr": "10.112.0.0/20"}, r"serviceCidr = '10.112.0.0/20': overlaps gke-voice-agents:podCidr = 10.112.0.0/14"),
    ({"serviceCidr": "10.120.0.0/28"}, r"serviceCidr = '10.120.0.0/28': prefix length must be from /16 to /27"),
    ({"natTcpEstablishedIdleTimeoutSec": "100000"}, r"natTcpEstablishedIdleTimeoutSec = 100000: must be from 30 to 86400 s"),
    ({"natTcpTransitoryIdleTimeoutSec": "5"}, r"natTcpTransitoryIdleTimeoutSec = 5: must be from 30 to 3600 s"),
    ({"loadThreshold": "nan"}, r"loadThreshold = nan: must be in \(0.0, 1.0\]"),
    ({"loadThreshold": "high"}, r"loadThreshold = 'high': must be a number in \(0.0, 1.0\]"),
    ({"maintenanceExclusions": "{not json"}, r"maintenanceExclusions = '\{not json': must be a map of name: value"),
    ({"maintenanceExclusions": '{"peak": "2026-12-01"}'},
     r"maintenanceExclusions.peak = '2026-12-01': must be a map with start, end \(RFC 3339\) and optional scope"),
    ({"maintenanceExclusions": '{"peak": {"start": "2026-12-01T00:00:00Z"}}'},
     r"maintenanceExclusions.peak = \{'start': '2026-12-01T00:00:00Z'\}: must be a map with start, end"),
    ({"maintenanceExclusions": '{"peak": {"start": "2026-12-01T00:00:00Z", "end": "2026-12-02T00:00:00Z", "until": "x"}}'},
     r"maintenanceExclusions.peak = .*'until': 'x'.*: must be a map with start, end"),
    ({"maintenanceExclusions": '{"peak": {"start": "december", "end": "2026-12-02T00:00:00Z"}}'},
     r"maintenanceExclusions.peak.start = 'december': must be an RFC 3339 time"),
    ({"maintenanceExclusions": '{"peak": {"start": "2026-12-02T00:00:00Z", "end": "2026-12-01T00:00:00Z"}}'},
     r"maintenanceExclusions.peak.end = '2026-12-01T00:00:00Z': must be after gke-voice-agents:maintenanceExclusions.peak.start"),
    ({"controlPlaneAuthorizedNetworks": '{"anywhere": "::/0"}'},
     r"controlPlaneAuthorizedNetworks.anywhere = '::/0': opens the control plane to the whole internet"),
    ({"controlPlaneAuthorizedNetworks": '{"office": "not-a-range"}'},
     r"controlPlaneAuthorizedNetworks.office = 'not-a-range': must be a CIDR block such as 203.0.113.0/24"),
    ({"controlPlaneAuthorizedNetworks": '"203.0.113.0/24"'}, r"controlPlaneAuthorizedNetworks = '\"203.0.113.0/24\"': must be a map"),
    ({"registryUntaggedRetentionDays": "400"}, r"registryUntaggedRetentionDays = 400: must be from 1 to 365 days"),
    ({"agentImageName": "Voice Agent"}, r"agentImageName = 'Voice Agent': must be a lower-case image name"),
    ({"hpaMinReplicas": "0"}, r"hpaMinReplicas = 0: must be from 1 to 100"),
    ({"spareCapacityPods": "-1"}, r"spareCapacityPods = -1: must be from 0 to 50 pods"),
    ({"placesImageDigest": "sha256:abc"}, r"placesImageDigest = 'sha256:abc': must be empty or sha256: followed by 64"),
    ({"binaryAuthorizationAttestor": "built-by-ci"},
     r"binaryAuthorizationAttestor = 'built-by-ci': must be empty or an attestor's resource name projects/<project>/attestors/<id>"),
    ({"binaryAuthorizationAttestor": "projects/my-ci-project/attestors/built-by-ci", "binaryAuthorization": "false"},
     r"binaryAuthorizationAttestor = 'projects/my-ci-project/attestors/built-by-ci': requires binaryAuthorization true"),
])
def test_each_bad_setting_is_named_with_value_and_rule(overrides, pattern):
    with pytest.raises(ConfigError, match=pattern):
        parse("dev", **overrides)


def test_missing_secrets_name_the_command_that_sets_them():
    raw = {k: v for k, v in load_stack_values("dev").config.items() if k not in SECRETS}
    with pytest.raises(ConfigError, match=r"livekitApiKey = \(not set\): is not set; run `pulumi config set --secret livekitApiKey"):
        parse_stack_config("dev", raw, ())


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
    from domain.stackfiles import project_declarations

    for key, declaration in project_declarations().items():
        if declaration.get("secret"):
            continue
        with pytest.raises(ConfigError, match=rf"{key} = \(not set\): is not set"):
            parse("dev", **{key: None})


def test_cross_setting_rules_run_only_once_every_single_value_is_valid():
    """A cross-setting rule fed a half-parsed config would report noise on top of the real
    problem, so parse_stack_config calls it only when no single setting failed."""
    from domain.settings import Problem

    calls = []

    def rule(workload):
        calls.append(workload.size)
        return [Problem(P + "hpaTargetCpuUtilization", workload.hpa.target_cpu_utilization, "cross-rule says no")]

    raw = {**load_stack_values("dev").config, **SECRETS}
    with pytest.raises(ConfigError, match=r"hpaTargetCpuUtilization = 50: cross-rule says no"):
        parse_stack_config("dev", raw, tuple(SECRETS), size_names=("S", "M", "L"), workload_rules=rule)
    assert calls == ["S"]
    with pytest.raises(ConfigError) as caught:
        parse_stack_config("dev", {**raw, "gcp:region": "nowhere"}, tuple(SECRETS), size_names=("S", "M", "L"),
                           workload_rules=rule)
    assert calls == ["S"], "the cross-setting rule ran although a single value was invalid"
    assert [p.key for p in caught.value.problems] == ["gcp:region"]


def test_the_real_cross_setting_rules_are_wired_in():
    """Without an injected rule, parse_stack_config applies domain.capacity's workload rules: an
    HPA target every pod reaches only after it reports itself full is refused before any
    resource exists. (The wording of that rule belongs to tests/k8s.)"""
    with pytest.raises(ConfigError, match=r"hpaTargetCpuUtilization = 95: .*loadThreshold 0.7"):
        parse("dev", hpaTargetCpuUtilization="95", cpuBursting="false")


def test_unquoted_timestamps_in_a_stack_file_stay_rfc3339(tmp_path):
    """YAML turns an unquoted 2026-12-15T00:00:00Z into a datetime; the Pulumi CLI keeps the
    text. The offline loader must hand the program the text, as written."""
    import shutil
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    shutil.copy(root / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    (tmp_path / "Pulumi.dev.yaml").write_text((root / "tests/fixtures/stacks/Pulumi.dev.yaml").read_text() + (
        "  gke-voice-agents:maintenanceStartTime: 2026-01-03T01:00:00Z\n"
        "  gke-voice-agents:maintenanceExclusions:\n"
        "    launch: {start: 2026-03-01T00:00:00Z, end: 2026-03-08T00:00:00Z, scope: NO_MINOR_UPGRADES}\n"))
    values = load_stack_values("dev", tmp_path, stack_dir=tmp_path).config
    assert values[P + "maintenanceStartTime"] == "2026-01-03T01:00:00Z"
    cfg = parse_stack_config("dev", {**values, **SECRETS}, tuple(SECRETS))
    assert cfg.cluster.maintenance_exclusions["launch"].start == "2026-03-01T00:00:00Z"
