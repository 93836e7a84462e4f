"""The knowledge base file format the local provider answers from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class KnowledgeBaseError(ValueError):
    """The knowledge base file is missing or malformed; the message says where."""


@dataclass(frozen=True, slots=True)
class Entry:
    topic: str
    questions: tuple[str, ...]
    keywords: tuple[str, ...]
    answer: str


@dataclass(frozen=True, slots=True)
class KnowledgeBase:
    business_name: str
    description: str
    entries: tuple[Entry, ...]

    @classmethod
    def load(cls, path: Path) -> KnowledgeBase:
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise KnowledgeBaseError(f"cannot read knowledge base {path}: {exc}") from exc
        except yaml.YAMLError as exc:
            raise KnowledgeBaseError(f"knowledge base {path} is not valid YAML: {exc}") from exc
        return cls.parse(raw, source=str(path))

    @classmethod
    def parse(cls, raw: Any, source: str = "knowledge base") -> KnowledgeBase:
        if not isinstance(raw, dict):
            raise KnowledgeBaseError(f"{source}: expected a mapping with business and entries")
        business = raw.get("business") or {}
        name = _text(business.get("name"), f"{source}: business.name")
        description = _text(business.get("description", ""), f"{source}: business.description")
        items = raw.get("entries")
        if not isinstance(items, list) or not items:
            raise KnowledgeBaseError(f"{source}: entries must be a non-empty list")
        entries = []
        for index, item in enumerate(items):
            where = f"{source}: entries[{index}]"
            if not isinstance(item, dict):
                raise KnowledgeBaseError(f"{where} must be a mapping")
            questions = _texts(item.get("questions", []), f"{where}.questions")
            keywords = _texts(item.get("keywords", []), f"{where}.keywords")
            if not questions and not keywords:
                raise KnowledgeBaseError(f"{where} needs questions or keywords")
            entries.append(
                Entry(
                    topic=_text(item.get("topic"), f"{where}.topic"),
                    questions=questions,
                    keywords=keywords,
                    answer=_text(item.get("answer"), f"{where}.answer"),
                )
            )
        return cls(business_name=name, description=description, entries=tuple(entries))


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise KnowledgeBaseError(f"{where} must be text")
    return " ".join(value.split())


def _texts(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise KnowledgeBaseError(f"{where} must be a list of text")
    return tuple(_text(v if isinstance(v, str) else str(v), where) for v in value)
