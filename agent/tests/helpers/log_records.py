"""Log records as a logger would make them, for tests of the formatter and the filters."""

from __future__ import annotations

import logging


def make_record(
    level: int = logging.INFO,
    msg: str = "hello %s",
    args: tuple[object, ...] | None = ("world",),
    *,
    name: str = "voice_agent.test",
    pathname: str = "/app/x.py",
    lineno: int = 42,
    func: str = "fn",
    **extra: object,
) -> logging.LogRecord:
    """A record with ``extra`` set as attributes, the way ``logger.log(..., extra=...)`` does."""
    record = logging.LogRecord(name, level, pathname, lineno, msg, args, None, func)
    for key, value in extra.items():
        setattr(record, key, value)
    return record
