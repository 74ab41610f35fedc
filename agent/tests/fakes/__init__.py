"""Network-level stand-ins for outside parties (Google's servers): see docs/agent.md, Call life."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from .gemini_live import Behaviour, FakeGeminiLive
from .metadata_server import MetadataServer

PROJECT = "voice-agent-test"


@contextlib.contextmanager
def google_stand_ins(
    workdir: Path, behaviour: Behaviour | None = None
) -> Iterator[tuple[FakeGeminiLive, dict[str, str]]]:
    """The metadata server and the Live API server; yields the fake and the worker's env."""
    metadata = MetadataServer(project=PROJECT).start()
    live = FakeGeminiLive(workdir, behaviour).start(token=metadata.token)
    env = {**metadata.env(), **live.env(), "GOOGLE_CLOUD_PROJECT": PROJECT}
    try:
        yield live, env
    finally:
        live.stop()
        metadata.stop()
