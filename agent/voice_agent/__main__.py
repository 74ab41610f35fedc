"""``python -m voice_agent start``: the production entry point (exec form in the image).

Settings are validated before the framework is imported, so a bad configuration costs
milliseconds and prints one clean message per problem (exit 2), never a traceback.
"""

from __future__ import annotations

import os
import sys

from .settings import SettingsError, load_settings

USAGE = """usage: python -m voice_agent start

Runs the LiveKit voice agent worker in production mode (drains on SIGTERM).
Configuration comes only from environment variables; see docs/agent.md."""

EXIT_USAGE = 2
EXIT_CONFIG = 2


def main(argv: list[str]) -> int:
    if argv in (["-h"], ["--help"], ["help"]):
        print(USAGE)
        return 0
    if argv != ["start"]:
        # dev/console modes skip the drain; production pods must run `start` only
        print(f"voice-agent: unsupported arguments {argv!r}\n\n{USAGE}", file=sys.stderr)
        return EXIT_USAGE
    try:
        settings = load_settings(os.environ)
    except SettingsError as exc:
        print(f"voice-agent: {exc}", file=sys.stderr)
        return EXIT_CONFIG

    from .worker import run

    return run(settings)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
