"""Rules for Artifact Registry and Binary Authorization: immutable tags, cleanup, the nodes'
right to pull, images only a pipeline builds, and (protected stacks) only images the CI build
attested."""

from __future__ import annotations

from infra.images import IMAGES

from policy.rules.base import (
    ADVISORY, CLUSTER, DEPLOYMENT, MANDATORY, PROJECT_MEMBER, REGISTRY_READ_ROLES, REPOSITORY,
    REPOSITORY_MEMBER, Rule, prop, unless,
)

BINAUTHZ_POLICY = "gcp:binaryauthorization/policy:Policy"


def _immutable_tags(p, ctx):
    if prop(p, "format") != "DOCKER":
        return []
    return unless(prop(p, "dockerConfig", "immutableTags") is True,
                   "tags are mutable: a pushed tag can change under running pods and a rollback may not restore what ran")


def _cleanup_policies(p, ctx):
    policies = prop(p, "cleanupPolicies", default=[])
    if not policies:
        return ["no cleanup policies: images pile up and are billed forever"]
    if len(policies) > 10:
        return [f"{len(policies)} cleanup policies; Artifact Registry allows at most 10"]
    messages = unless(prop(p, "cleanupPolicyDryRun") is not True, "cleanup policies are in dry-run mode and delete nothing")
    # CI tags every image (its commit) and tags are immutable: a DELETE that only matches
    # untagged versions never deletes anything CI pushed.
    reaches_tagged = any(prop(c, "action") == "DELETE" and prop(c, "condition", "tagState", default="ANY") in ("ANY", "TAGGED")
                         for c in policies)
    messages += unless(reaches_tagged, "no DELETE policy matches tagged versions: every image CI pushes is tagged, so the "
                                       "repository grows without bound; add one with tagState ANY and olderThan")
    return messages


def _admits(pattern: str, image: str) -> bool:
    """Binary Authorization allowlist matching: `/**` at the end admits everything below the
    path, a trailing `*` anything within the last segment, otherwise the exact reference."""
    if pattern.endswith("/**"):
        return image.startswith(pattern[:-2])
    if pattern.endswith("*"):
        rest = image[len(pattern) - 1:]
        return image.startswith(pattern[:-1]) and "/" not in rest
    return image == pattern


def _repository_paths(resources) -> set[str]:
    return {f"{prop(r.props, 'location')}-docker.pkg.dev/{prop(r.props, 'project')}/{prop(r.props, 'repositoryId')}/"
            for r in resources if r.type == REPOSITORY}


def _workload_images(resources) -> set[str]:
    # init containers too: a native sidecar (the Cloud SQL Auth Proxy) is one of them
    return {str(c.get("image")) for r in resources if r.type == DEPLOYMENT
            for kind in ("initContainers", "containers")
            for c in prop(r.props, "spec", "template", "spec", kind, default=[]) if c.get("image")}


def _default_rule(props) -> tuple[str | None, str | None, list[str]]:
    rule = prop(props, "defaultAdmissionRule", default={})
    return rule.get("evaluationMode"), rule.get("enforcementMode"), list(rule.get("requireAttestationsBies") or [])


def _binauthz_only_stack_registry(resources, ctx):
    """Deny by default (or admit only what an attestor signed); wildcards only below the stack's
    own repositories; an exact image only if a workload of the stack runs it."""
    repos, images, findings = _repository_paths(resources), _workload_images(resources), []
    for r in (r for r in resources if r.type == BINAUTHZ_POLICY):
        mode, enforcement, attestors = _default_rule(r.props)
        closed = mode == "ALWAYS_DENY" or (mode == "REQUIRE_ATTESTATION" and attestors)
        if not closed or enforcement != "ENFORCED_BLOCK_AND_AUDIT_LOG":
            findings.append((r.name, f"the default admission rule is {mode}/{enforcement}: "
                                     "images from any registry are admitted; use ALWAYS_DENY (or REQUIRE_ATTESTATION with an "
                                     "attestor) with ENFORCED_BLOCK_AND_AUDIT_LOG"))
        for entry in prop(r.props, "admissionWhitelistPatterns", default=[]):
            pattern = str(entry.get("namePattern", ""))
            if "*" in pattern:
                ok = any(pattern.startswith(repo) for repo in repos)
            else:
                ok = pattern in images
            if not ok:
                findings.append((r.name, f"allowlist pattern {pattern} admits images from outside the stack's registry "
                                         f"({', '.join(sorted(repos)) or 'none'}) that no workload of the stack runs"))
    return findings


