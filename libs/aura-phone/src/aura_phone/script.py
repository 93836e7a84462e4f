"""The script format of `aura-call --script` (and of aura-eval's scenarios, which extend
it), and the settings both read as the services read theirs."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, TypeVar

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from aura_phone.simulator import Input, Turn


class ScriptError(Exception):
    """The script is malformed, or the call did not go as it expects."""


Words = Annotated[str, BeforeValidator(lambda v: str(v) if isinstance(v, int | float) else v)]


class _Step(BaseModel):
    """One step as written in a script file."""

    model_config = ConfigDict(extra="forbid")
    say: Words | None = None
    press: Words | None = None  # YAML reads `press: 5` as a number
    silence: bool = False
    hear: Words = ""
    hear_regex: str = ""
    hangup: bool = False
    # The call ends by being put through to this number.
    transfer_to: Words = ""
    # Relay: speak, then interrupt the answer after this many tokens (`hear` checks what
    # was heard of it).
    interrupt_after: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _one_action(self) -> _Step:
        if (self.say is not None) + (self.press is not None) + self.silence > 1:
            raise ValueError("only one of say, press, silence")
        return self


class _Script(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    caller: str | None = Field(default=None, alias="from")
    callee: str | None = Field(default=None, alias="to")
    language: str | None = None  # the caller's language, e.g. es-ES
    steps: Annotated[list[_Step], Field(min_length=1)]


@dataclass
class Step:
    action: Input | None  # None: only an expectation (the welcome)
    hear: str = ""
    hear_regex: str = ""
    hangup: bool = False
    transfer_to: str = ""

    @property
    def ends_call(self) -> bool:
        return self.hangup or bool(self.transfer_to)

    @classmethod
    def of(cls, raw: _Step) -> Step:
        action: Input | None = None
        if raw.say is not None:
            action = Input("speech", raw.say, raw.interrupt_after)
        elif raw.press is not None:
            action = Input("digits", raw.press)
        elif raw.silence:
            action = Input("silence")
        return cls(action, raw.hear, raw.hear_regex, raw.hangup, raw.transfer_to)

    def expectations(self, index: int, turn: Turn) -> list[tuple[str, str]]:
        """Each expectation of the step on the turn that answered it: its name, and what
        went wrong ("" when it held)."""
        heard = " ".join(turn.heard)
        found = []
        if self.hear:
            missed = self.hear.lower() not in heard.lower()
            problem = f"expected to hear {self.hear!r}, heard {heard!r}" if missed else ""
            found.append((f"step {index} hears {self.hear!r}", problem))
        if self.hear_regex:
            missed = not re.search(self.hear_regex, heard, re.IGNORECASE)
            problem = f"expected /{self.hear_regex}/, heard {heard!r}" if missed else ""
            found.append((f"step {index} hears /{self.hear_regex}/", problem))
        if self.transfer_to:
            dialed = turn.dialed or "nobody"
            wrong = turn.dialed != self.transfer_to
            problem = f"expected a transfer to {self.transfer_to}, {dialed}" if wrong else ""
            found.append((f"step {index} transfers to {self.transfer_to}", problem))
        return found

    def check(self, index: int, turn: Turn) -> None:
        for _, problem in self.expectations(index, turn):
            if problem:
                raise ScriptError(f"step {index}: {problem}")


def since(turns: list[Turn], answered: Turn | None) -> Turn:
    """What the caller heard after the last turn they answered, as one turn: the call
    ended there (a transfer's briefing and dial, a goodbye), maybe over several requests."""
    start = next((i + 1 for i, t in enumerate(turns) if t is answered), 0)
    tail = turns[start:] or turns[-1:]
    if not tail:
        return Turn("", [], 0.0)
    heard = [text for t in tail for text in t.heard]
    dialed = next((t.dialed for t in reversed(tail) if t.dialed), "")
    return replace(tail[-1], heard=heard, dialed=dialed, hung_up=tail[-1].hung_up)


FileModel = TypeVar("FileModel", bound=BaseModel)


def read_yaml(path: Path, model: type[FileModel]) -> FileModel:
    """A YAML file read as `model`; ScriptError naming the file and each bad field."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise ScriptError(f"cannot read {path}: {error}") from error
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'the file'}: {e['msg']}"
            for e in error.errors(include_url=False)
        )
        raise ScriptError(f"{path}: {problems}") from None


def load_script(path: Path) -> tuple[dict[str, str], list[Step]]:
    script = read_yaml(path, _Script)
    numbers = {"from": script.caller, "to": script.callee, "language": script.language}
    return {k: v for k, v in numbers.items() if v}, [Step.of(step) for step in script.steps]


class CallerSettings(BaseSettings):
    """Defaults read like the services read theirs: the environment, then ./.env (where
    `make run` finds its settings), so `make call` signs with the token the server checks."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    AURA_BASE_URL: str = ""
    PORT: int = 8000
    TWILIO_ACCOUNT_SID: str = "AC" + "0" * 32
    TWILIO_AUTH_TOKEN: str = ""
    PUBLIC_BASE_URL: str = ""
    ADMIN_API_TOKEN: str = ""  # to print a realtime call's words from its transcript

    @property
    def url(self) -> str:
        return self.AURA_BASE_URL or f"http://localhost:{self.PORT}"
