"""Who can reach what: every IAM binding the bootstrap declares, read back from the mocked
resources and checked against the trust boundaries in docs/ci.md.

A CI identity must never hold a right over a CI identity (the service accounts, their
workload-identity bindings), over the identity pool or its provider, or over another stage's
state bucket or secrets key. Rights are read from the declared bindings, not from the code that
builds them, so a new binding anywhere in the bootstrap is checked too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bootstrap.config import BOOTSTRAP_BUCKET_SUFFIX, BootstrapConfig
from tests.ci.bootstrap_harness import BootstrapRun

PROJECT_IAM = "gcp:projects/iAMMember:IAMMember"
SA_IAM = "gcp:serviceaccount/iAMMember:IAMMember"
BUCKET_IAM = "gcp:storage/bucketIAMMember:BucketIAMMember"
KEY_IAM = "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember"
NOTE_IAM = "gcp:containeranalysis/noteIamMember:NoteIamMember"
ATTESTOR_IAM = "gcp:binaryauthorization/attestorIamMember:AttestorIamMember"
# Any binding type that names a member: anything else granting a CI member must be added here.
BINDING_TYPES_WITH_A_MEMBER = {PROJECT_IAM, SA_IAM, BUCKET_IAM, KEY_IAM, NOTE_IAM, ATTESTOR_IAM}
# The attestor's key: its signer is the build job alone (bootstrap/attestation.py).
ATTESTATION_KEY = "/keyRings/build-attestation/cryptoKeys/attestor"
SIGNER_ROLE = "roles/cloudkms.signerVerifier"


@dataclass(frozen=True)
class Identity:
    member: str  # serviceAccount:<email>
    kind: str  # deployer, builder, previewer
    stacks: frozenset[str]  # the stages whose state and key it may touch (the builder: none)


def ci_identities(run: BootstrapRun, cfg: BootstrapConfig) -> dict[str, Identity]:
    out = run.outputs
    found = {f"serviceAccount:{out['previewServiceAccount']}": Identity(
        f"serviceAccount:{out['previewServiceAccount']}", "previewer", frozenset(cfg.preview_stacks))}
    for stack, email in out["deployServiceAccounts"].items():
        found[f"serviceAccount:{email}"] = Identity(f"serviceAccount:{email}", "deployer", frozenset({stack}))
    builder = f"serviceAccount:{out['buildServiceAccount']}"
    found[builder] = Identity(builder, "builder", frozenset())
    return found


def _stage_of(name: str, prefix: str, cfg: BootstrapConfig) -> str | None:
    for stack in (BOOTSTRAP_BUCKET_SUFFIX, *(e.stack for e in cfg.environments)):
        if name == f"{prefix}{stack}" or name.endswith(f"/{prefix}{stack}"):
            return stack
    return None


def violations(run: BootstrapRun, cfg: BootstrapConfig) -> list[str]:
    """Every binding that lets a CI identity reach past its boundary, one line each."""
    identities = ci_identities(run, cfg)
    problems: list[str] = []
    for resource in run.resources:
        inputs: dict[str, Any] = resource["inputs"]
        who = identities.get(inputs.get("member", ""))
        if who is None:
            continue
        where = f"{resource['name']} ({inputs.get('role')})"
        typ = resource["type"]
        if typ not in BINDING_TYPES_WITH_A_MEMBER:
            problems.append(f"{who.kind} {who.member} is granted something the checks do not know: {where} {typ}")
        elif typ == PROJECT_IAM and inputs["project"] == cfg.home_project:
            problems.append(f"{who.kind} {who.member} holds a project role where the CI identities, pool and state live: {where}")
        elif typ == SA_IAM:
            problems += _account_grant_problems(who, inputs, where, cfg)
        elif typ == BUCKET_IAM:
            stage = _stage_of(inputs["bucket"], f"{cfg.state_bucket_prefix}-", cfg)
            if stage not in who.stacks:
                problems.append(f"{who.kind} {who.member} reaches the state of stage {stage}: {where}")
            elif who.kind != "deployer" and not inputs["role"].endswith(("Viewer", "viewer")):
                problems.append(f"{who.kind} {who.member} may write state: {where}")
        elif typ == KEY_IAM and inputs["cryptoKeyId"].endswith(ATTESTATION_KEY):
            if (who.kind, inputs["role"]) != ("builder", SIGNER_ROLE):
                problems.append(f"{who.kind} {who.member} may use the attestor's signing key: {where}")
        elif typ in (NOTE_IAM, ATTESTOR_IAM):
            if who.kind != "builder":
                problems.append(f"{who.kind} {who.member} holds a role on the build attestor or its note: {where}")
        elif typ == KEY_IAM:
            stage = _stage_of(inputs["cryptoKeyId"], "stack-secrets-", cfg)
            if stage not in who.stacks:
                problems.append(f"{who.kind} {who.member} reaches the secrets key of stage {stage}: {where}")
            elif inputs["role"] != "roles/cloudkms.cryptoKeyDecrypter":
                problems.append(f"{who.kind} {who.member} may do more than decrypt: {where}")
        elif typ == PROJECT_IAM:
            problems += _project_grant_problems(who, inputs, where, cfg)
    return problems


def own_accounts(cfg: BootstrapConfig, stacks: frozenset[str]) -> dict[str, str]:
    """email -> purpose of every account the given stacks run as (the bootstrap creates them)."""
    from infra.names import account_email, stack_account_ids

    return {account_email(account_id, cfg.environment(s).project): purpose
            for s in stacks for purpose, account_id in stack_account_ids(s).items()}


def _account_grant_problems(who: Identity, inputs: dict[str, Any], where: str, cfg: BootstrapConfig) -> list[str]:
    """A deployer may administer its own stack's accounts, and act as the node account only."""
    from bootstrap.roles import ACCOUNT_ROLES

    email = str(inputs.get("serviceAccountId", "")).rsplit("/", 1)[-1].lower()
    purpose = own_accounts(cfg, who.stacks).get(email) if who.kind == "deployer" else None
    allowed = {use.role for use, purposes in ACCOUNT_ROLES if purpose in purposes}
    if purpose is None or inputs.get("role") not in allowed:
        return [f"{who.kind} {who.member} holds a role on a service account its stack does not run as: {where} on {email}"]
    return []


def _project_grant_problems(who: Identity, inputs: dict[str, Any], where: str, cfg: BootstrapConfig) -> list[str]:
    if who.kind == "builder":
        from bootstrap.roles import BUILDER_ROLES

        pushes_to = {cfg.environment(s).project for s in cfg.build_stacks}
        if inputs["project"] in pushes_to and inputs["role"] in {u.role for u in BUILDER_ROLES}:
            return []
        return [f"builder {who.member} holds a role beyond pushing to {', '.join(sorted(pushes_to))}: {where}"]
    own = {cfg.environment(s).project for s in who.stacks}
    if inputs["project"] in own:
        if who.kind != "deployer" and not inputs["role"].endswith(("viewer", "Viewer")):
            return [f"{who.kind} {who.member} may change its stage's project: {where}"]
        return []
    promoted = {cfg.environment(cfg.environment(s).promote_from).project
                for s in who.stacks if who.kind == "deployer" and cfg.environment(s).promote_from}
    if inputs["project"] in promoted and inputs["role"] == "roles/artifactregistry.reader":
        return []
    return [f"{who.kind} {who.member} holds a role in another stage's project {inputs['project']}: {where}"]
