"""Logging for operators: one line per event (text or JSON), secrets and addresses masked.

Nothing personal belongs in a log line, and a few libraries log URLs that contain the bot
token: a filter on the handler replaces the configured secrets and masks email addresses
in every record, whatever logger emitted it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["RedactingFilter", "configure_logging"]

_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
# Telegram bot tokens look like 123456789:AA...; mask any, configured or not.
_TOKEN = re.compile(r"(?<!\d)\d{6,12}:[A-Za-z0-9_-]{30,}")


class RedactingFilter(logging.Filter):
    """Replaces secrets and email addresses in the final message of every record."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        """The text with secrets replaced by *** and addresses shortened to x***@domain."""
        for secret in self.secrets:
            text = text.replace(secret, "***")
        text = _TOKEN.sub("***", text)
        return _EMAIL.sub(r"\1***@\2", text)

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place (formatting its arguments first)."""
        message = self.redact(record.getMessage())
        if record.exc_info:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = self.redact(text)
            record.exc_info = None
        record.msg, record.args = message, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, exception."""

    def format(self, record: logging.LogRecord) -> str:
        """Serialise a record."""
        data = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_text:
            data["exception"] = record.exc_text
        return json.dumps(data, ensure_ascii=False)


def configure_logging(*, secrets: Iterable[str | None], as_json: bool = False,
                      verbose: bool = False, stream: object | None = None,
                      path: Path | None = None) -> logging.Handler:
    """Install one handler (on ``stream``, or appending to ``path``) on the root; return it."""
    handler: logging.Handler = (
        logging.FileHandler(path, encoding="utf-8") if path is not None
        else logging.StreamHandler(stream))  # type: ignore[arg-type]
    handler.addFilter(RedactingFilter(secrets))
    handler.setFormatter(JsonFormatter() if as_json else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # httpx logs every request URL (with the token) at INFO: keep it to warnings.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return handler
