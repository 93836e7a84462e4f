"""The tools file (TOOLS_PATH): which tools the assistant may call, and the departments a
transfer may reach. The operator decides all of it; a caller's words never add a tool or
a number. A bad file stops the service at start with an error naming the tool and field."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from aura_common.text import validation_problems
from aura_llm.files import read_yaml

BuiltinName = Literal["transfer_call", "end_call", "take_message"]
BUILTIN_NAMES: tuple[BuiltinName, ...] = ("transfer_call", "end_call", "take_message")

# What OpenAI and Gemini both accept as a function name.
TOOL_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$"
_PHONE_NUMBER = r"^(\+[1-9][0-9]{6,14}|sips?:\S+)$"


class ToolsError(ValueError):
    """The tools file is missing or malformed; the message says which tool and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BuiltinTool(_Strict):
    builtin: BuiltinName
    # Replaces the built-in description the model reads, e.g. to say when to transfer.
    description: str = ""


class HttpTarget(_Strict):
    url: AnyHttpUrl
    timeout_seconds: Annotated[float, Field(gt=0, le=30)] = 3.0
    # Header name -> the environment variable holding its value (e.g. an API key), read
    # at start so that secrets stay out of the file.
    headers: dict[str, str] = {}


class HttpTool(_Strict):
    name: Annotated[str, Field(pattern=TOOL_NAME_PATTERN)]
    description: Annotated[str, Field(min_length=1)]
    parameters: dict[str, Any] = {"type": "object", "properties": {}}
    http: HttpTarget

    @field_validator("parameters")
    @classmethod
    def _json_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value.get("type") != "object":
            raise ValueError('must be a JSON Schema with "type: object"')
        try:
            Draft202012Validator.check_schema(value)
        except SchemaError as error:
            raise ValueError(f"not a valid JSON Schema: {error.message}") from None
        return value


class McpTarget(_Strict):
    url: AnyHttpUrl
    timeout_seconds: Annotated[float, Field(gt=0, le=30)] = 5.0
    # How often the server's tools are listed again (they may change while we run).
    refresh_seconds: Annotated[float, Field(ge=5)] = 300.0
    headers: dict[str, str] = {}
    # Only these of the server's tools, when given; all of them otherwise.
    tools: list[Annotated[str, Field(pattern=TOOL_NAME_PATTERN)]] | None = None


class McpTool(_Strict):
    mcp: McpTarget


ToolEntry = BuiltinTool | HttpTool | McpTool
_KINDS: dict[str, type[ToolEntry]] = {"builtin": BuiltinTool, "http": HttpTool, "mcp": McpTool}


class ToolsConfig(_Strict):
    departments: dict[
        Annotated[str, Field(pattern=TOOL_NAME_PATTERN)],
        Annotated[str, Field(pattern=_PHONE_NUMBER)],
    ] = {}
    tools: list[ToolEntry] = []

    @classmethod
    def load(cls, path: Path | None) -> ToolsConfig:
        if path is None:
            return cls()
        return cls.parse(read_yaml(path, "tools file", ToolsError), source=str(path))

    @classmethod
    def parse(cls, raw: Any, source: str = "tools file") -> ToolsConfig:
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            raise ToolsError(f"{source}: expected a mapping with departments and tools")
        problems: list[str] = []
        tools: list[ToolEntry] = []
        entries = raw.get("tools") or []
        if not isinstance(entries, list):
            raise ToolsError(f"{source}: tools: must be a list")
        for index, entry in enumerate(entries):
            where = f"tools[{index}]"
            if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                where += f" ({entry['name']})"
            elif isinstance(entry, dict) and isinstance(entry.get("builtin"), str):
                where += f" ({entry['builtin']})"
            kinds = [k for k in _KINDS if isinstance(entry, dict) and k in entry]
            if len(kinds) != 1:
                problems.append(f"{where}: needs exactly one of builtin, http or mcp")
                continue
            try:
                tools.append(_KINDS[kinds[0]].model_validate(entry))
            except ValidationError as error:
                problems.extend(f"{where}: {p}" for p in validation_problems(error))
        try:
            config = cls.model_validate({"departments": raw.get("departments") or {}})
        except ValidationError as error:
            problems.extend(validation_problems(error))
            config = cls()
        unknown = set(raw) - {"departments", "tools"}
        if unknown:
            problems.append(f"unknown keys {sorted(unknown)}: expected departments and tools")
        names = [_name(t) for t in tools if _name(t)]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            problems.append(f"tools named more than once: {', '.join(duplicates)}")
        if problems:
            raise ToolsError(f"{source}: " + "; ".join(problems))
        return config.model_copy(update={"tools": tools})

    @property
    def builtins(self) -> list[BuiltinTool]:
        return [t for t in self.tools if isinstance(t, BuiltinTool)]

    @property
    def http_tools(self) -> list[HttpTool]:
        return [t for t in self.tools if isinstance(t, HttpTool)]

    @property
    def mcp_servers(self) -> list[McpTarget]:
        return [t.mcp for t in self.tools if isinstance(t, McpTool)]

    def check_environment(self, signing_secret: str) -> None:
        """What the file needs from the environment: a signing secret for HTTP tools, and
        every header's variable. Raises ToolsError naming what is missing."""
        problems = []
        if self.http_tools and not signing_secret:
            problems.append("HTTP tools need TOOLS_SIGNING_SECRET: set it to a long random value")
        for index, tool in enumerate(self.tools):
            headers = (
                tool.http.headers
                if isinstance(tool, HttpTool)
                else tool.mcp.headers
                if isinstance(tool, McpTool)
                else {}
            )
            for header, variable in headers.items():
                if not os.environ.get(variable):
                    where = f"tools[{index}]" + (
                        f" ({tool.name})" if isinstance(tool, HttpTool) else ""
                    )
                    problems.append(
                        f"{where}: header {header} needs the environment variable {variable}"
                    )
        if problems:
            raise ToolsError("; ".join(problems))


def environment_headers(headers: dict[str, str]) -> dict[str, str]:
    """Header values from the environment variables the file names."""
    return {header: os.environ.get(variable, "") for header, variable in headers.items()}


def _name(tool: ToolEntry) -> str:
    if isinstance(tool, BuiltinTool):
        return tool.builtin
    if isinstance(tool, HttpTool):
        return tool.name
    return ""
