"""`aura-kb`: check a knowledge base before it goes live, and see what retrieval picks.

aura-kb check PATH             every passage with its id and size, or one line per error
aura-kb ask PATH "question"    the passages a turn would get, with their scores
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aura_llm.config import Settings
from aura_llm.knowledge.documents import Knowledge, read_knowledge
from aura_llm.knowledge.library import KnowledgeIndex, fits


def _read(path: Path) -> Knowledge | None:
    """The knowledge at `path`, or None after one line per problem on stderr."""
    knowledge, problems = read_knowledge(path)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return knowledge


def _check(path: Path, max_chars: int) -> int:
    knowledge = _read(path)
    if knowledge is None:
        return 1
    width = max(len(p.id) for p in knowledge.passages)
    for passage in knowledge.passages:
        kind = "entry" if passage.entry else "text"
        print(f"{passage.id:<{width}}  {len(passage.text):>5} chars  {kind:<5}  {passage.title}")
    files = len({p.id.split("#", 1)[0] for p in knowledge.passages})
    sent = (
        "sent whole on every turn"
        if fits(knowledge, max_chars)
        else "the best passages are chosen per turn"
    )
    print(
        f"{len(knowledge.passages)} passages, {knowledge.chars:,} characters in {files} "
        f"file(s) for {knowledge.business_name}; KNOWLEDGE_MAX_CHARS={max_chars:,}: {sent}"
    )
    return 0


def _ask(path: Path, question: str, previous: str, top_k: int, max_chars: int) -> int:
    knowledge = _read(path)
    if knowledge is None:
        return 1
    index = KnowledgeIndex(knowledge, top_k, max_chars)
    turn = index.for_turn(question, previous)
    if not turn.retrieval.hits:
        print("no passage matches")
    for hit in turn.retrieval.hits:
        marks = [
            m
            for m, on in (("answers", hit.confident), ("sent", hit.passage.id in turn.passage_ids))
            if on
        ]
        print(f"{hit.score:8.2f}  {hit.passage.id}  {' '.join(marks)}")
        print("          " + " ".join(hit.passage.text.split())[:160])
    if index.whole:
        print(f"the whole knowledge ({knowledge.chars:,} characters) is sent on every turn")
    return 0


def main(argv: list[str] | None = None) -> None:
    settings = Settings.model_validate({})
    parser = argparse.ArgumentParser(prog="aura-kb", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="validate a knowledge file or directory")
    check.add_argument("path", type=Path)
    ask = commands.add_parser("ask", help="the passages retrieval picks for a question")
    ask.add_argument("path", type=Path)
    ask.add_argument("question")
    ask.add_argument("--previous", default="", help="what the caller said before (follow-ups)")
    ask.add_argument("--top-k", type=int, default=settings.KNOWLEDGE_TOP_K)
    for command in (check, ask):
        command.add_argument("--max-chars", type=int, default=settings.KNOWLEDGE_MAX_CHARS)
    args = parser.parse_args(argv)
    if args.command == "check":
        sys.exit(_check(args.path, args.max_chars))
    sys.exit(_ask(args.path, args.question, args.previous, args.top_k, args.max_chars))


if __name__ == "__main__":
    main()
