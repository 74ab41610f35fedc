"""AgentRegistry: the Artifact Registry Docker repository the agent image is pulled from."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from domain.settings import RegistrySettings
from infra.names import child, name_part, type_token

READER_ROLE = "roles/artifactregistry.reader"
# Repository ids are at most 63 characters (Artifact Registry naming rules).
_REPO_STACK_CHARS = 63 - len("voice-agents-")
SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class AgentRegistryArgs:
    project: str
    region: str
    stack: str
    settings: RegistrySettings
    reader_member: pulumi.Input[str]  # the node service account: pulls images, nothing else


class AgentRegistry(pulumi.ComponentResource):
    url: pulumi.Output[str]  # <region>-docker.pkg.dev/<project>/<repository>

    def __init__(self, name: str, args: AgentRegistryArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("infra", "AgentRegistry"), name, None, opts)
        child_opts = pulumi.ResourceOptions(parent=self)
        repo = gcp.artifactregistry.Repository(
            child(name, "docker"),
            project=args.project,
            # Same region as the cluster: pulls stay in-region (no egress charge, less latency
            # on a scale-up).
            location=args.region,
            repository_id=repository_id(args.stack),
            format="DOCKER",
            description="LiveKit voice agent images",
            # A tag, once pushed, always names the same image: a rollback redeploys exactly
            # what ran before, and nobody can swap the image under running pods.
            docker_config={"immutable_tags": True},
            cleanup_policy_dry_run=False,
            cleanup_policies=cleanup_policies(args.settings),
            # Scan on push, as the project's Container Scanning API setting says: nothing is
            # scanned unless containerscanning.googleapis.com is enabled (README, "Going to
            # `pulumi up`"; tests/test_readme.py). GKE's own workload scanning is gone (see
            # infra/cluster.py), so this is where CVEs show up.
            vulnerability_scanning_config={"enablement_config": "INHERITED"},
            opts=child_opts,
        )
        # On the repository, not the project: the nodes can read these images and no others.
        gcp.artifactregistry.RepositoryIamMember(
            child(name, "node-reader"),
            project=args.project,
            location=args.region,
            repository=repo.repository_id,
            role=READER_ROLE,
            member=args.reader_member,
            opts=child_opts,
        )
        self.url = pulumi.Output.concat(args.region, "-docker.pkg.dev/", args.project, "/", repo.repository_id)
        # The same as registry_url(): CI computes it from the committed stack file (infra/images.py).
        self.register_outputs({"url": self.url})


def repository_id(stack: str) -> str:
    return f"voice-agents-{name_part(stack, _REPO_STACK_CHARS)}"


def registry_url(project: str, region: str, stack: str) -> str:
    """The stack's registry (output registryUrl), known from its settings alone: the build job
    pushes and signs for it without reading any stage's state."""
    return f"{region}-docker.pkg.dev/{project}/{repository_id(stack)}"


def cleanup_policies(s: RegistrySettings) -> list[dict]:
    """Keyed by stable ids. When a version matches both, KEEP wins over DELETE (Artifact Registry
    cleanup policy docs), so the newest versions survive whatever else matches. CI tags every
    image with its commit and tags are immutable, so an untagged-only rule would never delete a
    thing: `delete-old` removes any version past the retention, tagged or not. Artifact
    Registry allows at most 10 policies per repository; we use three."""
    return [
        {"id": "keep-recent", "action": "KEEP", "most_recent_versions": {"keep_count": s.keep_recent}},
        {
            "id": "delete-untagged",
            "action": "DELETE",
            "condition": {"tag_state": "UNTAGGED", "older_than": f"{s.untagged_retention_days * SECONDS_PER_DAY}s"},
        },
        {
            "id": "delete-old",
            "action": "DELETE",
            "condition": {"tag_state": "ANY", "older_than": f"{s.retention_days * SECONDS_PER_DAY}s"},
        },
    ]
