"""The offline provider: answers from the knowledge, deterministically.

It is the embedded default, so it has to be useful on its own: it recognises greetings,
thanks and "who are you", answers from the passage retrieval chose for the turn (the same
retrieval that gives the other providers their passages: an entry's own answer, or the
sentences of a document that best answer the question), and when nothing matches it says
plainly what it can help with.

An entry may name an action: a transfer to a department is one tool call; a message is
taken over the next turns (name, callback number, message), then handed to `take_message`."""

from __future__ import annotations

import json
import re
from pathlib import Path

from aura_common.text import normalise
from aura_llm.knowledge import Entry
from aura_llm.knowledge.documents import Knowledge, Passage
from aura_llm.knowledge.library import LiveKnowledge
from aura_llm.knowledge.retrieval import STOPWORDS, Retrieval, content_stems
from aura_llm.providers.base import ChatTurn, Completion, Prompt, Provider, ToolCall

_GREETINGS = frozenset("hi hello hey hiya howdy morning afternoon evening good there".split())
_THANKS = frozenset("thanks thank thankyou cheers appreciate appreciated".split())
_IDENTITY = re.compile(
    r"\b(who are you|what are you|your name|who (am i|is this)( talking| speaking)?( to| with)?"
    r"|are you (a |an )?(robot|bot|human|real|person|machine|computer|ai))\b"
)
_CAPABILITIES = re.compile(
    r"\b(what can you (do|help)|how can you help|what do you (know|do)|what can i ask)\b"
)
# From a document passage, the sentences that best answer the question, in their order.
_SPOKEN_SENTENCES = 2
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")

# Taking a message, one question per turn; the questions mark where the caller is.
ASK_NAME = "May I have your name?"
ASK_NUMBER = "Thank you. What number can we call you back on?"
ASK_MESSAGE = "And what would you like the message to say?"
MESSAGE_TAKEN = "Thank you, I've passed your message on. Is there anything else I can help with?"
ACTION_FAILED = "Sorry, I couldn't do that just now. Is there anything else I can help with?"
ACTION_UNAVAILABLE = "Sorry, I can't do that on this line."
_CANCEL = re.compile(r"\b(never ?mind|cancel|forget it|no thanks|dont bother)\b")


