"""A call's record as JSON: one serializer for the admin API's transcript and the
post-call webhook, so that the two never describe a turn, a message or a tool call apart."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from aura_telephony.model import Transcript
from aura_telephony.recordings import REFUSED_EVENT, recording_of


def iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def turns_json(record: Transcript | None) -> list[dict[str, Any]]:
    return [
        {
            "role": t.role,
            "text": t.text,
            "at": iso(t.at),
            "interrupted": t.interrupted,
            "passage_ids": list(t.passage_ids),
            "ungrounded": t.ungrounded,
            "language": t.language or None,
        }
        for t in (record.turns if record else ())
    ]


def languages_json(record: Transcript | None, default: str) -> list[str]:
    """The languages the call used, in the order it used them (`default` for turns that
    name none)."""
    used = [t.language or default for t in (record.turns if record else ())]
    return list(dict.fromkeys(used))


def messages_json(record: Transcript | None) -> list[dict[str, Any]]:
    return [
        {
            "caller_name": m.caller_name,
            "callback_number": m.callback_number,
            "text": m.text,
            "at": iso(m.at),
        }
        for m in (record.messages if record else ())
    ]


def tool_calls_json(record: Transcript | None) -> list[dict[str, Any]]:
    calls = []
    for event in record.events if record else ():
        if event.kind != "tool":
            continue
        tool, outcome = event.detail, event.outcome
        if not outcome:  # recorded before tool events had their own outcome field
            tool, _, outcome = event.detail.partition(" ")
        try:
            arguments = json.loads(event.arguments) if event.arguments else {}
        except ValueError:
            arguments = {}
        calls.append(
            {"tool": tool, "outcome": outcome, "arguments": arguments, "at": iso(event.at)}
        )
    return calls


def recording_json(record: Transcript | None) -> dict[str, Any] | None:
    """The call's recording (Twilio's SID, status, duration and media URL) and whether,
    how and when the caller refused it; None for a call that was never to be recorded."""
    events = record.events if record else ()
    found = recording_of(record)
    refusal = next((e for e in events if e.kind == REFUSED_EVENT), None)
    if found is None and refusal is None:
        return None
    return {
        "sid": (found.sid or None) if found else None,
        # Refused before it started: there never was one.
        "status": found.status if found else "declined",
        "duration_seconds": found.duration_seconds if found else None,
        "url": (found.url or None) if found else None,
        "channels": found.channels if found else None,
        "refused_by": (refusal.detail or "words") if refusal else None,
        "refused_at": iso(refusal.at) if refusal else None,
    }
