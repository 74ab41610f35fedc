"""Attacks on the Google access closures (policy/rules/access_gcp.py, judged in
policy/rules/access.py): each case adds to the real evaluated dev plan one grant that hands a
protected principal more than its promise, written in a form the old rules did not read, and
expects the rule to refuse it and name the path.

Member forms follow IAM's "Principal identifiers" (https://cloud.google.com/iam/docs/
principal-identifiers) and GKE's "About Workload Identity Federation for GKE" (principal for
one Kubernetes service account, principalSet for a namespace or the whole pool, and the legacy
`serviceAccount:POOL[NS/KSA]`).
"""

from __future__ import annotations

import copy
import functools
import json
import re
from pathlib import Path

import pytest

from tooling.plan import evaluate
from policy.engine import as_resources, evaluate_plan
from policy.rules import access_gcp

AGENT_RULE, TOOL_RULE, ADAPTER_RULE = ("agent-identity-holds-no-tool-role", "tool-server-identity-holds-quota-only",
                                       "metrics-adapter-identity-holds-viewer-only")
RULE_IDS = (AGENT_RULE, TOOL_RULE, ADAPTER_RULE)


@functools.lru_cache(maxsize=None)
def _evaluated(stack: str):
    return evaluate(stack)


def _plan(stack: str = "dev") -> list[dict]:
    return copy.deepcopy(_evaluated(stack).resources)


def _violations(resources, stack="dev"):
    return [(v["rule"], v["message"]) for v in evaluate_plan(resources, stack) if v["rule"] in RULE_IDS]


def _named(resources, name):
    return next(r for r in resources if r["name"] == name)["inputs"]


def _facts(resources) -> dict:
    """The plan's own names: the agent's principal, its pool and project, the database account."""
    vertex = next(r["inputs"] for r in resources if r["inputs"].get("role") == "roles/aiplatform.user")
    principal = vertex["member"]
    prefix = principal.split("/subject/")[0]
    db = next(r["inputs"] for r in resources if r["name"] == "checkpoints-impersonation")["serviceAccountId"]
    nodes = next(r["inputs"]["member"] for r in resources if r["name"] == "gke-nodes-container-defaultnodeserviceaccount")
    return {"principal": principal, "pool_prefix": prefix, "project": vertex["project"], "db_account": db,
            "db_email": db.rsplit("/", 1)[-1], "nodes": nodes, "nodes_email": nodes.split(":", 1)[1],
            "pool": prefix.rsplit("/", 1)[-1]}


def _add(resources, typ, name, **inputs):
    resources.append({"type": typ, "name": name, "parent": None, "dependsOn": [], "inputs": inputs})


PROJECT_MEMBER = "gcp:projects/iAMMember:IAMMember"


# --- the agent --------------------------------------------------------------------------------

def _namespace_set(rs):
    f = _facts(rs)
    _add(rs, PROJECT_MEMBER, "ns-storage", project=f["project"], role="roles/storage.admin",
         member=f"{f['pool_prefix'].replace('principal://', 'principalSet://')}/namespace/voice-agents")


def _pool_set(rs):
    f = _facts(rs)
    _add(rs, PROJECT_MEMBER, "pool-viewer", project=f["project"], role="roles/viewer",
         member=f"{f['pool_prefix'].replace('principal://', 'principalSet://')}/*")


def _authoritative_policy(rs):
    f = _facts(rs)
    policy = {"bindings": [{"role": "roles/editor", "members": [f["principal"]]}]}
    _add(rs, "gcp:projects/iAMPolicy:IAMPolicy", "project-policy", project=f["project"], policyData=json.dumps(policy))


def _authoritative_binding(rs):
    f = _facts(rs)
    _add(rs, "gcp:projects/iAMBinding:IAMBinding", "quota-binding", project=f["project"],
         role="roles/serviceusage.serviceUsageConsumer", members=["user:someone@example.com", f["principal"]])


def _bucket(rs):
    _add(rs, "gcp:storage/bucketIAMMember:BucketIAMMember", "recordings-reader", bucket="call-recordings",
         role="roles/storage.objectViewer", member=_facts(rs)["principal"])


