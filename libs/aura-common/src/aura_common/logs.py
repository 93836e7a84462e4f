"""One logging setup for all services: JSON lines (level, service, trace and span ids,
call fields) for log collectors, plain text in a terminal; and masking of what must not
reach the logs."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal

from opentelemetry import trace

LogFormat = Literal["auto", "json", "text"]

# Fields a log call may attach with extra={...}; they are already masked by the caller.
CALL_FIELDS = ("call_sid", "caller", "provider", "model", "outcome")


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            entry["trace_id"] = format(context.trace_id, "032x")
            entry["span_id"] = format(context.span_id, "016x")
        for name in CALL_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


# Loggers of vendor SDKs and their HTTP clients, kept at WARNING (see setup_logging).
SDK_LOGGERS = ("google_genai", "openai", "httpx", "httpcore", "twilio", "mcp")


def setup_logging(service: str, level: str = "INFO", fmt: LogFormat = "auto") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json" or (fmt == "auto" and not sys.stderr.isatty()):
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s %(levelname)s {service} %(name)s: %(message)s")
        )
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    # Vendor SDKs and their HTTP clients log every request at INFO; that chatter (and what
    # it may carry of callers' words) stays out unless LOG_LEVEL=DEBUG asks for it.
    quiet = logging.DEBUG if level.upper() == "DEBUG" else logging.WARNING
    for name in SDK_LOGGERS:
        logging.getLogger(name).setLevel(quiet)


def mask_phone(number: str) -> str:
    """Keep only the last four digits, which is enough to tell callers apart in a log."""
    digits = [c for c in number if c.isdigit()]
    if len(digits) <= 4:
        return "*" * len(digits)
    return "*" * (len(digits) - 4) + "".join(digits[-4:])
