"""Every rule passes on the committed stacks and fails, for its stated reason, when the real
evaluated program is changed in exactly the way the rule guards against.

Two kinds of failing case, both starting from real program evaluation under Pulumi mocks
(tooling.plan.evaluate: the program runs, only the GCP/Kubernetes APIs are faked):
- OVERRIDES: the stack config is changed and the program evaluated again. Used wherever our
  config validation accepts the setting but a policy must still stop it.
- FAILING: config validation rightly refuses most unsafe states before any resource exists
  (that refusal is tested in tests/infra and tests/k8s), so for those the recorded inputs of a
  valid plan are mutated, exactly as a hand-edited program would render them.
Each case asserts the rule id and the numbers in the message.
"""

from __future__ import annotations

import copy
from typing import Callable

import pytest

from tooling.plan import evaluate
from policy.engine import evaluate_plan, load_policy_config
from policy.rules import MANDATORY, RULES, RULES_BY_ID
from tests.conftest import _fixture_plan

P = "gke-voice-agents:"


def _first(resources, typ):
    return next(r for r in resources if r["type"] == typ)["inputs"]


def _container(resources):
    return _first(resources, "kubernetes:apps/v1:Deployment")["spec"]["template"]["spec"]["containers"][0]


def _deployment(resources):
    return _first(resources, "kubernetes:apps/v1:Deployment")


def _pod(resources):
    return _first(resources, "kubernetes:apps/v1:Deployment")["spec"]["template"]


def _hpa(resources):
    return _first(resources, "kubernetes:autoscaling/v2:HorizontalPodAutoscaler")["spec"]


def _set_env(resources, name, value):
    env = _container(resources)["env"]
    env[:] = [e for e in env if e["name"] != name] + [{"name": name, "value": value}]


Mutation = Callable[[list], None]