def _binauthz_requires_ci_attestation(resources, ctx):
    """Protected stacks run only what the CI build job built and signed: whoever can push to a
    registry (a deployer, a person with the project's writer role) cannot choose prod's image."""
    if not ctx.protected:
        return []
    findings = []
    for r in (r for r in resources if r.type == BINAUTHZ_POLICY):
        mode, _, attestors = _default_rule(r.props)
        if mode != "REQUIRE_ATTESTATION" or not attestors:
            findings.append((r.name, f"the default admission rule is {mode} in a protected stack: any image pushed to the "
                                     "stack's registry runs, whoever pushed it; set binaryAuthorizationAttestor to the "
                                     "bootstrap's buildAttestor (REQUIRE_ATTESTATION)"))
        wildcards = sorted(str(e.get("namePattern", "")) for e in prop(r.props, "admissionWhitelistPatterns", default=[])
                           if "*" in str(e.get("namePattern", "")))
        if wildcards:
            findings.append((r.name, f"allowlist pattern(s) {', '.join(wildcards)} admit images without the attestation in a "
                                     "protected stack; list exact references only"))
    return findings


def _image_name_in(image: str, repos: set[str]) -> str | None:
    """`voice-agent` of `<region>-docker.pkg.dev/<p>/<repo>/voice-agent@sha256:...`; None outside the repos."""
    for repo in repos:
        if image.startswith(repo):
            return image[len(repo):].split("@")[0].split(":")[0]
    return None


def _images_built_by_ci(resources, ctx):
    """Every image a workload pulls from the stack's registry is one infra/images.py knows how
    to build: otherwise nothing ever pushes it and the Deployment waits out Pulumi's timeout on
    the first `up`. (That each entry's Dockerfile exists, and that deploy.yml builds each, is
    tests/ci/test_workflows.py's.)"""
    known = {image.name: image for image in IMAGES.values()}
    findings = []
    for r in (r for r in resources if r.type == DEPLOYMENT):
        for kind in ("initContainers", "containers"):
            for c in prop(r.props, "spec", "template", "spec", kind, default=[]):
                name = _image_name_in(str(c.get("image", "")), _repository_paths(resources))
                if name is None:
                    continue
                if name not in known:
                    findings.append((r.name, f"container {c.get('name')} pulls {name} from the stack's registry, which no "
                                             "pipeline builds: add it to infra/images.py (name, build context, Dockerfile) "
                                             "or turn its component off"))
    return findings


def _binauthz_admits_workloads(resources, ctx):
    """A policy that would refuse the stack's own pods fails at their first rollout, not here.
    Under REQUIRE_ATTESTATION the stack's registry images pass by their attestation, which the
    build job signs for every image infra/images.py lists (registry-images-built-by-ci)."""
    findings, repos = [], _repository_paths(resources)
    for r in (r for r in resources if r.type == BINAUTHZ_POLICY):
        mode, _, attestors = _default_rule(r.props)
        attested = mode == "REQUIRE_ATTESTATION" and bool(attestors)
        patterns = [str(e.get("namePattern", "")) for e in prop(r.props, "admissionWhitelistPatterns", default=[])]
        findings += [(r.name, f"image {image} is not admitted by any allowlist pattern: its pods would be refused")
                     for image in sorted(_workload_images(resources))
                     if not any(_admits(p, image) for p in patterns)
                     and not (attested and _image_name_in(image, repos) is not None)]
    return findings


def _node_sa_reader(resources, ctx):
    node_accounts = {
        prop(r.props, "clusterAutoscaling", "autoProvisioningDefaults", "serviceAccount")
        for r in resources if r.type == CLUSTER
    } - {None}
    # A grant on the repository, or one on the whole project (broader than needed, but the
    # nodes can pull); every Artifact Registry role from reader up includes reading.
    readers = {
        str(prop(r.props, "member", default="")).removeprefix("serviceAccount:")
        for r in resources
        if r.type in (REPOSITORY_MEMBER, PROJECT_MEMBER) and prop(r.props, "role") in REGISTRY_READ_ROLES
    }
    return [(r.name, f"node service account {sa} cannot pull from this repository: grant roles/artifactregistry.reader on it")
            for r in resources if r.type == REPOSITORY for sa in sorted(node_accounts - readers)]


RULES: tuple[Rule, ...] = (
    Rule("registry-immutable-tags", MANDATORY, "Docker repositories have immutable tags.", (REPOSITORY,), _immutable_tags),
    Rule("registry-cleanup-policies", ADVISORY, "Repositories have active cleanup policies.", (REPOSITORY,), _cleanup_policies),
    Rule("registry-node-reader", MANDATORY, "The node service account can pull from the repository.", check_stack=_node_sa_reader),
    Rule("binauthz-only-stack-registry", MANDATORY, "Binary Authorization denies by default and admits only the stack's registry.",
         check_stack=_binauthz_only_stack_registry),
    Rule("binauthz-admits-the-workloads", MANDATORY, "Binary Authorization admits every image the stack runs.",
         check_stack=_binauthz_admits_workloads),
    Rule("binauthz-requires-ci-attestation", MANDATORY,
         "Protected stacks admit only images the CI build job attested (and exact platform images).",
         check_stack=_binauthz_requires_ci_attestation, config=("protected",)),
    Rule("registry-images-built-by-ci", MANDATORY,
         "Every image the stack pulls from its registry has a build in infra/images.py.", check_stack=_images_built_by_ci),
)
