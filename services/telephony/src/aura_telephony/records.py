"""A call's record as JSON: one serializer for the admin API's transcript and the
post-call webhook, so that the two never describe a turn, a message or a tool call apart."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aura_telephony.model import Transcript


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
        calls.append({"tool": tool, "outcome": outcome, "at": iso(event.at)})
    return calls