FAILING: dict[str, tuple[Mutation, str]] = {
    "gke-private-nodes": (lambda rs: _first(rs, "gcp:container/cluster:Cluster")["privateClusterConfig"].update(enablePrivateNodes=False),
                          "nodes get public IPs"),
    "gke-no-open-control-plane": (lambda rs: _first(rs, "gcp:container/cluster:Cluster").update(
        masterAuthorizedNetworksConfig={"cidrBlocks": [{"cidrBlock": "0.0.0.0/0", "displayName": "all"}]}),
        "all = 0.0.0.0/0 opens the control plane to the internet"),
    "gke-release-channel": (lambda rs: _first(rs, "gcp:container/cluster:Cluster").update(releaseChannel={"channel": "UNSPECIFIED"}),
                            "release channel is 'UNSPECIFIED'"),
    "gke-deletion-protection": (lambda rs: _first(rs, "gcp:container/cluster:Cluster").update(deletionProtection=False),
                                "deletionProtection is off in a protected stack"),
    "gke-no-default-compute-sa": (lambda rs: _first(rs, "gcp:container/cluster:Cluster")["clusterAutoscaling"]["autoProvisioningDefaults"].update(
        serviceAccount="123456789012-compute@developer.gserviceaccount.com"), "nodes run as 123456789012-compute@"),
    "gke-autopilot-no-node-config": (lambda rs: _first(rs, "gcp:container/cluster:Cluster").update(nodeConfig={"machineType": "e2-medium"}),
                                     "nodeConfig is set on an Autopilot cluster"),
    "gke-kubelet-readonly-port-off": (lambda rs: _first(rs, "gcp:container/cluster:Cluster").pop("nodePoolAutoConfig"),
                                      "the kubelet read-only port (10255, no authentication) is left to the GKE default"),
    # The provider's empty list, which GKE reads as "disable all" (TGKE #1786).
    "gke-system-metrics": (lambda rs: _first(rs, "gcp:container/cluster:Cluster")["monitoringConfig"].pop("enableComponents"),
                           "the provider then sends an empty list"),
    "gke-secrets-encryption": (lambda rs: _first(rs, "gcp:container/cluster:Cluster").pop("databaseEncryption"),
                               "Kubernetes Secrets are not encrypted with a key of this stack"),
    "gke-binary-authorization": (lambda rs: _first(rs, "gcp:container/cluster:Cluster").pop("binaryAuthorization"),
                                 "binaryAuthorization.evaluationMode is not set in a protected stack"),
    "binauthz-only-stack-registry": (lambda rs: _first(rs, "gcp:binaryauthorization/policy:Policy")["admissionWhitelistPatterns"].append(
        {"namePattern": "docker.io/**"}), "allowlist pattern docker.io/** admits images from outside the stack's registry"),
    "binauthz-admits-the-workloads": (lambda rs: _first(rs, "gcp:binaryauthorization/policy:Policy").update(admissionWhitelistPatterns=[]),
                                      "is not admitted by any allowlist pattern: its pods would be refused"),
    # prod, as a hand-edited program would render it without binaryAuthorizationAttestor.
    "binauthz-requires-ci-attestation": (lambda rs: _first(rs, "gcp:binaryauthorization/policy:Policy").update(
        defaultAdmissionRule={"evaluationMode": "ALWAYS_DENY", "enforcementMode": "ENFORCED_BLOCK_AND_AUDIT_LOG"}),
        "the default admission rule is ALWAYS_DENY in a protected stack: any image pushed to the stack's registry runs"),
    # A component whose image nothing builds: its Deployment would wait out Pulumi's timeout.
    "registry-images-built-by-ci": (lambda rs: _container(rs).update(image=_container(rs)["image"].replace("/voice-agent:", "/transcriber:")),
                                    "pulls transcriber from the stack's registry, which no pipeline builds"),
    "subnet-private-google-access": (lambda rs: _first(rs, "gcp:compute/subnetwork:Subnetwork").update(privateIpGoogleAccess=False),
                                     "has no Private Google Access"),
    "nat-all-subnet-ranges": (lambda rs: _first(rs, "gcp:compute/routerNat:RouterNat").update(sourceSubnetworkIpRangesToNat="ALL_SUBNETWORKS_ALL_PRIMARY_IP_RANGES"),
                              "NAT covers ALL_SUBNETWORKS_ALL_PRIMARY_IP_RANGES: pods use a secondary range"),
    "nat-error-logging": (lambda rs: _first(rs, "gcp:compute/routerNat:RouterNat").update(logConfig={"enable": False}),
                          "NAT does not log errors"),
    "no-node-external-ip": (lambda rs: rs.append({"type": "gcp:compute/instance:Instance", "name": "bastion", "parent": None,
                                                  "inputs": {"networkInterfaces": [{"network": "default"}, {"accessConfigs": [{}]}]}}),
                            "network interface 1 has an external IP (accessConfigs)"),
    "registry-immutable-tags": (lambda rs: _first(rs, "gcp:artifactregistry/repository:Repository").update(dockerConfig={"immutableTags": False}),
                                "tags are mutable"),
    "registry-cleanup-policies": (lambda rs: _first(rs, "gcp:artifactregistry/repository:Repository").update(cleanupPolicies=[]),
                                  "no cleanup policies"),
    "registry-node-reader": (lambda rs: rs.remove(next(r for r in rs if r["type"] == "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember")),
                             "cannot pull from this repository"),
    "no-service-account-keys": (lambda rs: rs.append({"type": "gcp:serviceaccount/key:Key", "name": "ci-key", "parent": None, "inputs": {}}),
                                "a service-account key is a long-lived credential"),
    "vertex-via-workload-identity": (lambda rs: next(r for r in rs if r["inputs"].get("role") == "roles/aiplatform.user")["inputs"].update(
        member="serviceAccount:agent@p.iam.gserviceaccount.com"), "Vertex AI is granted to serviceAccount:agent@"),
    "agent-grace-covers-drain": (lambda rs: _pod(rs)["spec"].update(terminationGracePeriodSeconds=150),
                                 "terminationGracePeriodSeconds 150 < preStop 0 + drain timeout 900 + shutdown 100 = 1000 s"),
    "agent-no-sleep-prestop": (lambda rs: _container(rs).update(lifecycle={"preStop": {"exec": {"command": ["/bin/sh", "-c", "sleep 120"]}}}),
                               "preStop only sleeps 120 s"),
    "agent-exec-form-start": (lambda rs: _container(rs).update(command=["/bin/sh", "-c", "python -m voice_agent start"], args=[]),
                              "the shell receives SIGTERM and the worker never drains"),
    "agent-cpu-limit": (lambda rs: _container(rs)["resources"]["limits"].pop("cpu"), "no CPU limit"),
    "agent-hpa-below-load-threshold": (lambda rs: _hpa(rs)["metrics"][0]["resource"]["target"].update(averageUtilization=95) or _set_env(rs, "AGENT_LOAD_THRESHOLD", "0.5"),
                                       "HPA target 95% of a 1000m request with a 1400m effective limit puts each worker at load 0.75 (with the 10% HPA tolerance) "
                                       ">= load_threshold 0.5: every pod reports full before the HPA scales, and new callers wait; "
                                       "use a target of at most 63%"),
    # dev: S with bursting, AGENT_MAX_CALLS 4; 3.7 x 1.1 = 4.07 calls >= 4
    "agent-hpa-calls-below-cap": (lambda rs: _hpa(rs)["metrics"][1]["pods"]["target"].update(averageValue="3700m"),
                                  "HPA calls target 3.7 per pod acts only above 4.07 (with the 10% tolerance), but each worker "
                                  "refuses calls at AGENT_MAX_CALLS = 4: every pod is full before the HPA scales; use a target below 3.64"),
    "agent-job-memory-limit": (lambda rs: _set_env(rs, "AGENT_JOB_MEMORY_LIMIT_MB", "2048"),
                               "AGENT_JOB_MEMORY_LIMIT_MB 2048 is not below the container's memory limit 2048 MiB"),
    "agent-scale-down-slower": (lambda rs: _hpa(rs)["behavior"]["scaleDown"].update(stabilizationWindowSeconds=30),
                                "scale-down window 30 s is not longer than scale-up window 30 s"),
    "agent-extended-duration": (lambda rs: _pod(rs)["metadata"].update(annotations={}),
                                "grace 1000 s exceeds the 600 s the cluster autoscaler honours"),
    "agent-no-spot": (lambda rs: _pod(rs)["spec"].update(nodeSelector={"cloud.google.com/gke-spot": "true"}),
                      "Spot Pods get 25 s to stop"),
    "agent-autopilot-resources": (lambda rs: _container(rs)["resources"]["requests"].update(cpu="30m"),
                                  "CPU request 30m is below the Autopilot minimum 50m"),
    "agent-probes": (lambda rs: _container(rs).pop("startupProbe"), "missing startupProbe"),
    # The readiness the framework offers: GET / on the health port, 200 until it gives up on LiveKit.
    "agent-readiness-registered": (lambda rs: _container(rs)["readinessProbe"].update(httpGet={"path": "/", "port": "health"}),
                                   "readinessProbe checks / on port 8081, not GET /ready on 9100"),
    "agent-liveness-not-readiness": (lambda rs: _container(rs)["livenessProbe"]["httpGet"].update(path="/ready"),
                                     "livenessProbe checks /ready, which fails during a LiveKit outage and during every drain"),
    "agent-rollout-keeps-old-pods": (lambda rs: _deployment(rs)["spec"]["strategy"]["rollingUpdate"].update(maxUnavailable="25%"),
                                     "rollingUpdate.maxUnavailable is 25%"),
    "agent-no-conversation-text": (lambda rs: _set_env(rs, "AGENT_LOG_CONVERSATION_TEXT", "true"),
                                   "AGENT_LOG_CONVERSATION_TEXT is on: every caller's words go to Cloud Logging"),
    "agent-security-context": (lambda rs: _container(rs)["securityContext"].update(readOnlyRootFilesystem=False),
                               "container is not hardened: root filesystem is writable"),
    "agent-pdb": (lambda rs: rs.remove(next(r for r in rs if r["type"] == "kubernetes:policy/v1:PodDisruptionBudget")),
                  "no PodDisruptionBudget selects the agent"),
}