def _other_secret(rs):
    _add(rs, "gcp:secretmanager/secretIamBinding:SecretIamBinding", "places-key-readers", secretId="places-key",
         role="roles/secretmanager.secretAccessor", members=[_facts(rs)["principal"]])


def _kms_key(rs):
    _add(rs, "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember", "key-user", cryptoKeyId="projects/p/locations/l/keyRings/r/cryptoKeys/k",
         role="roles/cloudkms.cryptoKeyDecrypter", member=_facts(rs)["principal"])


def _legacy_member(rs):
    f = _facts(rs)
    _add(rs, "gcp:pubsub/topicIAMMember:TopicIAMMember", "topic-publisher", topic="calls", role="roles/pubsub.publisher",
         member=f"serviceAccount:{f['pool']}[voice-agents/voice-agent]")


def _everyone(rs):
    _add(rs, "gcp:storage/bucketIAMMember:BucketIAMMember", "public-bucket", bucket="prompts",
         role="roles/storage.objectAdmin", member="allAuthenticatedUsers")


def _token_creator_on_another_account(rs):
    f = _facts(rs)
    _add(rs, "gcp:serviceaccount/iAMMember:IAMMember", "nodes-impersonation",
         serviceAccountId=f"projects/{f['project']}/serviceAccounts/{f['nodes_email']}",
         role="roles/iam.workloadIdentityUser", member=f["principal"])


def _project_token_creator(rs):
    f = _facts(rs)
    _add(rs, PROJECT_MEMBER, "any-account", project=f["project"], role="roles/iam.serviceAccountTokenCreator",
         member=f["principal"])


def _two_hops(rs):
    """The database account may impersonate the nodes' account: the agent is two hops from the
    nodes' roles."""
    f = _facts(rs)
    _add(rs, "gcp:serviceaccount/iAMMember:IAMMember", "db-to-nodes",
         serviceAccountId=f"projects/{f['project']}/serviceAccounts/{f['nodes_email']}",
         role="roles/iam.serviceAccountTokenCreator", member=f"serviceAccount:{f['db_email']}")


def _folder_token_creator(rs):
    """Token creator on a folder: every account of every project below it, the nodes' included."""
    _add(rs, "gcp:folder/iAMMember:IAMMember", "folder-minter", folder="folders/123",
         role="roles/iam.serviceAccountTokenCreator", member=_facts(rs)["principal"])


def _db_account_unconditioned(rs):
    _named(rs, "checkpoints-client").pop("condition")


def _db_condition_widened(rs):
    condition = _named(rs, "checkpoints-instanceuser")["condition"]
    condition["expression"] += " || resource.name.startsWith('projects/')"


def _db_condition_for_another_instance(rs):
    condition = _named(rs, "checkpoints-client")["condition"]
    condition["expression"] = re.sub(r"/instances/[^']+'", "/instances/billing-db'", condition["expression"])


def _db_account_gets_vertex_admin(rs):
    f = _facts(rs)
    _add(rs, PROJECT_MEMBER, "db-vertex", project=f["project"], role="roles/aiplatform.admin",
         member=f"serviceAccount:{f['db_email']}")


def _custom_role_with(permission: str):
    """A custom role holding one permission that makes its holder the node account."""
    def mutate(rs):
        f = _facts(rs)
        _add(rs, "gcp:projects/iAMCustomRole:IAMCustomRole", "minter", project=f["project"], roleId="minter",
             permissions=[permission], title="minter")
        _add(rs, "gcp:serviceaccount/iAMPolicy:IAMPolicy", "nodes-policy",
             serviceAccountId=f"projects/{f['project']}/serviceAccounts/{f['nodes_email']}",
             policyData=json.dumps({"bindings": [{"role": f"projects/{f['project']}/roles/minter",
                                                  "members": [f["principal"]]}]}))
    return mutate


