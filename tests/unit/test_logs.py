from __future__ import annotations

import io
import json
import logging
import sys

import pytest
from opentelemetry.sdk.trace import TracerProvider

from aura_common.logs import JsonFormatter, mask_phone, setup_logging


def record(message: str, **extra: object) -> logging.LogRecord:
    logger = logging.getLogger("aura.test")
    made = logger.makeRecord("aura.test", logging.WARNING, __file__, 1, message, (), None)
    for key, value in extra.items():
        setattr(made, key, value)
    return made


def test_json_lines_carry_level_service_and_call_fields() -> None:
    line = JsonFormatter("telephony").format(record("no answer", call_sid="CA1", outcome="holding"))
    entry = json.loads(line)
    assert entry["level"] == "warning"
    assert entry["service"] == "telephony"
    assert entry["message"] == "no answer"
    assert (entry["call_sid"], entry["outcome"]) == ("CA1", "holding")
    assert "trace_id" not in entry


def test_json_lines_carry_the_current_trace() -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("turn") as span:
        entry = json.loads(JsonFormatter("llm").format(record("inside")))
        context = span.get_span_context()
    assert entry["trace_id"] == format(context.trace_id, "032x")
    assert entry["span_id"] == format(context.span_id, "016x")


def test_setup_picks_json_when_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    setup_logging("memory", "INFO", "auto")
    logging.getLogger("x").info("hello")
    assert json.loads(stream.getvalue())["message"] == "hello"
    setup_logging("memory", "INFO", "text")
    logging.getLogger("x").info("plain")
    assert stream.getvalue().splitlines()[-1].endswith("memory x: plain")


@pytest.mark.parametrize(
    ("number", "masked"),
    [("+15551239876", "*******9876"), ("anonymous", ""), ("1234", "****"), ("", "")],
)
def test_mask_phone(number: str, masked: str) -> None:
    assert mask_phone(number) == masked