# Rules about what only prod turns on (its KMS key and Binary Authorization policy).
PROD_ONLY = ("gke-secrets-encryption", "gke-binary-authorization", "binauthz-only-stack-registry",
             "binauthz-admits-the-workloads", "binauthz-requires-ci-attestation", "database-backups-in-prod",
             "livekit-credentials-as-files")


# The tool rules' cases live beside their own tests (policy/rules/tools.py).
from tests.policy.test_rules_tools import FAILING_CASES as _TOOL_CASES  # noqa: E402

FAILING.update(_TOOL_CASES)
# The checkpoint database's cases too (policy/rules/database.py).
from tests.policy.test_rules_database import FAILING_CASES as _DATABASE_CASES  # noqa: E402

FAILING.update(_DATABASE_CASES)
# The LiveKit credentials' rule (policy/rules/secrets.py).
from tests.policy.test_rules_secrets import FAILING_CASES as _SECRETS_CASES  # noqa: E402

FAILING.update(_SECRETS_CASES)
# The access closures (policy/rules/access.py).
from tests.policy.test_access_gcp import FAILING_CASES as _ACCESS_CASES  # noqa: E402

FAILING.update(_ACCESS_CASES)
from tests.policy.test_access_k8s import FAILING_CASES as _KUBERNETES_ACCESS_CASES  # noqa: E402

