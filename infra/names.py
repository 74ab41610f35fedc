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
