"""Scenarios for aura-eval: the script format of `aura-call --script` (steps a caller
plays, with what each must hear), or a caller a model plays towards a goal, plus checks on
the call as a whole and criteria in plain words for a judge model.

  name: Saturday hours
  tags: [smoke]
  steps:
    - hear: How can I help
    - say: What time do you open on Saturday?
      hear: Saturday from 8 to 4
  checks:
    - never_heard: delivery
    - tool: transfer_call
      arguments: {department: manager}
    - max_turn_ms: 2000
  judge:
    - The assistant never promised a delivery time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from aura_phone.script import ScriptError, Step, Words, _Step, read_yaml


class Persona(BaseModel):
    """A caller played by a model: who they are and what they want."""

    model_config = ConfigDict(extra="forbid")
    goal: Annotated[str, Field(min_length=1, max_length=1000)]
    persona: Annotated[str, Field(max_length=1000)] = "A customer calling the business."
    max_turns: Annotated[int, Field(ge=1, le=30)] = 6


class Check(BaseModel):
    """One check on the whole call; exactly one kind per item."""

    model_config = ConfigDict(extra="forbid")
    heard: Words | None = None  # a substring of what the caller heard, anywhere
    heard_regex: str | None = None
    never_heard: Words | None = None
    never_heard_regex: str | None = None
    # True: put through (to anyone); a number: to it; {department: name}; False: never.
    transferred: bool | Words | dict[str, str] | None = None
    ended: bool | None = None  # the deployment ended the call (not the caller hanging up)
    # A message was kept (True, or with fields: caller_name, callback_number, text as
    # substrings); False: none was.
    message: bool | dict[str, str] | None = None
    outcome: str | None = None  # answered, transferred, voicemail, refused, abandoned
    tool: str | None = None  # the model called this tool (with `arguments`, a subset)
    arguments: dict[str, Any] | None = None
    no_tool: str | None = None  # the model never called this tool
    grounded: bool | None = None  # no answer stated a fact its sources did not hold
    max_turn_ms: Annotated[int, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _one(self) -> Check:
        kinds = [k for k, v in self if v is not None and k != "arguments"]
        if len(kinds) != 1:
            raise ValueError(f"one check per item, found {kinds or 'none'}")
        if self.arguments is not None and self.tool is None:
            raise ValueError("arguments go with tool")
        return self

    @property
    def kind(self) -> str:
        return next(k for k, v in self if v is not None and k != "arguments")

    @property
    def name(self) -> str:
        """How reports name it: `tool take_message {"caller_name": "Jo"}`."""
        value = getattr(self, self.kind)
        text = f"{self.kind} {value!r}" if not isinstance(value, bool) else self.kind
        if self.kind in ("ended", "grounded", "message", "transferred") and value is False:
            text = f"not {self.kind}"
        if self.arguments:
            text += f" {self.arguments}"
        return text

    @property
    def needs_transcript(self) -> bool:
        return self.kind in ("message", "outcome", "tool", "no_tool", "grounded") or (
            self.kind == "transferred" and isinstance(self.transferred, dict)
        )


class _Scenario(BaseModel):
    """A scenario file: a script's fields (from, to, language, steps) and the rest."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: Annotated[str, Field(min_length=1, max_length=200)]
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    number: str | None = Field(default=None, alias="from")
    callee: str | None = Field(default=None, alias="to")
    language: str | None = None
    steps: list[_Step] = Field(default_factory=list)  # none when a model is the caller
    caller: Persona | None = None
    checks: list[Check] = Field(default_factory=list)
    judge: list[Annotated[str, Field(min_length=1, max_length=500)]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _a_caller(self) -> _Scenario:
        if bool(self.steps) == bool(self.caller):
            raise ValueError("give steps, or a caller a model plays (caller: {goal: ...})")
        return self


@dataclass
class Scenario:
    """A scenario as the runner plays it."""

    name: str
    path: str
    description: str = ""
    tags: list[str] = field(default_factory=list)
    caller_number: str | None = None
    callee_number: str | None = None
    language: str | None = None
    steps: list[Step] = field(default_factory=list)
    persona: Persona | None = None
    checks: list[Check] = field(default_factory=list)
    judge: list[str] = field(default_factory=list)


def load_scenario(path: Path) -> Scenario:
    parsed = read_yaml(path, _Scenario)
    return Scenario(
        name=parsed.name,
        path=str(path),
        description=parsed.description,
        tags=parsed.tags,
        caller_number=parsed.number,
        callee_number=parsed.callee,
        language=parsed.language,
        steps=[Step.of(step) for step in parsed.steps],
        persona=parsed.caller,
        checks=parsed.checks,
        judge=parsed.judge,
    )


def load_suite(path: Path, tags: tuple[str, ...] = ()) -> list[Scenario]:
    """The scenarios of a file, or of every .yaml/.yml file under a directory (sorted,
    hidden ones left out: a mounted ConfigMap keeps its files twice, under ..data/ too);
    with `tags`, only those carrying one of them. Names must be unique."""
    if path.is_dir():
        files = sorted(
            p
            for p in path.rglob("*")
            if p.suffix in (".yaml", ".yml")
            and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
    elif path.is_file():
        files = [path]
    else:
        raise ScriptError(f"no suite at {path}")
    scenarios = [load_scenario(f) for f in files]
    if tags:
        scenarios = [s for s in scenarios if set(s.tags) & set(tags)]
    if not scenarios:
        raise ScriptError(f"{path}: no scenarios" + (f" tagged {', '.join(tags)}" if tags else ""))
    names = [s.name for s in scenarios]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ScriptError(f"{path}: scenario names must be unique: {', '.join(twice)}")
    return scenarios
