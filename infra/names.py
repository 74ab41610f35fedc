"""Type tokens, child names and name fragments. Tokens are part of every URN: changing one
replaces every resource under it, so they are spelled in exactly one place."""

from __future__ import annotations

import re

TYPE_PREFIX = "gke-voice-agents"


def type_token(module: str, component: str) -> str:
    """`gke-voice-agents:<module>:<Component>`, the one way a component's type is spelled."""
    return f"{TYPE_PREFIX}:{module}:{component}"


def child(name: str, role: str) -> str:
    """Children are named after their parent and their role, never a list position."""
    return f"{name}-{role}"


def name_part(text: str, limit: int) -> str:
    """`text` (a stack name) as a fragment of a GCP resource name.

    Pulumi stack names may hold upper case, `_` and `.`; GCP names (service account ids,
    cluster names, repository ids) take only lower-case letters, digits and dashes and have
    hard length limits. Long stack names are cut rather than refused: the random suffix the
    components add keeps cut names unique.
    """
    cleaned = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return cleaned[:limit].rstrip("-") or "stack"


LIVEKIT_SECRET_INFIX = "-livekit-"
# The label the LiveKit credential secrets carry and the policy rules know them by.
LIVEKIT_SECRET_LABEL = ("gke-voice-agents-role", "livekit-credentials")


def livekit_secret_id(stack: str, file: str) -> str:
    """The Secret Manager secret holding one LiveKit credential file (api-key, api-secret) of a
    stack; stacks may share a project, so the stack is in the name (ids take [A-Za-z0-9_-])."""
    return f"{name_part(stack, 40)}{LIVEKIT_SECRET_INFIX}{file}"


# The Google service accounts a stack runs as. The bootstrap (bootstrap/, one CI environment per
# stack) creates them in the stack's project and gives that stack's deployer admin rights on each
# of them alone; the stack only refers to them. IAM Conditions cannot narrow a project-wide
# serviceAccountAdmin to some accounts (iam.googleapis.com is not among the services that
# evaluate resource attributes: "Resource attributes for IAM Conditions",
# https://cloud.google.com/iam/docs/conditions-resource-attributes), so the names must be known
# before the stack exists: no random suffix. Ids are 6-30 characters (GCP naming rules).
ACCOUNT_TOOLS = ("places",)  # the tool servers with a Google identity of their own (infra/tool_identity.py)


def node_account_id(stack: str) -> str:
    """The cluster's nodes: "gva-<stack, 15>-nodes"."""
    return f"gva-{name_part(stack, 15)}-nodes"


def database_account_id(stack: str) -> str:
    """The checkpoint database's IAM user (the agent's Cloud SQL Auth Proxy acts as it)."""
    return f"gva-{name_part(stack, 18)}-db"


def tool_account_id(stack: str, tool: str) -> str:
    """A tool server's own Google identity: "gva-<stack, 15>-<tool, 10>"."""
    return f"gva-{name_part(stack, 15)}-{name_part(tool, 10)}"


def stack_account_ids(stack: str) -> dict[str, str]:
    """Every service account stack `stack` may run as, by purpose: what the bootstrap creates."""
    return {"nodes": node_account_id(stack), "database": database_account_id(stack),
            **{tool: tool_account_id(stack, tool) for tool in ACCOUNT_TOOLS}}


def account_email(account_id: str, project: str) -> str:
    return f"{account_id}@{project}.iam.gserviceaccount.com"
