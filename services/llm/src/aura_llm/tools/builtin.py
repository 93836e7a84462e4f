"""The built-in call actions: put the caller through, end the call, take a message. They
run nothing themselves: each returns an CallAction that telephony carries out, with values
the operator configured (a department's number) or the caller's own words (a message)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aura_common.actions import CallAction
from aura_llm.providers.base import ToolSpec
from aura_llm.tools.config import BuiltinTool
from aura_llm.tools.toolbox import Output, Tool

_NO_ARGUMENTS: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}


class TransferCall(Tool):
    kind = "builtin"
    ends_turn = True

    def __init__(self, departments: Mapping[str, str], description: str = "") -> None:
        self._departments = dict(departments)
        parameters: dict[str, Any] = _NO_ARGUMENTS
        about = "Put the caller through to a member of staff."
        if departments:
            names = sorted(departments)
            parameters = {
                "type": "object",
                "properties": {
                    "department": {
                        "type": "string",
                        "enum": names,
                        "description": "The department the caller needs.",
                    }
                },
                "required": ["department"],
                "additionalProperties": False,
            }
            about = f"Put the caller through to one of these departments: {', '.join(names)}."
        self.spec = ToolSpec(
            "transfer_call",
            description
            or f"{about} Use it only when the caller asks for a person or needs what you "
            "cannot do. Tell the caller you are putting them through in the same answer.",
            parameters,
        )

    async def run(self, call_id: str, arguments: dict[str, Any], seconds: float) -> Output:
        department = str(arguments.get("department", ""))
        # The schema allows only configured names, so the lookup cannot miss.
        number = self._departments.get(department, "")
        action = CallAction("transfer_call", department=department, number=number)
        return Output({"status": "transferring", "department": department}, action)


class EndCall(Tool):
    kind = "builtin"
    ends_turn = True

    def __init__(self, description: str = "") -> None:
        self.spec = ToolSpec(
            "end_call",
            description
            or "End the call, once the caller has said they need nothing more. Say a short "
            "goodbye in the same answer.",
            _NO_ARGUMENTS,
        )

    async def run(self, call_id: str, arguments: dict[str, Any], seconds: float) -> Output:
        return Output({"status": "ending the call"}, CallAction("end_call"))


class TakeMessage(Tool):
    kind = "builtin"

    def __init__(self, description: str = "") -> None:
        self.spec = ToolSpec(
            "take_message",
            description
            or "Take a message for the business when the caller asks to leave one or to be "
            "called back. Ask for their name, a callback number and the message first.",
            {
                "type": "object",
                "properties": {
                    "caller_name": {"type": "string", "minLength": 1, "maxLength": 200},
                    "callback_number": {"type": "string", "minLength": 1, "maxLength": 64},
                    "message": {"type": "string", "minLength": 1, "maxLength": 2000},
                },
                "required": ["caller_name", "callback_number", "message"],
                "additionalProperties": False,
            },
        )

    async def run(self, call_id: str, arguments: dict[str, Any], seconds: float) -> Output:
        action = CallAction(
            "take_message",
            caller_name=arguments["caller_name"],
            callback_number=arguments["callback_number"],
            message=arguments["message"],
        )
        return Output({"status": "message taken; it will be passed on"}, action)


class SwitchLanguage(Tool):
    """Offered whenever the deployment speaks more than one language: the caller may ask
    for another, and only the configured ones can be chosen (the schema's enum)."""

    kind = "builtin"

    def __init__(self, languages: list[str]) -> None:
        self.spec = ToolSpec(
            "switch_language",
            "Go on in another language when the caller asks for it or plainly speaks it. "
            f"Only these languages are available: {', '.join(languages)}. Answer in the new "
            "language from then on.",
            {
                "type": "object",
                "properties": {
                    "language": {
                        "type": "string",
                        "enum": languages,
                        "description": "The language to go on in (a BCP-47 tag).",
                    }
                },
                "required": ["language"],
                "additionalProperties": False,
            },
        )

    async def run(self, call_id: str, arguments: dict[str, Any], seconds: float) -> Output:
        language = str(arguments["language"])
        return Output(
            {"status": f"now speaking {language}"}, CallAction("switch_language", language=language)
        )


def builtin_tool(entry: BuiltinTool, departments: Mapping[str, str]) -> Tool:
    if entry.builtin == "transfer_call":
        return TransferCall(departments, entry.description)
    if entry.builtin == "end_call":
        return EndCall(entry.description)
    return TakeMessage(entry.description)
