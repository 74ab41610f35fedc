"""AgentRegistry: the Artifact Registry Docker repository the agent image is pulled from."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.config import RegistrySettings
from infra.names import child, type_token


@dataclass(frozen=True)
class AgentRegistryArgs:
    project: str
    region: str
    stack: str
    settings: RegistrySettings
    reader_member: pulumi.Input[str]  # the node service account: pulls images, nothing else


class AgentRegistry(pulumi.ComponentResource):
    url: pulumi.Output[str]

    def __init__(self, name: str, args: AgentRegistryArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("infra", "AgentRegistry"), name, None, opts)
        child_opts = pulumi.ResourceOptions(parent=self)
        repo = gcp.artifactregistry.Repository(
            child(name, "docker"),
            project=args.project,
            location=args.region,
            repository_id=f"voice-agents-{args.stack}",
            format="DOCKER",
            description="LiveKit voice agent images",
            # A tag, once pushed, always names the same image: a rollback redeploys exactly
            # what ran before, and a deployed tag cannot be overwritten under a running pod.
            docker_config={"immutable_tags": True},
            cleanup_policy_dry_run=False,
            cleanup_policies=_cleanup_policies(args.settings),
            vulnerability_scanning_config={"enablement_config": "INHERITED"},
            opts=child_opts,
        )
        gcp.artifactregistry.RepositoryIamMember(
            child(name, "node-reader"),
            project=args.project,
            location=args.region,
            repository=repo.repository_id,
            role="roles/artifactregistry.reader",
            member=args.reader_member,
            opts=child_opts,
        )
        self.url = pulumi.Output.concat(args.region, "-docker.pkg.dev/", args.project, "/", repo.repository_id)
        self.register_outputs({"url": self.url})


def _cleanup_policies(s: RegistrySettings) -> list[dict]:
    """Keyed by stable ids. When policies overlap, KEEP wins over DELETE (Artifact Registry
    cleanup policy docs), so recent versions survive even if untagged."""
    return [
        {"id": "keep-recent", "action": "KEEP", "most_recent_versions": {"keep_count": s.keep_recent}},
        {
            "id": "delete-untagged",
            "action": "DELETE",
            "condition": {"tag_state": "UNTAGGED", "older_than": f"{s.untagged_retention_days * 86400}s"},
        },
    ]
