"""Logging: one line per event, optionally JSON, tokens always redacted."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from typing import Callable


class RedactingFilter(logging.Filter):
    """Scrubs anything shaped like a Conduit token (and the configured token) from every record."""

    def __init__(self, secrets: tuple[str, ...] = ()):
        super().__init__()
        self.secrets = secrets
        # errors.redact (which phab.conduit re-exports): logging set up for any command imports no HTTP library.
        from clinicbot.errors import redact

        self.redact: Callable[[str], str] = redact

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        for secret in self.secrets:
            if secret:
                message = message.replace(secret, "api-REDACTED")
        record.msg = self.redact(message)
        record.args = None
        if record.exc_info:
            # Tracebacks are rendered by the formatter; keep them, but redact their text too.
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class OneLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        text = f"{ts} {record.levelname.lower()} {record.name}: {record.getMessage()}"
        if record.exc_text:
            text += " | " + " ".join(record.exc_text.split())
        return " ".join(text.splitlines())


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_text:
            data["exception"] = record.exc_text
        for key in ("job", "method", "task", "slug"):
            if hasattr(record, key):
                data[key] = getattr(record, key)
        return json.dumps(data, sort_keys=True)


def setup_logging(level: str = "warning", json_lines: bool = False, secrets: tuple[str, ...] = (),
                  stream=None) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_clinicbot", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler._clinicbot = True  # type: ignore[attr-defined]
    handler.addFilter(RedactingFilter(secrets))
    handler.setFormatter(JSONFormatter() if json_lines else OneLineFormatter())
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.WARNING))