AGENT_ATTACKS = {
    "principalSet for the namespace": (_namespace_set, "is granted roles/storage.admin on project",
                                       "every service account of namespace voice-agents"),
    "principalSet for the pool": (_pool_set, "is granted roles/viewer on project", "every identity of the pool"),
    "authoritative project policy": (_authoritative_policy, "is granted roles/editor on project", "[project-policy]"),
    "authoritative project binding": (_authoritative_binding, "is granted roles/serviceusage.serviceUsageConsumer",
                                      "[quota-binding]"),
    "a bucket": (_bucket, "is granted roles/storage.objectViewer on bucket call-recordings", "that account's principal"),
    "another secret": (_other_secret, "may read a Secret Manager secret (roles/secretmanager.secretAccessor) other than",
                       "secret places-key"),
    "a KMS key": (_kms_key, "is granted roles/cloudkms.cryptoKeyDecrypter on cryptoKey", "[key-user]"),
    "legacy Workload Identity member on a topic": (_legacy_member, "is granted roles/pubsub.publisher on topic calls",
                                                   "the legacy Workload Identity member"),
    "allAuthenticatedUsers": (_everyone, "is granted roles/storage.objectAdmin on bucket prompts",
                              "every authenticated Google identity"),
    "another account to impersonate": (_token_creator_on_another_account,
                                       "is granted roles/iam.workloadIdentityUser on serviceAccount", "[nodes-impersonation]"),
    "token creator on the whole project": (_project_token_creator, "is granted roles/iam.serviceAccountTokenCreator on project",
                                           "[any-account]"),
    "token creator on a folder": (_folder_token_creator, "reaches roles/container.defaultNodeServiceAccount on project",
                                  "an account of folder folders/123"),
    "two impersonation hops": (_two_hops, "reaches roles/container.defaultNodeServiceAccount on project",
                               "through 2 impersonation hop(s)"),
    "database roles project-wide": (_db_account_unconditioned, "reaches roles/cloudsql.client on project",
                                    "without an IAM condition naming its instance"),
    "database condition widened": (_db_condition_widened, "reaches roles/cloudsql.instanceUser on project",
                                   "without an IAM condition naming its instance"),
    "database condition for another instance": (_db_condition_for_another_instance,
                                                "reaches roles/cloudsql.client on project",
                                                "without an IAM condition naming its instance"),
    "database account holds more": (_db_account_gets_vertex_admin, "reaches roles/aiplatform.admin on project",
                                    "through 1 impersonation hop(s)"),
    # every permission IAM documents as making its holder the account, one custom role each
    # (https://cloud.google.com/iam/docs/service-account-permissions), written out here: a list
    # read from the rule would shrink with it
    **{f"custom role with {permission}": (_custom_role_with(permission),
                                           "reaches roles/container.defaultNodeServiceAccount on project",
                                           "through 1 impersonation hop(s)")
       for permission in ("iam.serviceAccounts.getAccessToken", "iam.serviceAccounts.getOpenIdToken",
                          "iam.serviceAccounts.signBlob", "iam.serviceAccounts.signJwt",
                          "iam.serviceAccounts.implicitDelegation", "iam.serviceAccounts.actAs",
                          "iam.serviceAccountKeys.create", "iam.serviceAccounts.setIamPolicy")},
}


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_committed_stacks_are_clean(stack):
    assert _violations(_plan(stack), stack) == []


@pytest.mark.parametrize("case", sorted(AGENT_ATTACKS))
def test_the_agent_rule_refuses(case):
    mutate, says, path = AGENT_ATTACKS[case]
    resources = _plan()
    mutate(resources)
    messages = [m for rule, m in _violations(resources) if rule == AGENT_RULE]
    assert any(says in m and path in m for m in messages), messages


def test_two_hops_name_every_step():
    resources = _plan()
    _two_hops(resources)
    [message] = [m for rule, m in _violations(resources)
                 if rule == AGENT_RULE and "roles/container.defaultNodeServiceAccount" in m]
    f = _facts(resources)
    steps = message.split(" -> ")
    assert "token creator of service account " + f["db_email"] in steps[0]
    assert "token creator of service account " + f["nodes_email"] in steps[1]
    assert "[gke-nodes-container-defaultnodeserviceaccount]" in steps[2]


# --- the tool server and the metrics adapter ---------------------------------------------------

