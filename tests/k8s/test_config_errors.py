"""Every workload configuration error stops the program before any resource is declared, and
says which key, which value, what breaks and what to use instead.

Each case evaluates the real program (__main__.py) under mocks with one stack's settings
overridden; only GCP and the cluster are fake.
"""

from __future__ import annotations

import pytest

from domain.settings import ConfigError
from tooling.mocks import RecordingMocks
from domain.capacity import CPU_PER_SESSION_M
from domain.sizes import SIZES, Size
from tests.k8s.rendered import plan_with

CASES = {
    # single values checked by the config loader, named in issue 3
    "unknown size": ("dev", {"agentSize": "XL"}, r"agentSize = 'XL': must be one of S, M, L"),
    "HPA min above max": ("prod", {"hpaMinReplicas": "25"},
                          r"hpaMinReplicas = 25: must not exceed gke-voice-agents:hpaMaxReplicas = 20"),
    # cross-setting rules from domain/capacity.py
    "seed 000 target without bursting": (
        "prod", {"hpaTargetCpuUtilization": "75"},
        r"hpaTargetCpuUtilization = 75: at this target each pod's worker load reaches 0\.83 \(target x request/limit x 1\.1 "
        r"tolerance, request 2000m, limit 2000m\) >= loadThreshold 0\.7: pods report full before the HPA adds any, "
        r"and new callers wait; use at most 63"),
    "target too high even with bursting": (
        "dev", {"hpaTargetCpuUtilization": "95"},
        r"hpaTargetCpuUtilization = 95: .*reaches 0\.75 .*request 1000m, limit 1400m\) >= loadThreshold 0\.7: .*use at most 89"),
    "target against a lower threshold": (
        "prod", {"loadThreshold": "0.5"},
        r"hpaTargetCpuUtilization = 50: .*reaches 0\.55 .*>= loadThreshold 0\.5: .*use at most 45"),
    "drain shorter than the longest call": (
        "dev", {"drainTimeoutSeconds": "600"},
        r"drainTimeoutSeconds = 600: is shorter than maxSessionMinutes = 15 \(900 s\): every rollout and scale-down "
        r"would cut the longest calls after 600 s; raise drainTimeoutSeconds to at least 900"),
    "framework default drain beyond the node-upgrade cap": (
        "prod", {"drainTimeoutSeconds": "3600"},
        r"drainTimeoutSeconds = 3600: must be from 30 to 3500 s \(GKE node upgrades honour at most 3600 s of grace, "
        r"100 s of which the worker needs to shut down after its drain\)"),
    "drain one second beyond the cap": (
        "prod", {"drainTimeoutSeconds": "3501"}, r"drainTimeoutSeconds = 3501: must be from 30 to 3500 s"),
    "calls longer than any drain can carry": (
        # Issue 19: 120 minutes once asked for a drain of 7200 s that the next rule refused.
        "prod", {"maxSessionMinutes": "120"},
        r"maxSessionMinutes = 120: must be from 1 to 58 min \(a drain can carry a call to its end for at most "
        r"drainTimeoutSeconds 3500\)"),
    "calls one minute beyond the cap": (
        "prod", {"maxSessionMinutes": "59", "drainTimeoutSeconds": "3500"}, r"maxSessionMinutes = 59: must be from 1 to 58 min"),
    "calls one minute longer than the drain": (
        "prod", {"maxSessionMinutes": "46"},
        r"drainTimeoutSeconds = 2700: is shorter than maxSessionMinutes = 46 \(2760 s\).*raise drainTimeoutSeconds to at "
        r"least 2760 \(at most 3500\) or lower maxSessionMinutes to 45 or less"),
    "scale-down as fast as scale-up": (
        "prod", {"hpaScaleDownWindowSeconds": "60"},
        r"hpaScaleDownWindowSeconds = 60: must be longer than hpaScaleUpWindowSeconds = 60"),
    "spot pods, a retired setting": (
        "prod", {"spotPods": "true"},
        r"spotPods = 'true': is no longer a setting: Spot Pods get 25 s to stop whatever the grace period says"),
    "preStop, a retired setting": (
        "prod", {"preStopSeconds": "0"},
        r"preStopSeconds = '0': is no longer a setting: the worker drains on SIGTERM, .*delete the line"),
    "threshold above the server's target load": (
        "prod", {"livekitTargetLoad": "0.69"},
        r"loadThreshold = 0\.7: is above livekitTargetLoad = 0\.69: the LiveKit server stops routing calls to a worker "
        r"at load 0\.69.*lower loadThreshold to 0\.69"),
    "a tag that cannot label the pods": (
        "prod", {"agentImageTag": "release_"},
        r"agentImageTag = 'release_': labels every pod and metric as the release, so it must be at most 63 characters "
        r"and start and end with a letter or digit"),
    "a tag one character too long for a label": (
        "prod", {"agentImageTag": "v" * 64}, r"agentImageTag = 'v{64}': labels every pod"),
    "warning as long as the call": (
        "prod", {"maxSessionMinutes": "1", "drainTimeoutSeconds": "60", "callWarningSeconds": "60"},
        r"callWarningSeconds = 60: must be below maxSessionMinutes = 1 \(60 s\).*use at most 59"),
    "fallback that is the primary": (
        "prod", {"geminiFallbackLocation": "us-central1"},
        r"geminiFallbackLocation = 'us-central1': names what the primary already is \(vertexLocation = us-central1"),
    "conversation text without DEBUG": (
        "prod", {"logConversationText": "true"},
        r"logConversationText = true: puts conversation text in DEBUG lines only, but agentLogLevel = INFO drops them"),
    "bursting admits calls beyond the request": (
        "dev", {"loadThreshold": "0.8"},
        r"loadThreshold = 0\.8: with cpuBursting the worker takes calls until it uses 1120m \(loadThreshold x CPU limit "
        r"1400m\), more than the 1000m the pod is guaranteed.*use a loadThreshold of at most 0\.71"),
    "threshold below one call": (
        "prod", {"loadThreshold": "0.1", "hpaTargetCpuUtilization": "10"},
        r"loadThreshold = 0\.1: a pod of size M reports itself full at 200m, below the worker's base 100m plus one call's "
        rf"{CPU_PER_SESSION_M}m: it would never take a call; raise loadThreshold to at least 0\.15"),
    # bring your own agent (docs/your-agent.md): another registry only by digest
    "outside repository by tag": (
        "prod", {"agentImageRepository": "ghcr.io/acme/agent"},
        r"agentImageRepository = 'ghcr\.io/acme/agent': deploys by tag \(agentImageTag\) from a registry outside the "
        r"stack, where tags are mutable: set agentImageDigest to the build's sha256:\.\.\. digest"),
}