FAILING.update(_KUBERNETES_ACCESS_CASES)


def _only(found: list[dict], rule_id: str) -> list[str]:
    return [v["message"] for v in found if v["rule"] == rule_id]


def test_every_rule_has_a_failing_case():
    assert set(FAILING) == set(RULES_BY_ID)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_committed_stacks_pass_every_rule(stack):
    """Both committed stacks plan clean, advisory rules included, under their own policy config."""
    assert evaluate_plan(_fixture_plan(stack).resources, stack) == []


@pytest.mark.parametrize("rule_id", sorted(FAILING))
def test_rule_fails_for_its_stated_reason(rule_id):
    mutate, reason = FAILING[rule_id]
    # Deletion protection and the conversation-text ban are mandatory in prod (dev's policy
    # config relaxes them); every other case starts from dev, whose
    # HPA/limit settings (bursting) make the capacity cases the less obvious ones.
    stack = "prod" if rule_id in ("gke-deletion-protection", "agent-no-conversation-text", *PROD_ONLY) else "dev"
    resources = _fixture_plan(stack).resources
    assert _only(evaluate_plan(resources, stack), rule_id) == [], "passing case first: the real plan is clean"
    mutate(resources)
    found = evaluate_plan(resources, stack)
    messages = _only(found, rule_id)
    assert messages and any(reason in m for m in messages), messages
    assert {v["severity"] for v in found if v["rule"] == rule_id} == {RULES_BY_ID[rule_id].severity}


# (stack, config overrides, rule id, expected message fragment). Config validation accepts
# every one of these; the policy is what stops them.
OVERRIDES = {
    "prod-without-deletion-protection": (
        "prod", {P + "deletionProtection": "false"}, "gke-deletion-protection",
        "deletionProtection is off in a protected stack: one `pulumi destroy` ends every live call"),
    "prod-limits-above-requests-without-bursting": (
        # prod's cluster is declared without bursting (policy/prod.json): Autopilot would drop
        # the 2x CPU limit the program now renders.
        "prod", {P + "cpuBursting": "true"}, "agent-autopilot-resources",
        "limits 2800m/4096Mi differ from requests 2000m/4096Mi: without bursting Autopilot silently sets limits"),
}


def test_conversation_text_is_refused_in_prod_and_allowed_in_dev():
    """Config accepts logConversationText with DEBUG; the policy decides per stack: mandatory by
    default (prod), advisory where the stack's policy config says so (policy/dev.json)."""
    overrides = {P + "logConversationText": "true", P + "agentLogLevel": "DEBUG"}
    prod = evaluate_plan(evaluate("prod", overrides).resources, "prod")
    dev = evaluate_plan(evaluate("dev", overrides).resources, "dev")
    assert [(v["rule"], v["severity"]) for v in prod] == [("agent-no-conversation-text", "mandatory")]
    assert [(v["rule"], v["severity"]) for v in dev] == [("agent-no-conversation-text", "advisory")]


@pytest.mark.parametrize("case", sorted(OVERRIDES))
def test_config_the_program_accepts_still_fails_policy(case):
    stack, overrides, rule_id, reason = OVERRIDES[case]
    assert _only(evaluate_plan(_fixture_plan(stack).resources, stack), rule_id) == []
    found = evaluate_plan(evaluate(stack, overrides).resources, stack)
    assert [v["rule"] for v in found] == [rule_id], found
    assert reason in found[0]["message"]


def test_hpa_target_tuned_for_bursting_deadlocks_on_a_cluster_without_it():
    """dev declares bursting (limit = 2x request), so config accepts a 70% target (load 0.39).
    Run on a cluster without bursting, Autopilot sets limit = request and the same target means
    load 0.77 >= 0.7: the policy config, not the program, knows what the cluster supports."""
    resources = evaluate("dev", {P + "hpaTargetCpuUtilization": "70"}).resources
    assert evaluate_plan(resources, "dev") == []
    no_bursting = {**load_policy_config("dev"), "agent-hpa-below-load-threshold": {"bursting": False},
                   "agent-autopilot-resources": {"enforcementLevel": "disabled"}}
    [violation] = evaluate_plan(resources, "dev", config=no_bursting)
    assert violation["rule"] == "agent-hpa-below-load-threshold" and violation["severity"] == MANDATORY
    assert ("HPA target 70% of a 1000m request with a 1000m effective limit puts each worker at load 0.77"
            in violation["message"]), violation
    assert "use a target of at most 63%" in violation["message"]