def _tool_principal(rs):
    return next(r["inputs"]["member"] for r in rs if r["name"] == "places-identity-quota-user")


def _adapter_principal(rs):
    return next(r["inputs"]["member"] for r in rs if r["name"] == "metrics-adapter-monitoring-viewer")


def _grant(principal_of, typ, name, **inputs):
    def mutate(rs):
        member = principal_of(rs)
        if "members" in inputs:
            inputs["members"] = [member]
        elif "policyData" in inputs:
            inputs["policyData"] = inputs["policyData"].replace("MEMBER", member)
        else:
            inputs["member"] = member
        _add(rs, typ, name, **inputs)
    return mutate


def _set_for_namespace(principal_of, role):
    def mutate(rs):
        member = principal_of(rs).replace("principal://", "principalSet://")
        _add(rs, PROJECT_MEMBER, "ns-grant", project=_facts(rs)["project"], role=role,
             member=re.sub(r"/subject/ns/([^/]+)/sa/.*$", r"/namespace/\1", member))
    return mutate


def _set_for_pool(role):
    def mutate(rs):
        f = _facts(rs)
        _add(rs, PROJECT_MEMBER, "pool-grant", project=f["project"], role=role,
             member=f"{f['pool_prefix'].replace('principal://', 'principalSet://')}/*")
    return mutate


def _through_db_account(principal_of):
    def mutate(rs):
        f = _facts(rs)
        _add(rs, "gcp:serviceaccount/iAMMember:IAMMember", "borrow-db", serviceAccountId=f["db_account"],
             role="roles/iam.serviceAccountTokenCreator", member=principal_of(rs))
    return mutate


OTHER_ATTACKS = {
    (TOOL_RULE, "namespace set"): (_set_for_namespace(_tool_principal, "roles/storage.admin"), "roles/storage.admin"),
    (TOOL_RULE, "pool set"): (_set_for_pool("roles/run.invoker"), "every identity of the pool"),
    (TOOL_RULE, "project policy"): (_grant(_tool_principal, "gcp:projects/iAMPolicy:IAMPolicy", "tp", project="p",
                                           policyData='{"bindings": [{"role": "roles/owner", "members": ["MEMBER"]}]}'),
                                    "reaches roles/owner on project"),
    (TOOL_RULE, "bucket binding"): (_grant(_tool_principal, "gcp:storage/bucketIAMBinding:BucketIAMBinding", "tb",
                                           bucket="b", role="roles/storage.objectViewer", members=[]), "on bucket b"),
    (TOOL_RULE, "secret"): (_grant(_tool_principal, "gcp:secretmanager/secretIamMember:SecretIamMember", "ts",
                                   secretId="livekit-api-secret", role="roles/secretmanager.secretAccessor"),
                            "reaches roles/secretmanager.secretAccessor on secret"),
    (TOOL_RULE, "impersonation"): (_through_db_account(_tool_principal), "reaches roles/cloudsql.client"),
    (ADAPTER_RULE, "namespace set"): (_set_for_namespace(_adapter_principal, "roles/monitoring.editor"),
                                      "every service account of namespace custom-metrics"),
    (ADAPTER_RULE, "pool set"): (_set_for_pool("roles/logging.viewer"), "reaches roles/logging.viewer"),
    (ADAPTER_RULE, "project binding"): (_grant(_adapter_principal, "gcp:projects/iAMBinding:IAMBinding", "ab", project="p",
                                               role="roles/monitoring.editor", members=[]), "reaches roles/monitoring.editor"),
    (ADAPTER_RULE, "key ring"): (_grant(_adapter_principal, "gcp:kms/keyRingIAMMember:KeyRingIAMMember", "ak",
                                        keyRingId="r", role="roles/cloudkms.admin"), "on keyRing r"),
    (ADAPTER_RULE, "subscription"): (_grant(_adapter_principal, "gcp:pubsub/subscriptionIAMMember:SubscriptionIAMMember",
                                            "as", subscription="s", role="roles/pubsub.subscriber"), "on subscription s"),
    (ADAPTER_RULE, "impersonation"): (_through_db_account(_adapter_principal), "through 1 impersonation hop"),
}