# Single values of the workload keys, checked by domain/config.py before the rules above run.
SINGLE_VALUES = {
    "agentNamespace": ("Voice_Agents", r"agentNamespace = 'Voice_Agents': must be a DNS label"),
    "agentImageName": ("Voice Agent", r"agentImageName = 'Voice Agent': must be a lower-case image name"),
    "agentImageTag": ("-bad", r"agentImageTag = '-bad': must be a Docker tag"),
    "agentImageDigest": ("sha256:abc", r"agentImageDigest = 'sha256:abc': must be empty or sha256: followed by 64"),
    "cpuBursting": ("yes", r"cpuBursting = 'yes': must be true or false"),
    "drainTimeoutSeconds": ("10", r"drainTimeoutSeconds = 10: must be from 30 to 3500 s"),
    "loadThreshold": ("0", r"loadThreshold = 0\.0: must be in \(0\.0, 1\.0\]"),
    "maxSessionMinutes": ("0", r"maxSessionMinutes = 0: must be from 1 to 58 min"),
    "hpaMinReplicas": ("0", r"hpaMinReplicas = 0: must be from 1 to 100"),
    "hpaMaxReplicas": ("many", r"hpaMaxReplicas = 'many': must be a whole number from 1 to 1000"),
    "hpaTargetCpuUtilization": ("5", r"hpaTargetCpuUtilization = 5: must be from 10 to 95 %"),
    "hpaScaleUpWindowSeconds": ("4000", r"hpaScaleUpWindowSeconds = 4000: must be from 0 to 3600 s"),
    "hpaScaleDownWindowSeconds": ("4000", r"hpaScaleDownWindowSeconds = 4000: must be from 0 to 3600 s"),
    "hpaScaleDownPodsPerPeriod": ("0", r"hpaScaleDownPodsPerPeriod = 0: must be from 1 to 100 pods"),
    "hpaScaleDownPeriodSeconds": ("1801", r"hpaScaleDownPeriodSeconds = 1801: must be from 1 to 1800 s"),
    "livekitUrl": ("https://x.livekit.cloud", r"livekitUrl = 'https://x\.livekit\.cloud': must be a ws:// or wss:// URL"),
    "vertexLocation": ("us-centrall1", r"vertexLocation = 'us-centrall1': is not a known Vertex AI location; "
                                       r"did you mean us-central1\?"),
    "geminiModel": ("Gemini Live", r"geminiModel = 'Gemini Live': must be a Gemini model id"),
    "agentLogLevel": ("TRACE", r"agentLogLevel = 'TRACE': must be one of DEBUG, INFO, WARNING, ERROR"),
    "spareCapacityPods": ("51", r"spareCapacityPods = 51: must be from 0 to 50 pods"),
    "callWarningSeconds": ("601", r"callWarningSeconds = 601: must be from 1 to 600 s"),
    "agentName": ("-front", r"agentName = '-front': must be empty or letters, digits"),
    "agentPersona": ("voice_agent.persona", r"agentPersona = 'voice_agent\.persona': must be module:attribute of a Persona"),
    "livekitTargetLoad": ("1.5", r"livekitTargetLoad = 1\.5: must be in \(0\.0, 1\.0\]"),
    "silenceTimeoutSeconds": ("4", r"silenceTimeoutSeconds = 4: must be from 5 to 3600 s"),
    "geminiConnectRetries": ("6", r"geminiConnectRetries = 6: must be from 0 to 5 retries"),
    "geminiFallbackLocation": ("europe-wst4", r"geminiFallbackLocation = 'europe-wst4': must be empty or a Vertex AI "
                                              r"location .*; did you mean europe-west4\?"),
    "geminiFallbackModel": ("Gemini Live", r"geminiFallbackModel = 'Gemini Live': must be empty or a Gemini model id"),
    "logConversationText": ("yes", r"logConversationText = 'yes': must be true or false"),
    "agentVoice": ("Pukc", r"agentVoice = 'Pukc': must be empty \(the persona's voice\) or a Gemini Live voice; "
                           r"did you mean Puck\? \(30 allowed, listed in agent/voice_agent/data/gemini_voices\.json\)"),
    "agentImageRepository": ("ghcr.io/acme/agent:1.2", r"agentImageRepository = 'ghcr\.io/acme/agent:1\.2': must be "
                                                       r"empty \(the stack's Artifact Registry\) or a full image repository"),
}


