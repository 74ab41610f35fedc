"""Type tokens and child names. Tokens are part of every URN: changing one replaces resources."""

TYPE_PREFIX = "gke-voice-agents"


def type_token(module: str, component: str) -> str:
    """`gke-voice-agents:<module>:<Component>`, the one way a component's type is spelled."""
    return f"{TYPE_PREFIX}:{module}:{component}"


def child(name: str, role: str) -> str:
    return f"{name}-{role}"