def _linked_account(rs) -> str:
    """The Google service account the tool server acts as (infra/tool_identity.py)."""
    return _named(rs, "places-identity-quota-user")["member"].split(":", 1)[1]


def _linked_account_holds(role):
    def mutate(rs):
        _add(rs, PROJECT_MEMBER, "linked-extra", project=_facts(rs)["project"], role=role,
             member=f"serviceAccount:{_linked_account(rs)}")
    return mutate


def _link_to_another_account(rs):
    f = _facts(rs)
    link = _named(rs, "places-identity-link")
    _add(rs, "gcp:serviceaccount/iAMMember:IAMMember", "link-db", serviceAccountId=f["db_account"],
         role="roles/iam.workloadIdentityUser", member=link["member"])


def _token_creator_on_its_own_account(rs):
    link = _named(rs, "places-identity-link")
    _add(rs, "gcp:serviceaccount/iAMMember:IAMMember", "own-token-creator", serviceAccountId=link["serviceAccountId"],
         role="roles/iam.serviceAccountTokenCreator", member=link["member"])


# The tool server acts as its own Google service account (Places takes no federated token): the
# link is allowed, and through it the quota role only.
OTHER_ATTACKS.update({
    (TOOL_RULE, "linked account holds more"): (_linked_account_holds("roles/storage.admin"),
                                               "reaches roles/storage.admin on project"),
    (TOOL_RULE, "link to another account"): (_link_to_another_account, "reaches roles/cloudsql"),
    (TOOL_RULE, "token creator instead of the link"): (_token_creator_on_its_own_account,
                                                       "reaches roles/iam.serviceAccountTokenCreator on serviceAccount"),
})


@pytest.mark.parametrize(("rule", "case"), sorted(OTHER_ATTACKS))
def test_the_tool_server_and_adapter_rules_refuse(rule, case):
    mutate, says = OTHER_ATTACKS[(rule, case)]
    resources = _plan()
    mutate(resources)
    messages = [m for r, m in _violations(resources) if r == rule]
    assert any(says in m for m in messages), messages


def test_a_grant_to_another_namespace_or_pool_reaches_nobody_protected():
    """The negative side: members that do not cover a protected principal are not counted."""
    resources = _plan()
    f = _facts(resources)
    other_pool = f["pool_prefix"].replace(f["pool"], "someone-else.svc.id.goog").replace("principal://", "principalSet://")
    for i, member in enumerate([f"{other_pool}/*", f["principal"].replace("/ns/voice-agents/", "/ns/other/"),
                                f"serviceAccount:{f['pool']}[other/voice-agent]", "user:ops@example.com"]):
        _add(resources, PROJECT_MEMBER, f"harmless-{i}", project=f["project"], role="roles/owner", member=member)
    assert _violations(resources) == []


# --- the engine against pulumi-gcp itself ------------------------------------------------------

def _sdk_tokens() -> list[str]:
    import pulumi_gcp

    root = Path(pulumi_gcp.__file__).parent
    return sorted({t for f in root.glob("*/*.py") for t in re.findall(r'@pulumi\.type_token\("(gcp:[^"]+)"\)', f.read_text())})


def test_every_iam_grant_type_of_pulumi_gcp_is_read():
    """Every pulumi-gcp resource that grants a role (member, binding, policy forms) is a grant to
    the engine, and nothing else is: custom roles, audit configs and member removals are not."""
    import importlib

    from tooling.mocks import args_class

    tokens = _sdk_tokens()
    grant_types = [t for t in tokens if access_gcp.is_grant_type(t)]
    assert len(grant_types) > 400, "pulumi-gcp offers several hundred IAM resource kinds"
    for token in grant_types:
        cls = args_class(token)
        assert cls is not None, token
        fields = set(vars(cls))
        assert "role" in fields or "policy_data" in fields, (token, fields)
        assert fields & {"member", "members", "policy_data"}, (token, fields)
    others = [t for t in tokens if "iam" in t.rsplit(":", 1)[-1].lower() and not access_gcp.is_grant_type(t)]
    assert all(re.search(r"(CustomRole|AuditConfig|MemberRemove)$", t) for t in others), others
    assert importlib.import_module("pulumi_gcp")  # the SDK the plan uses