@pytest.mark.parametrize("key", sorted(SINGLE_VALUES))
def test_single_workload_value_names_key_value_and_range(key):
    value, pattern = SINGLE_VALUES[key]
    with pytest.raises(ConfigError, match=pattern):
        plan_with("prod", **{key: value})


@pytest.mark.parametrize("case", sorted(CASES))
def test_workload_error_names_key_value_rule_and_fix(case):
    stack, settings, pattern = CASES[case]
    with pytest.raises(ConfigError, match=pattern):
        plan_with(stack, **settings)


def test_a_size_autopilot_would_change_is_refused(monkeypatch):
    """Sizes are data: one added to the table that Autopilot would round up is caught by config."""
    monkeypatch.setitem(SIZES, "XS", Size(cpu_m=300, memory_mi=1024))
    with pytest.raises(ConfigError, match=r"agentSize = 'XS': CPU request 300m is not a multiple of 250m; "
                                          r"Autopilot rounds it up to 500m \(without bursting\)"):
        plan_with("prod", agentSize="XS")


def test_every_problem_is_reported_at_once_and_before_any_resource(monkeypatch):
    """The seed-000 numbers as stack config: all three rules fire together, nothing is declared."""
    declared = []
    real = RecordingMocks.new_resource
    monkeypatch.setattr(RecordingMocks, "new_resource", lambda self, args: declared.append(args.typ) or real(self, args))
    with pytest.raises(ConfigError) as caught:
        plan_with("prod", hpaTargetCpuUtilization="75", hpaScaleUpWindowSeconds="120",
                  drainTimeoutSeconds="3000", hpaScaleDownWindowSeconds="120", maxSessionMinutes="51")
    keys = [p.key.split(":")[1] for p in caught.value.problems]
    assert keys == ["drainTimeoutSeconds", "hpaTargetCpuUtilization", "hpaScaleDownWindowSeconds"]
    assert declared == []
    plan_with("prod")  # control: the same counter sees the resources of a valid stack
    assert "kubernetes:apps/v1:Deployment" in declared


@pytest.mark.parametrize("settings", [
    {"maxSessionMinutes": "1", "drainTimeoutSeconds": "60", "callWarningSeconds": "59"},  # just below the call
    {"silenceTimeoutSeconds": "5", "geminiConnectRetries": "5", "callWarningSeconds": "600"},
    {"geminiFallbackLocation": "europe-west4", "geminiFallbackModel": "gemini-live-2.5-flash-native-audio"},
    {"geminiFallbackModel": "gemini-2.0-flash-live-001"},  # same region, another model
    {"logConversationText": "true", "agentLogLevel": "DEBUG"},  # config allows it; prod's policy refuses it
    {"livekitTargetLoad": "0.7"},  # equal to the threshold: the server routes until the worker is full
    {"livekitTargetLoad": "0.71"},  # just above
    {"agentImageTag": "v" * 63},  # the longest label value
    {"agentImageTag": "release_", "agentImageDigest": "sha256:" + "a" * 64},  # by digest the tag labels nothing
    {"agentName": ""},  # automatic dispatch, documented
])
def test_call_settings_at_their_edges_are_accepted(settings):
    assert plan_with("prod", **settings).named("agent-deployment")


@pytest.mark.parametrize("drain, minutes", [("3500", "58"), ("2760", "46"), ("60", "1")])
def test_caps_hold_at_their_boundary(drain, minutes):
    """Equal to each cap is accepted (the longest drain, the longest call, a call exactly as long
    as the drain, the shortest call); one past it is refused by the cases above."""
    plan = plan_with("prod", drainTimeoutSeconds=drain, maxSessionMinutes=minutes, callWarningSeconds="30")
    grace = plan.named("agent-deployment")["inputs"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace == int(drain) + 100


def test_the_committed_stacks_pass():
    """Negative control for the cases above: the same program with the committed settings."""
    for stack in ("dev", "prod"):
        assert plan_with(stack).named("agent-deployment")