class LocalProvider(Provider):
    name = "local"
    min_attempt_seconds = 0.05

    def __init__(self, library: LiveKnowledge, assistant_name: str) -> None:
        self.library = library
        self.assistant_name = assistant_name
        self.model = f"knowledge-base/{library.path.stem}"

    @classmethod
    def from_file(cls, path: Path, assistant_name: str) -> LocalProvider:
        return cls(LiveKnowledge(path), assistant_name)

    @property
    def knowledge(self) -> Knowledge:
        return self.library.knowledge

    @property
    def topics(self) -> str:
        knowledge = self.knowledge
        names = [e.topic for e in knowledge.entries]
        if not names:  # documents only: their titles are not topics a caller would name
            return f"questions about {knowledge.business_name}"
        return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]

    async def generate(self, prompt: Prompt, budget: float) -> Completion:
        if prompt.task == "summary":
            return Completion(self.summary(prompt.history))
        if prompt.task == "judge":
            return Completion("")  # no model: the judge's criteria are skipped, not passed
        if prompt.steps:
            return Completion(self._after_tools(prompt))
        message = self._message_in_progress(prompt)
        if message is not None:
            return message
        passage = self._passage(prompt)
        if passage is not None and passage.entry is not None and passage.entry.action is not None:
            return self._act(prompt, passage.entry)
        return Completion(self._answer(prompt, passage))

    def _act(self, prompt: Prompt, entry: Entry) -> Completion:
        assert entry.action is not None
        offered = {t.name for t in prompt.tools} if prompt.may_call_tools else set()
        if entry.action.tool not in offered:
            return Completion(f"{ACTION_UNAVAILABLE} I can help with {self.topics}.")
        if entry.action.tool == "take_message":
            return Completion(f"{entry.answer} {ASK_NAME}")
        arguments = json.dumps(entry.action.arguments)
        return Completion(
            entry.answer, tool_calls=(ToolCall("local-1", entry.action.tool, arguments),)
        )

    def _message_in_progress(self, prompt: Prompt) -> Completion | None:
        """The next step of taking a message, when the last thing we asked was part of it."""
        history = prompt.history
        asked = history[-1].text if history and history[-1].role == "assistant" else ""
        if not asked.endswith((ASK_NAME, ASK_NUMBER, ASK_MESSAGE)):
            return None
        if _CANCEL.search(normalise(prompt.user_text)):
            return Completion("No problem. Is there anything else I can help with?")
        if asked.endswith(ASK_NAME):
            return Completion(ASK_NUMBER)
        if asked.endswith(ASK_NUMBER):
            return Completion(ASK_MESSAGE)
        name, number = _answer_to(history, ASK_NAME), _answer_to(history, ASK_NUMBER)
        arguments = {"caller_name": name, "callback_number": number, "message": prompt.user_text}
        call = ToolCall("local-1", "take_message", json.dumps(arguments))
        return Completion("", tool_calls=(call,))

    def _after_tools(self, prompt: Prompt) -> str:
        results = prompt.steps[-1].results
        if any(_failed(r.content) for r in results):
            return ACTION_FAILED
        if any(r.call.name == "take_message" for r in results):
            return MESSAGE_TAKEN
        return "Done. Is there anything else I can help with?"

    def summary(self, transcript: tuple[ChatTurn, ...]) -> str:
        """An extractive summary: the topics the caller asked about, in order."""
        said = [t.text for t in transcript if t.role == "user"]
        if not said:
            return "The caller did not say anything."
        # Answers to our own questions (a name, a number, the message) are not topics.
        asked, last_asked = [], ""
        for turn in transcript:
            if turn.role == "assistant":
                last_asked = turn.text
            elif not last_asked.endswith((ASK_NAME, ASK_NUMBER, ASK_MESSAGE)):
                asked.append(turn.text)
        topics: list[str] = []
        retriever = self.library.index.retriever
        for text in asked:
            best = _best(retriever.search(text))
            topic = "" if best is None else best.entry.topic if best.entry else best.title
            if topic and topic not in topics:
                topics.append(topic)
        if not topics:
            return f"The caller spoke {len(said)} times, about nothing in the knowledge base."
        listed = topics[0] if len(topics) == 1 else ", ".join(topics[:-1]) + " and " + topics[-1]
        return f"The caller asked about {listed}."

    def _passage(self, prompt: Prompt) -> Passage | None:
        """The passage to answer from: the best of the turn's retrieval (made once per turn,
        by the assistant; here only when asked directly)."""
        text = normalise(prompt.user_text)
        if _IDENTITY.search(text):
            return None
        retrieval = prompt.retrieval
        if retrieval is None:
            previous = next((t.text for t in reversed(prompt.history) if t.role == "user"), "")
            retrieval = self.library.index.retriever.search(prompt.user_text, previous)
        return _best(retrieval)

    def answer(self, prompt: Prompt) -> str:
        return self._answer(prompt, self._passage(prompt))

    def _answer(self, prompt: Prompt, passage: Passage | None) -> str:
        """What to say to the caller's words, given the passage that answers them."""
        name = prompt.assistant_name or self.assistant_name
        business = self.knowledge.business_name
        text = normalise(prompt.user_text)
        words = set(text.split())
        if _IDENTITY.search(text):
            return (
                f"I'm {name}, the automated assistant for {business}. "
                f"I can answer questions about {self.topics}."
            )
        if passage is not None:
            return passage.entry.answer if passage.entry else _spoken(passage, text)
        if _CAPABILITIES.search(text):
            return f"I can help with {self.topics}. What would you like to know?"
        if words & _GREETINGS and words <= _GREETINGS | STOPWORDS:
            return f"Hello! This is {name} at {business}. How can I help you today?"
        if words & _THANKS:
            return "You're welcome! Is there anything else I can help you with?"
        return (
            "I'm sorry, I don't have an answer to that. "
            f"I can help with {self.topics}. Which of those would you like to know about?"
        )


def _best(retrieval: Retrieval) -> Passage | None:
    best = retrieval.best
    return best.passage if best is not None else None


def _spoken(passage: Passage, question: str) -> str:
    """The sentences of a document passage that share most words with the question, in
    the passage's order (its first line is its title, not a sentence to say)."""
    body = passage.text.split("\n", 1)[-1]
    sentences = [s for s in _SENTENCE_END.split(" ".join(body.split())) if s]
    asked = set(content_stems(question))
    ranked = sorted(
        range(len(sentences)),
        key=lambda n: (-len(asked.intersection(content_stems(sentences[n]))), n),
    )
    return " ".join(sentences[n] for n in sorted(ranked[:_SPOKEN_SENTENCES]))


def _answer_to(history: tuple[ChatTurn, ...], question: str) -> str:
    """What the caller said right after the last time we asked `question`."""
    for index in range(len(history) - 2, -1, -1):
        turn = history[index]
        if turn.role == "assistant" and turn.text.endswith(question):
            reply = history[index + 1]
            return reply.text if reply.role == "user" else ""
    return ""


def _failed(content: str) -> bool:
    try:
        value = json.loads(content)
    except ValueError:
        return False
    return isinstance(value, dict) and "error" in value
