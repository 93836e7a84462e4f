"""The operator's knowledge as passages: a YAML file in the entries format, or a directory
of YAML, Markdown, text and PDF files.

Documents are cut along their own structure (a YAML entry is one passage; Markdown by
headings, then paragraphs; text by paragraphs; PDF by page, then paragraphs), each passage
at most PASSAGE_MAX_CHARS, each with an id that names its file and its heading or entry, so
that the same document gives the same ids on every load."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aura_llm.files import read_yaml
from aura_llm.knowledge import Entry, KnowledgeBase, KnowledgeBaseError

PASSAGE_MAX_CHARS = 1200
YAML_SUFFIXES = frozenset({".yaml", ".yml"})
SUFFIXES = YAML_SUFFIXES | {".md", ".markdown", ".txt", ".pdf"}

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_SLUG = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True, slots=True)
class Passage:
    """A piece of the knowledge the model may be given: `id` is "<file>#<place>"."""

    id: str
    title: str
    text: str
    entry: Entry | None = None  # the YAML entry it is, with its answer and action


@dataclass(frozen=True, slots=True)
class Knowledge:
    business_name: str
    description: str
    passages: tuple[Passage, ...]
    source: str

    @property
    def entries(self) -> tuple[Entry, ...]:
        return tuple(p.entry for p in self.passages if p.entry is not None)

    @property
    def chars(self) -> int:
        return sum(len(p.text) for p in self.passages)


def slug(text: str) -> str:
    return _SLUG.sub("-", text.lower()).strip("-") or "section"


def entry_text(entry: Entry) -> str:
    """A YAML entry as the model reads it: its topic, questions, keywords and answer."""
    lines = [entry.topic]
    if entry.questions:
        lines.append("Questions: " + " / ".join(entry.questions))
    if entry.keywords:
        lines.append("Keywords: " + ", ".join(entry.keywords))
    lines.append("Answer: " + entry.answer)
    return "\n".join(lines)


def _unique(ids: dict[str, int], base: str) -> str:
    """`base`, or `base-2`, `base-3`... when the file already has that id."""
    ids[base] = ids.get(base, 0) + 1
    return base if ids[base] == 1 else f"{base}-{ids[base]}"


def _chunks(paragraphs: list[str], room: int) -> Iterator[str]:
    """Paragraphs packed into chunks of at most `room` characters; a paragraph too long
    for one is cut between sentences, and a sentence too long between words."""
    pieces: list[str] = []
    for paragraph in paragraphs:
        if len(paragraph) <= room:
            pieces.append(paragraph)
            continue
        for sentence in _SENTENCE_END.split(paragraph):
            while len(sentence) > room:
                cut = sentence.rfind(" ", 0, room)
                cut = cut if cut > 0 else room
                pieces.append(sentence[:cut])
                sentence = sentence[cut:].strip()
            if sentence:
                pieces.append(sentence)
    chunk = ""
    for piece in pieces:
        if chunk and len(chunk) + 2 + len(piece) > room:
            yield chunk
            chunk = ""
        chunk = f"{chunk}\n\n{piece}" if chunk else piece
    if chunk:
        yield chunk


def _paragraphs(text: str) -> list[str]:
    return [" ".join(p.split()) for p in re.split(r"\n\s*\n", text) if p.strip()]


def _sections(
    name: str, title: str, text: str, ids: dict[str, int], place: str = ""
) -> Iterator[Passage]:
    """One titled section of a document as passages, each beginning with its title; their
    ids name `place`, by default the section's own heading."""
    room = PASSAGE_MAX_CHARS - len(title) - 1
    place = place or slug(title.rsplit(" > ", 1)[-1])
    for chunk in _chunks(_paragraphs(text), max(room, 200)):
        yield Passage(f"{name}#{_unique(ids, place)}", title, f"{title}\n{chunk}")


def markdown_passages(name: str, text: str, title: str) -> list[Passage]:
    """Passages of a Markdown document: one section per heading (titled with the headings
    above it, "Hours > Holidays"), text before the first heading titled `title`."""
    ids: dict[str, int] = {}
    passages: list[Passage] = []
    trail: list[tuple[int, str]] = []
    current, body = title, []
    for line in text.splitlines():
        heading = _HEADING.match(line)
        if heading is None:
            body.append(line)
            continue
        passages.extend(_sections(name, current, "\n".join(body), ids))
        level = len(heading.group(1))
        trail = [(lvl, words) for lvl, words in trail if lvl < level]
        trail.append((level, heading.group(2).strip()))
        current, body = " > ".join(words for _, words in trail), []
    passages.extend(_sections(name, current, "\n".join(body), ids))
    return passages


