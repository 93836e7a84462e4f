"""The llm service's client: protobuf in, telephony's model out. Every call carries a
deadline; failures are ServiceError."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc

from aura.llm.v1 import llm_service_pb2 as llm_pb
from aura.llm.v1 import llm_service_pb2_grpc as llm_grpc
from aura_common.actions import CallAction
from aura_telephony.budget import TurnBudget
from aura_telephony.channels import failing_as, streams_failing_as
from aura_telephony.config import Settings
from aura_telephony.errors import ServiceError
from aura_telephony.model import (
    Answer,
    CallEvent,
    Conversation,
    LiveAnswerDone,
    LiveAudio,
    LiveReady,
    LiveSpeechStarted,
    LiveSpeechStopped,
    LiveTranscript,
    Role,
    Sentence,
    ToolRunning,
    ToolUse,
    Turn,
)

_TO_LLM_ROLE: dict[Role, llm_pb.Role.ValueType] = {
    "user": llm_pb.ROLE_USER,
    "assistant": llm_pb.ROLE_ASSISTANT,
}


def _uses(uses: Sequence[llm_pb.ToolUse]) -> tuple[ToolUse, ...]:
    return tuple(ToolUse(u.tool, u.outcome, u.arguments) for u in uses)


def _actions(actions: Sequence[llm_pb.CallAction]) -> tuple[CallAction, ...]:
    found: list[CallAction] = []
    for action in actions:
        kind = action.WhichOneof("action")
        if kind == "transfer_call":
            transfer = action.transfer_call
            found.append(CallAction(kind, transfer.department, transfer.number))
        elif kind == "end_call":
            found.append(CallAction(kind))
        elif kind == "switch_language":
            found.append(CallAction(kind, language=action.switch_language.language))
        elif kind == "take_message":
            message = action.take_message
            found.append(
                CallAction(
                    kind,
                    caller_name=message.caller_name,
                    callback_number=message.callback_number,
                    message=message.message,
                )
            )
    return tuple(found)


LiveEvent = (
    LiveReady
    | LiveAudio
    | LiveTranscript
    | LiveSpeechStarted
    | LiveSpeechStopped
    | LiveAnswerDone
    | CallAction
    | CallEvent
)


class Conversing:
    """One realtime call's Converse stream: the caller's audio and telephony's requests
    out, the conversation's events in. Failures of either direction are ServiceError."""

    def __init__(self, call: Any) -> None:
        self._call = call

    async def _write(self, request: llm_pb.ConverseRequest) -> None:
        try:
            await self._call.write(request)
        except grpc.aio.AioRpcError as error:
            raise ServiceError("llm", error.code().name, error.details() or "") from error
        except (asyncio.InvalidStateError, RuntimeError) as error:  # the call has ended
            raise ServiceError("llm", "CANCELLED", str(error)) from error

    async def audio(self, ulaw: bytes) -> None:
        await self._write(llm_pb.ConverseRequest(audio=ulaw))

    async def played(self, item_id: str, audio_ms: int) -> None:
        played = llm_pb.Played(item_id=item_id, audio_ms=max(0, audio_ms))
        await self._write(llm_pb.ConverseRequest(played=played))

    async def say(self, text: str) -> None:
        await self._write(llm_pb.ConverseRequest(say=text))

    @streams_failing_as("llm")
    async def events(self) -> AsyncIterator[LiveEvent]:
        async for response in self._call:
            kind = response.WhichOneof("event")
            if kind == "audio":
                yield LiveAudio(response.audio.item_id, response.audio.audio)
            elif kind == "speech_started":
                yield LiveSpeechStarted()
            elif kind == "speech_stopped":
                yield LiveSpeechStopped(dict(response.speech_stopped.trace_context))
            elif kind == "transcript":
                t = response.transcript
                role: Role = "user" if t.role == llm_pb.ROLE_USER else "assistant"
                yield LiveTranscript(role, t.text, t.item_id, tuple(t.passage_ids), t.ungrounded)
            elif kind == "answer_done":
                yield LiveAnswerDone(response.answer_done.item_id)
            elif kind == "action":
                yield from_actions(response.action)
            elif kind == "tool_used":
                used = response.tool_used
                yield ToolUse(used.tool, used.outcome, used.arguments).event()
            elif kind == "ready":
                r = response.ready
                yield LiveReady(r.provider, r.model, r.failover)

    def close(self) -> None:
        self._call.cancel()


def from_actions(action: llm_pb.CallAction) -> CallAction:
    return _actions([action])[0]


