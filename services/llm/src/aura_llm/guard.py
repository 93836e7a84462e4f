"""One turn's check of what the model says against what it was given (GROUNDING).

`flag` counts and marks an ungrounded answer; `strict` also puts the assistant's "not sure"
line in its place, so the caller never hears the invented fact."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from opentelemetry import trace
from prometheus_client import Counter

from aura_llm.config import GroundingMode
from aura_llm.grounding import Grounds, facts
from aura_llm.knowledge.library import TurnKnowledge
from aura_llm.providers.base import Prompt, Step

log = logging.getLogger(__name__)

UNGROUNDED = Counter(
    "aura_llm_ungrounded_answers",
    "Answers that stated a fact (time, day, date, price, number) found in none of the "
    "turn's passages, conversation or tool results, by the provider that wrote them.",
    ["provider"],
)

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_NOT_SURE = "I'm not sure about that, and I'd rather not guess."
_OFFERS = (
    ("take_message", "take a message"),
    ("transfer_call", "put you through to someone who can help"),
)


def not_sure(tool_names: Iterable[str]) -> str:
    """What the assistant says in place of an ungrounded answer: that it is not sure, and
    what it can offer on this deployment."""
    names = set(tool_names)
    offers = [offer for tool, offer in _OFFERS if tool in names]
    if not offers:
        return f"{_NOT_SURE} Is there anything else I can help with?"
    return f"{_NOT_SURE} I can {' or '.join(offers)}."


class TurnGuard:
    """The guard for one turn: built from the prompt as the servicer made it (the
    operator's system prompt, call context and the conversation) and the turn's knowledge
    grounds; tool results are added as the turn's steps bring them."""

    def __init__(
        self, mode: GroundingMode, prompt: Prompt, knowledge: TurnKnowledge | None
    ) -> None:
        self.mode = mode
        self._prompt = prompt
        self._knowledge = knowledge
        self._grounds: Grounds | None = None  # built on the first answer that states a fact
        self._steps_seen = 0
        self.found: list[str] = []  # the ungrounded facts of the answer so far

    def _sources(self, steps: tuple[Step, ...] | list[Step]) -> Grounds:
        if self._grounds is None:
            prompt = self._prompt
            said = [prompt.system_prompt, prompt.call_context, prompt.user_text]
            said.extend(turn.text for turn in prompt.history)
            known = Grounds()
            if self._knowledge is not None:
                said.extend(self._knowledge.passages)
                known = self._knowledge.known
            self._grounds = known.merged(Grounds.of(said))
        for step in steps[self._steps_seen :]:
            for result in step.results:
                self._grounds.add(result.content)
        self._steps_seen = len(steps)
        return self._grounds

    def check(self, text: str, steps: tuple[Step, ...] | list[Step], provider: str) -> bool:
        """True when `text` is grounded (or the guard is off); an ungrounded text is
        counted once per answer, logged and marked on the current span."""
        if self.mode == "off":
            return True
        stated = facts(text)
        if not stated:
            return True
        grounds = self._sources(steps)
        missing = [fact.said for fact in stated if not grounds.holds(fact)]
        if not missing:
            return True
        if not self.found:
            UNGROUNDED.labels(provider).inc()
        self.found.extend(missing)
        log.warning(
            "call %s: %s answer states %s, which nothing given holds (GROUNDING=%s)",
            self._prompt.call_id,
            provider,
            ", ".join(repr(m) for m in missing),
            self.mode,
        )
        span = trace.get_current_span()
        span.set_attribute("aura.llm.ungrounded", True)
        span.set_attribute("aura.llm.ungrounded_facts", self.found)
        return False

    def grounded_prefix(self, text: str, steps: tuple[Step, ...] | list[Step]) -> str:
        """The sentences of `text` before its first ungrounded one (a streamed piece may
        hold several sentences; those before the invented one may still be said)."""
        grounds = self._sources(steps)
        kept: list[str] = []
        for sentence in _SENTENCE_END.split(text):
            if any(not grounds.holds(fact) for fact in facts(sentence)):
                break
            kept.append(sentence)
        return " ".join(kept)
