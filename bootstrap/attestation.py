"""BuildAttestation: the Binary Authorization attestor that says "the CI build job built this digest".

A Container Analysis note (ATTESTATION_AUTHORITY), an attestor over it, and a Cloud KMS
asymmetric signing key whose public half the attestor holds. The private half never leaves KMS,
and exactly one identity may sign with it: the build job's (`roles/cloudkms.signerVerifier` on
this key, nothing wider). Whoever else can push to a registry, a deployer included, cannot make
an image admissible in a stage whose policy requires this attestor (infra/binauthz.py).

Everything lives in the dedicated CI project, where no deployer holds any role, so no deployer
can add itself as a signer. Each stage's Binary Authorization service agent may read the
attestor and the note's occurrences (the documented multi-project set-up: attestor project,
deployer project, attestation project).
"""

from __future__ import annotations

from dataclasses import dataclass
import pulumi
import pulumi_gcp as gcp

from infra.names import child, type_token

ATTESTOR_ID = "built-by-ci"
NOTE_ID = "built-by-ci"
KEY_RING = "build-attestation"
KEY = "attestor"
# Elliptic-curve P-256 with SHA-256: one of the PKIX algorithms Binary Authorization verifies
# (attestors.create, PkixPublicKey.SignatureAlgorithm) and a Cloud KMS asymmetric signing
# algorithm (CryptoKeyVersionAlgorithm EC_SIGN_P256_SHA256).
SIGNING_ALGORITHM = "EC_SIGN_P256_SHA256"
SIGNER_ROLE = "roles/cloudkms.signerVerifier"
# Creating an attestation attaches an occurrence to the note.
NOTE_ATTACHER_ROLE = "roles/containeranalysis.notes.attacher"
# What the build job (checking an existing image) and each stage's verifier read.
NOTE_OCCURRENCES_VIEWER_ROLE = "roles/containeranalysis.notes.occurrences.viewer"
ATTESTOR_VERIFIER_ROLE = "roles/binaryauthorization.attestorsVerifier"
ATTESTOR_VIEWER_ROLE = "roles/binaryauthorization.attestorsViewer"


def binauthz_service_agent(project_number: str) -> str:
    """The Binary Authorization service agent of a project (Google-managed)."""
    return f"serviceAccount:service-{project_number}@gcp-sa-binaryauthorization.iam.gserviceaccount.com"


def key_version_resource(version_name: str) -> str:
    """The public key id Binary Authorization expects for a Cloud KMS key: the version's full
    resource URI (attestors docs, "Cloud KMS"; gcloud's --keyversion builds the same)."""
    return f"//cloudkms.googleapis.com/v1/{version_name}"


@dataclass(frozen=True)
class BuildAttestationArgs:
    project: str  # the CI home project
    kms_location: str
    signer: pulumi.Input[str]  # the build job's identity, serviceAccount:...
    verifier_projects: tuple[str, ...]  # stage projects whose policy may require the attestor


class BuildAttestation(pulumi.ComponentResource):
    attestor: pulumi.Output[str]  # projects/<p>/attestors/<id>: binaryAuthorizationAttestor of a stack
    key_version: pulumi.Output[str]  # projects/.../cryptoKeyVersions/1, what the build job signs with

    def __init__(self, name: str, args: BuildAttestationArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("bootstrap", "BuildAttestation"), name, None, opts)
        child_opts = pulumi.ResourceOptions(parent=self)
        kept = pulumi.ResourceOptions(parent=self, protect=True)
        # Key rings and key versions can never be deleted in Cloud KMS: protected.
        ring = gcp.kms.KeyRing(child(name, "key-ring"), project=args.project, name=KEY_RING,
                               location=args.kms_location, opts=kept)
        key = gcp.kms.CryptoKey(
            child(name, "key"), name=KEY, key_ring=ring.id, purpose="ASYMMETRIC_SIGN",
            version_template={"algorithm": SIGNING_ALGORITHM, "protection_level": "SOFTWARE"}, opts=kept)
        gcp.kms.CryptoKeyIAMMember(child(name, "key-signer"), crypto_key_id=key.id, role=SIGNER_ROLE,
                                   member=args.signer, opts=child_opts)
        version = gcp.kms.get_kms_crypto_key_version_output(crypto_key=key.id, version=1)
        note = gcp.containeranalysis.Note(
            child(name, "note"), project=args.project, name=NOTE_ID,
            attestation_authority={"hint": {"human_readable_name": "built and pushed by the CI build job"}},
            opts=child_opts)
        attestor = gcp.binaryauthorization.Attestor(
            child(name, "attestor"), project=args.project, name=ATTESTOR_ID,
            description="Images the deploy workflow's build job built, pushed and signed by digest",
            attestation_authority_note={
                "note_reference": pulumi.Output.concat("projects/", args.project, "/notes/", note.name),
                "public_keys": [{
                    "id": version.name.apply(key_version_resource),
                    "pkix_public_key": {
                        "public_key_pem": version.public_keys.apply(lambda keys: keys[0].pem),
                        "signature_algorithm": version.public_keys.apply(lambda keys: keys[0].algorithm),
                    },
                }],
            },
            opts=child_opts)
        gcp.containeranalysis.NoteIamMember(child(name, "note-signer"), project=args.project, note=note.name,
                                            role=NOTE_ATTACHER_ROLE, member=args.signer, opts=child_opts)
        # The build job reads back attestations of an image it finds already pushed.
        gcp.containeranalysis.NoteIamMember(child(name, "note-signer-reads"), project=args.project, note=note.name,
                                            role=NOTE_OCCURRENCES_VIEWER_ROLE, member=args.signer, opts=child_opts)
        gcp.binaryauthorization.AttestorIamMember(child(name, "attestor-signer-reads"), project=args.project,
                                                  attestor=attestor.name, role=ATTESTOR_VIEWER_ROLE,
                                                  member=args.signer, opts=child_opts)
        for project in sorted(set(args.verifier_projects)):
            agent = gcp.organizations.get_project_output(project_id=project).number.apply(binauthz_service_agent)
            gcp.binaryauthorization.AttestorIamMember(
                child(name, f"verifier-{project}"), project=args.project, attestor=attestor.name,
                role=ATTESTOR_VERIFIER_ROLE, member=agent, opts=child_opts)
            gcp.containeranalysis.NoteIamMember(
                child(name, f"verifier-{project}-occurrences"), project=args.project, note=note.name,
                role=NOTE_OCCURRENCES_VIEWER_ROLE, member=agent, opts=child_opts)
        self.attestor = pulumi.Output.concat("projects/", args.project, "/attestors/", attestor.name)
        self.key_version = version.name
        self.register_outputs({"attestor": self.attestor, "keyVersion": self.key_version})