class LlmClient:
    def __init__(self, channel: grpc.aio.Channel, settings: Settings) -> None:
        self._settings = settings
        self._stub = llm_grpc.LlmServiceStub(channel)

    def _prompt(
        self, call_sid: str, conversation: Conversation, user_text: str, language: str = ""
    ) -> dict[str, Any]:
        """The fields Generate and GenerateStream requests share."""
        return {
            "call_id": call_sid,
            "history": [
                llm_pb.Message(role=_TO_LLM_ROLE[t.role], text=t.text) for t in conversation.turns
            ],
            "user_text": user_text,
            "persona": llm_pb.Persona(
                assistant_name=self._settings.AI_ASSISTANT_NAME,
                call_context=conversation.purpose,
                language=language,
            ),
        }

    @failing_as("llm")
    async def generate(
        self,
        call_sid: str,
        conversation: Conversation,
        user_text: str,
        budget: TurnBudget,
        language: str = "",
    ) -> Answer:
        # Keep back enough of the budget to store the turn once the answer is in.
        timeout = budget.timeout(
            self._settings.TURN_BUDGET_SECONDS, reserve=self._settings.MEMORY_TIMEOUT_SECONDS / 2
        )
        response = await self._stub.Generate(
            llm_pb.GenerateRequest(**self._prompt(call_sid, conversation, user_text, language)),
            timeout=timeout,
        )
        return Answer(
            text=response.text,
            provider=response.provider,
            failover=response.failover,
            failures=tuple(f"{f.provider} {f.reason}" for f in response.failures),
            actions=_actions(response.actions),
            tools_used=_uses(response.tools_used),
            passage_ids=tuple(response.passage_ids),
            ungrounded=response.ungrounded,
        )

    @streams_failing_as("llm")
    async def generate_stream(
        self,
        call_sid: str,
        conversation: Conversation,
        user_text: str,
        seconds: float,
        language: str = "",
    ) -> AsyncIterator[Sentence | ToolRunning | CallAction | CallEvent]:
        """The answer sentence by sentence as the model writes it, a ToolRunning when it
        calls tools, and each call action as soon as a tool decides it. Leaving the loop
        early (or being cancelled) cancels the gRPC stream, and the llm service then closes
        the vendor's stream: nobody pays for tokens nobody hears."""
        call = self._stub.GenerateStream(
            llm_pb.GenerateStreamRequest(
                **self._prompt(call_sid, conversation, user_text, language)
            ),
            timeout=seconds,
        )
        try:
            async for response in call:
                if response.tool_running:
                    yield ToolRunning(response.tool_running)
                for use in _uses(response.tools_used):
                    yield use.event()
                for action in _actions(response.actions):
                    yield action
                if response.text:
                    yield Sentence(
                        response.text,
                        response.provider,
                        tuple(response.passage_ids),
                        response.ungrounded,
                    )
        finally:
            call.cancel()

    async def converse(
        self, call_sid: str, conversation: Conversation, greeting: str, seconds: float
    ) -> Conversing:
        """Open the realtime conversation of a call: `greeting` is said first; a call under
        way (`conversation`) continues. The stream's deadline bounds the whole call."""
        call = self._stub.Converse(timeout=seconds)
        conversing = Conversing(call)
        start = llm_pb.ConverseStart(
            **{
                k: v
                for k, v in self._prompt(call_sid, conversation, "").items()
                if k != "user_text"
            },
            greeting=greeting,
        )
        await conversing._write(llm_pb.ConverseRequest(start=start))
        return conversing

    @failing_as("llm")
    async def summarize(
        self,
        call_sid: str,
        turns: Sequence[Turn],
        seconds: float,
        purpose: str = "",
        language: str = "",
    ) -> str:
        """A summary of the call: for the records, or (`purpose` "handoff") for the person
        taking a transfer, in `language`."""
        response = await self._stub.Summarize(
            llm_pb.SummarizeRequest(
                call_id=call_sid,
                transcript=[llm_pb.Message(role=_TO_LLM_ROLE[t.role], text=t.text) for t in turns],
                purpose=purpose,
                language=language,
            ),
            timeout=seconds,
        )
        return response.summary

    @failing_as("llm")
    async def judge(
        self, call_sid: str, turns: Sequence[Turn], criteria: Sequence[str], seconds: float
    ) -> tuple[list[tuple[str, str, str]], str]:
        """The judge's verdicts on the call (criterion, pass/fail/skipped, reason), and the
        provider that judged ("" when none could)."""
        response = await self._stub.Judge(
            llm_pb.JudgeRequest(
                call_id=call_sid,
                transcript=[llm_pb.Message(role=_TO_LLM_ROLE[t.role], text=t.text) for t in turns],
                criteria=list(criteria),
            ),
            timeout=seconds,
        )
        verdicts = [(v.criterion, v.verdict, v.reason) for v in response.verdicts]
        return verdicts, response.provider
