"""UpgradeNotifications: the Pub/Sub topic GKE announces upgrades and security bulletins on.

A node upgrade drains every agent pod on the node: calls carry on only as long as the drain
allows. Operators who subscribe here hear about an upgrade before it starts (and see the
maintenance policy's effect) instead of reading about it in the call-drop graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from infra.names import child, name_part, type_token

# Topic ids are at most 255 characters; the stack part is cut well before that.
_TOPIC_STACK_CHARS = 100
# A subscriber created after an event still finds it: the topic keeps messages 7 days
# (Pub/Sub topic retention allows 10 minutes to 31 days).
RETENTION = "604800s"


@dataclass(frozen=True)
class UpgradeNotificationsArgs:
    project: str
    stack: str


class UpgradeNotifications(pulumi.ComponentResource):
    topic_id: pulumi.Output[str]  # projects/<project>/topics/<topic>

    def __init__(self, name: str, args: UpgradeNotificationsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token("infra", "UpgradeNotifications"), name, None, opts)
        topic = gcp.pubsub.Topic(
            child(name, "topic"),
            project=args.project,
            name=f"voice-agents-{name_part(args.stack, _TOPIC_STACK_CHARS)}-gke-notifications",
            message_retention_duration=RETENTION,
            labels={"content": "gke-notifications"},
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.topic_id = topic.id
        self.register_outputs({"topicId": self.topic_id})