@pytest.mark.parametrize("token", ["gcp:projects/iAMMember:IAMMember", "gcp:serviceaccount/iAMBinding:IAMBinding",
                                   "gcp:secretmanager/secretIamPolicy:SecretIamPolicy",
                                   "gcp:storage/bucketIAMMember:BucketIAMMember", "gcp:kms/keyRingIAMBinding:KeyRingIAMBinding",
                                   "gcp:pubsub/topicIAMMember:TopicIAMMember", "gcp:organizations/iAMPolicy:IAMPolicy"])
def test_levels_read_from_type_tokens(token):
    expected = {"gcp:projects/iAMMember:IAMMember": "project", "gcp:serviceaccount/iAMBinding:IAMBinding": "serviceAccount",
                "gcp:secretmanager/secretIamPolicy:SecretIamPolicy": "secret", "gcp:storage/bucketIAMMember:BucketIAMMember": "bucket",
                "gcp:kms/keyRingIAMBinding:KeyRingIAMBinding": "keyRing", "gcp:pubsub/topicIAMMember:TopicIAMMember": "topic",
                "gcp:organizations/iAMPolicy:IAMPolicy": "organization"}[token]
    [grant] = access_gcp.grants(as_resources([{"type": token, "name": "g", "inputs": {
        "role": "roles/viewer", "member": "allUsers"} if "Policy" not in token else {
        "policyData": json.dumps({"bindings": [{"role": "roles/viewer", "members": ["allUsers"]}]})}}]))
    assert grant.level == expected and grant.role == "roles/viewer" and grant.members == ("allUsers",)
    assert grant.authoritative == (not token.endswith("Member"))


@pytest.mark.parametrize("field", ["role", "member", "members", "condition", "etag", "policyData"])
def test_a_grants_target_is_the_granted_on_resource_whatever_else_comes_first(field):
    """A policy's etag and policyData, and a binding's role, member(s) and condition, are not what
    it grants on, even when they come first in the resource's properties (the engine keeps their
    order). The type follows the field: members belong to a Binding, policyData to a Policy."""
    extra = {"role": "roles/viewer", "member": "allUsers", "members": ["allUsers"],
             "condition": {"expression": "true", "title": "t"}, "etag": "BwYq3Ps1aBc=",
             "policyData": json.dumps({"bindings": [{"role": "roles/viewer", "members": ["allUsers"]}]})}[field]
    kind = {"members": "Binding", "policyData": "Policy"}.get(field, "Member")
    inputs = {field: extra, "bucket": "call-recordings", "role": "roles/viewer", "member": "allUsers"}
    [grant] = access_gcp.grants(as_resources([{"type": f"gcp:storage/bucketIAM{kind}:BucketIAM{kind}", "name": "g",
                                               "inputs": inputs}]))
    assert grant.target == "call-recordings" and grant.members == ("allUsers",)


def test_an_impersonation_role_on_a_resource_that_holds_no_accounts_makes_its_holder_no_one():
    """Token creator granted on a bucket (a mistaken or custom grant the plan may still declare):
    a bucket holds no service accounts, so its holder becomes no account, and the walk goes on;
    the same grant on a service account makes its holder that account."""
    me = access_gcp.Account("caller@p.iam.gserviceaccount.com")
    other = access_gcp.Account("other@p.iam.gserviceaccount.com")

    def grant(typ: str, **on: str) -> list:
        return as_resources([{"type": typ, "name": "g", "inputs": {
            **on, "role": "roles/iam.serviceAccountTokenCreator", "member": f"serviceAccount:{me.email}"}}])

    on_bucket = grant("gcp:storage/bucketIAMMember:BucketIAMMember", bucket="call-recordings")
    assert access_gcp.impersonated(on_bucket, me) == {}
    assert [(r.grant.level, r.via) for r in access_gcp.closure(on_bucket, me)] == [("bucket", ())]
    on_account = grant("gcp:serviceaccount/iAMMember:IAMMember",
                       serviceAccountId=f"projects/p/serviceAccounts/{other.email}")
    assert list(access_gcp.impersonated(on_account, me)) == [other]