def test_narrow_authorized_network_is_not_an_open_control_plane():
    """The IP endpoint, when a stack opens it, is fine with a narrow range (config refuses /0)."""
    resources = evaluate("prod", {P + "controlPlaneAuthorizedNetworks": '{"office": "203.0.113.0/24"}'}).resources
    cluster = _first(resources, "gcp:container/cluster:Cluster")
    assert cluster["controlPlaneEndpointsConfig"]["ipEndpointsConfig"]["enabled"] is True
    assert evaluate_plan(resources, "prod") == []
    cluster["masterAuthorizedNetworksConfig"]["cidrBlocks"].append({"displayName": "anywhere", "cidrBlock": "0.0.0.0/0"})
    assert _only(evaluate_plan(resources, "prod"), "gke-no-open-control-plane") == [
        "authorized network anywhere = 0.0.0.0/0 opens the control plane to the internet"]


def test_deletion_protection_is_only_required_of_protected_stacks():
    resources = copy.deepcopy(_fixture_plan("dev").resources)
    assert _first(resources, "gcp:container/cluster:Cluster")["deletionProtection"] is False
    assert evaluate_plan(resources, "dev") == []
    # A stack without a policy config file gets the strict defaults: protection required, and
    # no bursting assumed, so dev's 2000m CPU limit over a 1000m request is called out as well.
    # Protected also means Secrets under the stack's KMS key and Binary Authorization enforced.
    found = evaluate_plan(resources, "staging")
    assert [(v["rule"], v["severity"]) for v in found] == [
        ("gke-deletion-protection", MANDATORY), ("gke-secrets-encryption", MANDATORY),
        ("gke-binary-authorization", MANDATORY),
        # and a checkpoint database with point-in-time recovery, HA and deletion protection
        *[("database-backups-in-prod", MANDATORY)] * 3,
        ("agent-autopilot-resources", "advisory")]
    assert "limits 1400m/2048Mi differ from requests 1000m/2048Mi" in found[6]["message"]


def test_exec_wrapper_is_accepted():
    resources = copy.deepcopy(_fixture_plan("dev").resources)
    _container(resources).update(command=["/bin/sh", "-c", "echo preflight; exec python -m voice_agent start"], args=[])
    assert _only(evaluate_plan(resources, "dev"), "agent-exec-form-start") == []


def test_dev_mode_is_refused():
    resources = copy.deepcopy(_fixture_plan("dev").resources)
    _container(resources).update(args=["dev"])
    [message] = _only(evaluate_plan(resources, "dev"), "agent-exec-form-start")
    assert message == "`python -m voice_agent dev` runs development mode, which skips the drain on SIGTERM; use `start`"


def test_vertex_granted_through_a_binding_to_a_service_account_fails():
    """Hand-written supplement: the program never renders an IAMBinding, but a user might add one."""
    resources = copy.deepcopy(_fixture_plan("prod").resources)
    resources.append({"type": "gcp:projects/iAMBinding:IAMBinding", "name": "vertex-binding", "parent": None,
                      "inputs": {"role": "roles/aiplatform.user", "members": ["serviceAccount:ci@p.iam.gserviceaccount.com"]}})
    [message] = _only(evaluate_plan(resources, "prod"), "vertex-via-workload-identity")
    assert message.startswith("Vertex AI is granted to serviceAccount:ci@p.iam.gserviceaccount.com")


def test_ephemeral_storage_outside_autopilot_range_is_flagged():
    resources = copy.deepcopy(_fixture_plan("prod").resources)
    _container(resources)["resources"]["requests"]["ephemeral-storage"] = "20Gi"
    [message] = _only(evaluate_plan(resources, "prod"), "agent-autopilot-resources")
    assert message == "ephemeral-storage request 20Gi exceeds the Autopilot maximum 10Gi and is rejected"


def test_every_rule_has_an_id_severity_and_description():
    assert len({r.id for r in RULES}) == len(RULES)
    for rule in RULES:
        assert rule.severity in ("mandatory", "advisory") and rule.description.endswith(".")
        assert (rule.check_stack is None) != (rule.check_resource is None)
        assert bool(rule.resource_types) == (rule.check_resource is not None)
