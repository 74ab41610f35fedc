"""Stages that must not share a LiveKit project.

Every API key of a LiveKit project has the same full access to all of its rooms (LiveKit has no
per-key scope), so two stages pointed at one `livekitUrl` share one blast radius: dev's key, which
pull-request previews can decrypt, would control prod's calls (DESIGN 8.5). The check runs where
both stacks' files are in reach: the program's config loader, in the project directory, so the
offline plan, CI's preview and up, and a person's `pulumi up` all refuse the same way.

A stack may still share on purpose (a single LiveKit Cloud project on a free plan, say): it names
the other stack in `livekitSharedWithStages`, and the decision is then in its committed file.
"""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import urlsplit

from domain.settings import ConfigError, Problem, setting_key
from domain.stackfiles import ROOT, StackFileError, load_stack_values, stack_file

URL_KEY = setting_key("livekitUrl")
ACK_KEY = setting_key("livekitSharedWithStages")


def project_directory() -> Path:
    """The directory of the running program (the Pulumi project: Pulumi.yaml and the stack files
    beside it). The language host and the offline plan both run __main__.py with runpy, which
    makes it sys.modules["__main__"]; anything else falls back to this repository."""
    main = getattr(sys.modules.get("__main__"), "__file__", None)
    if main and (Path(main).parent / "Pulumi.yaml").is_file():
        return Path(main).resolve().parent
    return ROOT


def same_livekit(a: str, b: str) -> bool:
    """One LiveKit project: same host (case-insensitive) and port; scheme and path do not make
    another project (ws:// and wss:// reach the same server)."""
    left, right = urlsplit(a), urlsplit(b)
    return (left.hostname or "", left.port) == (right.hostname or "", right.port)


def other_stages(stack: str, root: Path = ROOT) -> dict[str, str]:
    """stack -> livekitUrl of every other committed Pulumi.<stack>.yaml beside Pulumi.yaml. A
    file that cannot be read is not a stage we can compare with: its own plan reports it."""
    found = {}
    # the stack files' own directory: beside Pulumi.yaml, or where tests keep their fixture stacks
    for path in sorted(stack_file(stack, root).parent.glob("Pulumi.*.yaml")):
        other = path.name.removeprefix("Pulumi.").removesuffix(".yaml")
        if other == stack:
            continue
        try:
            values = load_stack_values(other, root)
        except StackFileError:
            continue
        url = values.config.get(URL_KEY)
        if url:
            found[other] = url
    return found


def sharing_problems(stack: str, url: str, acknowledged: tuple[str, ...], root: Path = ROOT) -> list[Problem]:
    others = other_stages(stack, root)
    problems = []
    for other, other_url in sorted(others.items()):
        if same_livekit(url, other_url) and other not in acknowledged:
            problems.append(Problem(
                URL_KEY, url,
                f"is also the LiveKit server of stack {other} (Pulumi.{other}.yaml): every key of a LiveKit project "
                f"controls all of its rooms, so {other}'s credentials would control this stack's calls; give each "
                f"stage its own LiveKit project, or accept the shared project with "
                f"`pulumi config set livekitSharedWithStages {other}`"))
    for name in acknowledged:
        if name == stack or name not in others:
            problems.append(Problem(
                ACK_KEY, ",".join(acknowledged),
                f"names {name!r}, which is not another stack with a livekitUrl here "
                f"(stacks: {', '.join(sorted(others)) or 'none'})"))
    return problems


def check_livekit_sharing(stack: str, url: str, acknowledged: tuple[str, ...], root: Path = ROOT) -> None:
    problems = sharing_problems(stack, url, acknowledged, root)
    if problems:
        raise ConfigError(problems)