# For tests/policy/test_rules.py's FAILING table.
FAILING_CASES = {
    AGENT_RULE: (_authoritative_policy, "is granted roles/editor on project"),
    TOOL_RULE: (_set_for_namespace(_tool_principal, "roles/storage.admin"), "reaches roles/storage.admin on project"),
    ADAPTER_RULE: (_set_for_namespace(_adapter_principal, "roles/monitoring.editor"),
                   "reaches roles/monitoring.editor on project"),
}



def test_the_tool_server_hop_is_judged_by_its_grant_not_by_its_text():
    """The one allowed hop is a workloadIdentityUser grant on a service account. A token creator
    hop whose resource name spells the link's role (the text the rule used to search) is still a
    token creator hop; a workloadIdentityUser grant on the project is not the link either."""
    from policy.rules.access import _tool_server_problem
    from policy.rules.access_gcp import Account, Grant, Hop, Reach

    account, member = Account("gva-dev-places@p.iam.gserviceaccount.com"), "serviceAccount:p.svc.id.goog[ns/places-mcp]"
    quota = Grant("quota", "project", "p", "roles/serviceusage.serviceUsageConsumer",
                  (f"serviceAccount:{account.email}",), None, False)

    def reach_through(role: str, level: str, source: str) -> Reach:
        hop = Hop(member, "the legacy Workload Identity member of that account",
                  Grant(source, level, f"projects/p/serviceAccounts/{account.email}", role, (member,), None, False),
                  "a way in", account)
        return Reach(quota, quota.members[0], "that account", (hop,))

    link = reach_through("roles/iam.workloadIdentityUser", "serviceAccount", "places-identity-link")
    assert _tool_server_problem(link) is None
    disguised = reach_through("roles/iam.serviceAccountTokenCreator", "serviceAccount",
                              "x holds roles/iam.workloadIdentityUser on y")
    assert "holds roles/iam.workloadIdentityUser on" in disguised.chain[0]  # the old text test would pass it
    assert _tool_server_problem(disguised) == "reaches roles/serviceusage.serviceUsageConsumer on project p through 1 impersonation hop(s)"
    on_project = reach_through("roles/iam.workloadIdentityUser", "project", "wi-on-project")
    assert _tool_server_problem(on_project) is not None
    assert [h.role for h in link.hops] == ["roles/iam.workloadIdentityUser"] and link.via == (account,)


GRANTS_ONLY = "api.getAttribute('iam.googleapis.com/modifiedGrantsByRole', []).hasOnly([{roles}])"


@pytest.mark.parametrize(("condition", "roles"), [
    (GRANTS_ONLY.format(roles="'roles/monitoring.viewer'"), ("roles/monitoring.viewer",)),
    (GRANTS_ONLY.format(roles="'roles/a', \"roles/b\""), ("roles/a", "roles/b")),
    (GRANTS_ONLY.format(roles="'roles/a'") + " || true", None),  # anything added: no longer a limit
    ("request.time < timestamp('2030-01-01T00:00:00Z')", None),
    (None, None),
])
def test_a_project_iam_admin_condition_limits_grants_only_in_its_documented_form(condition, roles):
    """IAM's delegated role grants (Set limits on granting roles: modifiedGrantsByRole + hasOnly)."""
    assert access_gcp.delegated_roles(condition) == roles


@pytest.mark.parametrize(("limited_to", "impersonating"), [
    ("'roles/monitoring.viewer'", False),
    ("'roles/iam.serviceAccountTokenCreator'", True),
])
def test_a_limited_project_iam_admin_impersonates_only_through_what_it_may_grant(limited_to, impersonating):
    admin = "roles/resourcemanager.projectIamAdmin"
    why = access_gcp.impersonates(admin, {}, GRANTS_ONLY.format(roles=limited_to))
    assert (why is not None) is impersonating
    assert access_gcp.impersonates(admin, {}, None) is not None  # unlimited, it may grant itself anything
