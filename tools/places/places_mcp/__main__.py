"""`python -m places_mcp`: validate the settings, then serve. Exec form in the image, so this is
PID 1 and uvicorn's SIGTERM handling (stop accepting, finish running requests) applies."""

from __future__ import annotations

import json
import logging
import os
import sys

from .settings import SettingsError, load_settings

# uvicorn stops waiting for running requests after this long on SIGTERM; a tool call is at most
# the 5 s upstream budget (settings.MAX_UPSTREAM_TIMEOUT_SECONDS), well inside the pod's grace.
GRACEFUL_SHUTDOWN_SECONDS = 10


class JsonLines(logging.Formatter):
    """One JSON object per line, in the shape Cloud Logging parses (severity, message), plus the
    record's structured `fields` (HTTP status, Google's reason) for log-based queries."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"severity": record.levelname, "logger": record.name, "message": record.getMessage()}
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update({k: v for k, v in fields.items() if k not in line})
        return json.dumps(line)


def main() -> int:
    try:
        settings = load_settings(os.environ)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    import uvicorn

    from .server import build_app

    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonLines())
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    config = uvicorn.Config(build_app(settings), host=settings.host, port=settings.port, access_log=False,
                            log_config=None, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS)
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
