"""Call actions: what a built-in tool in the llm service decided the call should do, as
telephony carries it out. Both sides of the gRPC seam speak this type; protobuf stays in
the servicer and the client."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ActionKind = Literal["transfer_call", "end_call", "take_message", "switch_language"]
ACTION_KINDS: tuple[ActionKind, ...] = (
    "transfer_call",
    "end_call",
    "take_message",
    "switch_language",
)


@dataclass(frozen=True, slots=True)
class CallAction:
    """A transfer's number comes from the operator's tools file, never from the model;
    empty means the deployment's TRANSFER_NUMBER. A language switch names one of the
    deployment's LANGUAGES."""

    kind: ActionKind
    department: str = ""
    number: str = ""
    caller_name: str = ""
    callback_number: str = ""
    message: str = ""
    language: str = ""