def text_passages(name: str, text: str, title: str) -> list[Passage]:
    ids: dict[str, int] = {}
    return list(_sections(name, title, text, ids))


def pdf_passages(name: str, path: Path, title: str) -> list[Passage]:
    """Passages of a PDF's text, page by page (ids "<file>#page-3")."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        pages = [page.extract_text() or "" for page in PdfReader(path).pages]
    except (PdfReadError, OSError, ValueError) as exc:
        raise KnowledgeBaseError(f"{name}: not a readable PDF: {exc}") from None
    passages: list[Passage] = []
    ids: dict[str, int] = {}
    for number, page in enumerate(pages, start=1):
        passages.extend(_sections(name, title, page, ids, place=f"page-{number}"))
    return passages


def entry_passages(name: str, base: KnowledgeBase) -> list[Passage]:
    ids: dict[str, int] = {}
    passages = []
    for index, entry in enumerate(base.entries):
        text = entry_text(entry)
        if len(text) > PASSAGE_MAX_CHARS:
            raise KnowledgeBaseError(
                f"{name}: entries[{index}] ({entry.topic}) is {len(text)} characters with its "
                f"questions and keywords, more than {PASSAGE_MAX_CHARS}: split it"
            )
        passages.append(
            Passage(f"{name}#{_unique(ids, slug(entry.topic))}", entry.topic, text, entry)
        )
    return passages


def _title(path: Path) -> str:
    return path.stem.replace("_", " ").replace("-", " ").strip().capitalize() or path.name


def knowledge_files(root: Path) -> list[Path]:
    """The knowledge files under `root`, sorted; hidden files and folders (such as a
    ConfigMap's `..data`) are skipped, symlinks to files followed."""
    found = []
    for folder, dirs, names in os.walk(root, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in names:
            path = Path(folder, name)
            if not name.startswith(".") and path.suffix.lower() in SUFFIXES:
                found.append(path)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _read_text(path: Path, name: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise KnowledgeBaseError(f"{name}: cannot read: {exc}") from None


def _file_passages(file: Path, name: str) -> tuple[tuple[str, str] | None, list[Passage]]:
    """One file of a directory: the business it names, if any, and its passages."""
    suffix = file.suffix.lower()
    if suffix in YAML_SUFFIXES:
        raw: Any = read_yaml(file, "knowledge base", KnowledgeBaseError)
        base = KnowledgeBase.parse(raw, source=name, in_directory=True)
        business = (base.business_name, base.description) if base.business_name else None
        return business, entry_passages(name, base)
    if suffix == ".pdf":
        return None, pdf_passages(name, file, _title(file))
    text = _read_text(file, name)
    if suffix in (".md", ".markdown"):
        return None, markdown_passages(name, text, _title(file))
    return None, text_passages(name, text, _title(file))


def read_knowledge(path: Path) -> tuple[Knowledge | None, list[str]]:
    """The knowledge at `path` (a YAML file, or a directory), and every problem found, one
    line each naming the file and the place; no knowledge when there is any."""
    if path.is_file():
        try:
            base = KnowledgeBase.load(path)
            entries = tuple(entry_passages(path.name, base))
        except KnowledgeBaseError as error:
            return None, [str(error)]
        return Knowledge(base.business_name, base.description, entries, str(path)), []
    if not path.is_dir():
        return None, [f"knowledge base {path} is neither a file nor a directory"]
    business: tuple[str, str] | None = None
    passages: list[Passage] = []
    problems: list[str] = []
    for file in knowledge_files(path):
        try:
            named, found = _file_passages(file, file.relative_to(path).as_posix())
        except KnowledgeBaseError as error:
            problems.append(str(error))
            continue
        business = business or named
        passages.extend(found)
    if business is None:
        problems.append(
            f"knowledge base {path}: no YAML file names the business "
            "(add one with `business: {name: ..., description: ...}`)"
        )
    if not passages and not problems:
        problems.append(f"knowledge base {path}: no passages in any file")
    if problems or business is None:
        return None, problems
    return Knowledge(business[0], business[1], tuple(passages), str(path)), []


def load_knowledge(path: Path) -> Knowledge:
    """The knowledge at `path`; KnowledgeBaseError, in one line, when anything is wrong."""
    knowledge, problems = read_knowledge(path)
    if knowledge is None:
        raise KnowledgeBaseError("; ".join(problems))
    return knowledge
