"""The post-call record, and the documented receiver run against Aura's signing."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from aura_common.signing import signed_headers
from aura_telephony.model import CallEvent, Message, Transcript, Turn
from aura_telephony.post_call import build_record, outcome

RECEIVER_DOC = Path(__file__).resolve().parents[3] / "docs" / "outbound-and-webhooks.md"
AT = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def transcript(*events: CallEvent, turns: tuple[Turn, ...] = ()) -> Transcript:
    return Transcript(
        call_sid="CA1",
        caller="*******0000",
        callee="+15559870000",
        started_at=AT,
        ended_at=AT.replace(minute=2),
        status="completed",
        turns=turns,
        messages=(Message("Jo", "555 0100", "Call me.", AT),),
        events=events,
    )


def test_the_outcome_says_how_the_call_went() -> None:
    spoke = (Turn("assistant", "Hello!"), Turn("user", "hi"))
    assert outcome(None) == "abandoned"
    assert outcome(transcript(turns=(Turn("assistant", "Hello!"),))) == "abandoned"
    assert outcome(transcript(turns=spoke)) == "answered"
    assert outcome(transcript(CallEvent("transferred", "manager"), turns=spoke)) == "transferred"
    assert outcome(transcript(CallEvent("voicemail", "machine_end_beep"))) == "voicemail"
    assert outcome(transcript(CallEvent("refused"))) == "refused"


def test_the_record_holds_the_call_and_computes_its_duration() -> None:
    record = build_record(
        "CA1",
        {"status": "completed", "duration": None},
        transcript(CallEvent("tool", "order_status timeout", AT), turns=(Turn("user", "hi", AT),)),
        "The caller said hi.",
    )
    assert record["duration_seconds"] == 120
    assert record["tool_calls"] == [
        {"tool": "order_status", "outcome": "timeout", "arguments": {}, "at": AT.isoformat()}
    ]
    assert record["messages"][0]["callback_number"] == "555 0100"
    assert record["summary"] == "The caller said hi."
    assert record["transcript"] == [
        {
            "role": "user",
            "text": "hi",
            "at": AT.isoformat(),
            "interrupted": False,
            "passage_ids": [],
            "ungrounded": False,
            "language": None,
        }
    ]
    assert record["languages"] == ["en-US"]


def test_the_documented_receiver_accepts_aura_and_drops_duplicates() -> None:
    text = RECEIVER_DOC.read_text()
    [code] = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "call_ended" in b]
    assert len(code.strip().splitlines()) <= 25
    namespace: dict[str, Any] = {}
    exec(code, namespace)  # noqa: S102 (the documentation's own example)
    namespace["SECRET"] = b"s3cret"
    client = TestClient(namespace["app"])
    body = json.dumps({"call_id": "CA1"}).encode()
    signed = {**signed_headers("s3cret", body), "Idempotency-Key": "CA1"}
    for _ in range(2):
        response = client.post("/aura/calls", content=body, headers=signed)
        assert response.status_code == 200
    assert namespace["seen"] == {"CA1"}
    forged = {**signed_headers("other", body), "Idempotency-Key": "CA2"}
    assert client.post("/aura/calls", content=body, headers=forged).status_code == 401
    stale = {"X-Aura-Timestamp": str(int(time.time()) - 3600), "Idempotency-Key": "CA3"}
    assert client.post("/aura/calls", content=body, headers=stale).status_code == 401
