"""The knowledge base YAML format: the business, and entries of questions, keywords and an
answer (each entry one passage of the knowledge every provider answers from)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from aura_common.text import validation_problems
from aura_llm.files import read_yaml


class KnowledgeBaseError(ValueError):
    """The knowledge base file is missing or malformed; the message says where."""


@dataclass(frozen=True, slots=True)
class Action:
    """A tool an entry asks for, e.g. transfer_call to the manager's department."""

    tool: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Entry:
    topic: str
    questions: tuple[str, ...]
    keywords: tuple[str, ...]
    answer: str
    action: Action | None = None


Text = Annotated[
    str,
    # YAML reads `24` or `3.5` as numbers; in a knowledge base they are words.
    BeforeValidator(lambda v: str(v) if isinstance(v, int | float) else v),
    AfterValidator(lambda v: " ".join(v.split())),
]


class _Business(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[Text, Field(min_length=1)]
    description: Text = ""


class _Action(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tool: Annotated[str, Field(min_length=1)]
    arguments: dict[str, Any] = {}


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    topic: Annotated[Text, Field(min_length=1)]
    questions: list[Text] = []
    keywords: list[Text] = []
    answer: Annotated[Text, Field(min_length=1)]
    action: _Action | None = None

    @model_validator(mode="after")
    def _findable(self) -> _Entry:
        if not self.questions and not self.keywords:
            raise ValueError("needs questions or keywords")
        return self


class _File(BaseModel):
    """The file's shape; errors name the entry and the field."""

    model_config = ConfigDict(extra="forbid")
    business: _Business
    entries: Annotated[list[_Entry], Field(min_length=1)]


class _DirectoryFile(BaseModel):
    """A YAML file among others in a directory: one of them names the business, and a
    file may hold only that."""

    model_config = ConfigDict(extra="forbid")
    business: _Business | None = None
    entries: list[_Entry] = []


@dataclass(frozen=True, slots=True)
class KnowledgeBase:
    business_name: str
    description: str
    entries: tuple[Entry, ...]

    @classmethod
    def load(cls, path: Path) -> KnowledgeBase:
        raw = read_yaml(path, "knowledge base", KnowledgeBaseError)
        return cls.parse(raw, source=str(path))

    @classmethod
    def parse(
        cls, raw: Any, source: str = "knowledge base", in_directory: bool = False
    ) -> KnowledgeBase:
        if not isinstance(raw, dict):
            raise KnowledgeBaseError(f"{source}: expected a mapping with business and entries")
        try:
            parsed = (_DirectoryFile if in_directory else _File).model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(validation_problems(exc))
            raise KnowledgeBaseError(f"{source}: {problems}") from None
        business = parsed.business
        return cls(
            business_name=business.name if business else "",
            description=business.description if business else "",
            entries=tuple(
                Entry(
                    e.topic,
                    tuple(e.questions),
                    tuple(e.keywords),
                    e.answer,
                    Action(e.action.tool, e.action.arguments) if e.action else None,
                )
                for e in parsed.entries
            ),
        )
