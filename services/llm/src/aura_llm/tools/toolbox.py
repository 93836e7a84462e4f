"""The tools of one deployment, and running one tool call safely: arguments checked
against the tool's schema before anything runs, every call bounded by what remains of the
turn's deadline, and every failure turned into a result the model can apologise for."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from jsonschema import Draft202012Validator
from opentelemetry import trace

from aura_common.actions import CallAction
from aura_llm import observe
from aura_llm.providers.base import ToolCall, ToolResult, ToolSpec

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("aura.llm.tools")

Outcome = Literal["ok", "error", "timeout", "invalid_arguments"]

# A tool result longer than this is refused: the model's context and the turn's time
# are both short, and a phone answer needs a few facts, not a document.
MAX_RESULT_BYTES = 16 * 1024
# Below this a tool cannot even connect; the call is reported as timed out instead.
_MIN_TOOL_SECONDS = 0.05


@dataclass(frozen=True, slots=True)
class Output:
    """What a tool returned: JSON-ready data for the model, and any call action."""

    data: Any
    action: CallAction | None = None


class ToolError(Exception):
    """A tool ran but could not do its work; the message goes back to the model."""


class Tool(ABC):
    spec: ToolSpec
    kind: str  # builtin, http or mcp: a span attribute
    timeout_seconds: float = 5.0
    ends_turn = False  # a transfer or a hang-up: no further model round
    _validator: Draft202012Validator | None = None

    def problems(self, arguments: dict[str, Any]) -> list[str]:
        """What is wrong with `arguments` by the tool's JSON Schema, most relevant first."""
        if self._validator is None:
            self._validator = Draft202012Validator(self.spec.parameters)
        errors = sorted(self._validator.iter_errors(arguments), key=lambda e: e.path)
        return [
            f"{'/'.join(map(str, e.absolute_path)) or 'arguments'}: {e.message}" for e in errors
        ]

    @abstractmethod
    async def run(self, call_id: str, arguments: dict[str, Any], seconds: float) -> Output:
        """Do the work within `seconds`; raise ToolError when it cannot."""


@dataclass(frozen=True, slots=True)
class Ran:
    """One tool call as it went: the result for the model, and any action."""

    result: ToolResult
    outcome: Outcome
    action: CallAction | None
    ends_turn: bool


def _as_json(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)


class ToolSource(ABC):
    """Where tools come from that may change while the service runs (an MCP server)."""

    @abstractmethod
    def tools(self) -> Sequence[Tool]: ...

    async def start(self) -> None:
        """List the tools for the first time; failures are logged, not raised."""

    async def close(self) -> None:
        """Stop refreshing."""


class Toolbox:
    def __init__(self, tools: Sequence[Tool], sources: Sequence[ToolSource] = ()) -> None:
        self._fixed = {t.spec.name: t for t in tools}
        self._sources = tuple(sources)

    def _tools(self) -> dict[str, Tool]:
        tools: dict[str, Tool] = {}
        for source in self._sources:
            for tool in source.tools():
                if tool.spec.name in self._fixed or tool.spec.name in tools:
                    continue  # the tools file's own names come first, then the first server
                tools[tool.spec.name] = tool
        return {**self._fixed, **tools}

    def takes_time(self, name: str) -> bool:
        """Whether the tool goes out to a service (HTTP, MCP): a built-in is instant."""
        tool = self._tools().get(name)
        return tool is not None and tool.kind != "builtin"

    def specs(self) -> tuple[ToolSpec, ...]:
        return tuple(t.spec for t in self._tools().values())

    def __bool__(self) -> bool:
        return bool(self._fixed) or any(s.tools() for s in self._sources)

    async def start(self) -> None:
        for source in self._sources:
            await source.start()

    async def close(self) -> None:
        for source in self._sources:
            await source.close()

    async def run(self, call_id: str, call: ToolCall, deadline: float, reserve: float) -> Ran:
        """Run one call, leaving `reserve` seconds of the deadline for the model's answer."""
        tool = self._tools().get(call.name)
        label = call.name if tool is not None else "unknown"
        kind = tool.kind if tool is not None else "unknown"
        with _tracer.start_as_current_span(
            f"llm.tool {label}", attributes={"aura.tool.name": label, "aura.tool.kind": kind}
        ) as span:
            started = time.perf_counter()
            outcome, data, action = await self._run(call_id, call, tool, deadline, reserve)
            observe.tool_called(label, outcome, time.perf_counter() - started, action)
            span.set_attribute("aura.tool.outcome", outcome)
            if outcome != "ok":
                span.set_status(trace.StatusCode.ERROR, outcome)
        # Arguments and results carry personal data: names, numbers, orders.
        log.info("call %s: tool %s: %s", call_id, label, outcome)
        log.debug("call %s: tool %s(%s) -> %s", call_id, label, call.arguments, data)
        content = _as_json(data)
        if len(content.encode()) > MAX_RESULT_BYTES:
            outcome, content = "error", _as_json({"error": "the tool's answer was too long"})
        ends = tool is not None and tool.ends_turn and outcome == "ok"
        return Ran(ToolResult(call, content), outcome, action, ends)

    async def _run(
        self, call_id: str, call: ToolCall, tool: Tool | None, deadline: float, reserve: float
    ) -> tuple[Outcome, Any, CallAction | None]:
        if tool is None:
            return "invalid_arguments", {"error": f"there is no tool named {call.name!r}"}, None
        try:
            arguments = json.loads(call.arguments or "{}")
        except ValueError:
            return "invalid_arguments", {"error": "the arguments are not valid JSON"}, None
        if not isinstance(arguments, dict):
            return "invalid_arguments", {"error": "the arguments must be a JSON object"}, None
        problems = tool.problems(arguments)
        if problems:
            return "invalid_arguments", {"error": f"invalid arguments: {problems[0]}"}, None
        timeout = min(tool.timeout_seconds, deadline - time.monotonic() - reserve)
        if timeout < _MIN_TOOL_SECONDS:
            return "timeout", {"error": "no time was left to run the tool"}, None
        try:
            async with asyncio.timeout(timeout):
                output = await tool.run(call_id, arguments, timeout)
        except TimeoutError:
            return "timeout", {"error": f"the tool did not answer within {timeout:.1f}s"}, None
        except ToolError as failure:
            return "error", {"error": str(failure)}, None
        except Exception:
            # A tool's own bug must cost this answer a sentence, not the call.
            log.exception("call %s: tool %s failed unexpectedly", call_id, call.name)
            return "error", {"error": "the tool failed"}, None
        return "ok", output.data, output.action
