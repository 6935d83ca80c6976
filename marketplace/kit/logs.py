"""Structured logs: one JSON object a line, the request's id on every line logged while serving it.
Messages carry ids, never secrets or personal data."""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from typing import Any

_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}
# The id of the request being served (set by the web layer), None outside a request.
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class JsonFormatter(logging.Formatter):
    """A record as one line of JSON; a traceback goes in `exception`, escaped, never over several lines."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if (request_id := REQUEST_ID.get()) is not None:
            entry["request_id"] = request_id
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(level: str, as_json: bool) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if as_json else logging.Formatter(PLAIN_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request's whole URL at INFO; a webhook endpoint's URL may carry the receiver's token.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))


def server_logging(level: str, as_json: bool) -> dict[str, Any]:
    """A `logging.config.dictConfig` for the ASGI server's own loggers (its start, its workers, its access
    log), formatted as the service's own lines are."""
    formatter = {"()": f"{__name__}.JsonFormatter"} if as_json else {"format": PLAIN_FORMAT}
    handler = {"class": "logging.StreamHandler", "formatter": "service", "stream": "ext://sys.stdout"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"service": formatter},
        "handlers": {"console": handler},
        "loggers": {
            name: {"handlers": ["console"], "level": level.upper(), "propagate": False}
            for name in ("_granian", "granian.access")
        },
    }
