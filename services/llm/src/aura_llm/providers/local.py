"""The offline provider: answers from a knowledge base file, deterministically.

It is the embedded default, so it has to be useful on its own: it recognises greetings,
thanks and "who are you", finds a natural phrasing of a known question by keywords (after
light stemming, tolerating small misrecognitions) and by fuzzy similarity to the listed
questions, and when nothing matches it says plainly what it can help with.

An entry may name an action: a transfer to a department is one tool call; a message is
taken over the next turns (name, callback number, message), then handed to `take_message`."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from rapidfuzz import fuzz, process

from aura_common.text import normalise
from aura_llm.knowledge import Entry, KnowledgeBase
from aura_llm.providers.base import ChatTurn, Completion, Prompt, Provider, ToolCall

# Words that carry no topic; question words such as "where" and "when" are kept on purpose.
_STOPWORDS = frozenset(
    """a an the i me my we our you your yours is are am was were be been do does did can
    could would will shall should may might to of in on at for from with about and or but
    if so it its this that these those what which who how there here any some have has had
    get got please just like want wanna need know tell let us im id ok okay um uh er yes
    yeah well hi hello hey guys guy one""".split()
)
_GREETINGS = frozenset("hi hello hey hiya howdy morning afternoon evening good there".split())
_THANKS = frozenset("thanks thank thankyou cheers appreciate appreciated".split())
_IDENTITY = re.compile(
    r"\b(who are you|what are you|your name|who (am i|is this)( talking| speaking)?( to| with)?"
    r"|are you (a |an )?(robot|bot|human|real|person|machine|computer|ai))\b"
)
_CAPABILITIES = re.compile(
    r"\b(what can you (do|help)|how can you help|what do you (know|do)|what can i ask)\b"
)
_FOLLOW_UP = re.compile(r"^(and|also|what about|how about|and what about)\b")
_MIN_QUESTION_SIMILARITY = 0.75
_FUZZY_KEYWORD = 85
# Fuzzy only on longer words: short ones ("cake", "take") differ by one letter too often.
_FUZZY_MIN_LENGTH = 5

# Taking a message, one question per turn; the questions mark where the caller is.
ASK_NAME = "May I have your name?"
ASK_NUMBER = "Thank you. What number can we call you back on?"
ASK_MESSAGE = "And what would you like the message to say?"
MESSAGE_TAKEN = "Thank you, I've passed your message on. Is there anything else I can help with?"
ACTION_FAILED = "Sorry, I couldn't do that just now. Is there anything else I can help with?"
ACTION_UNAVAILABLE = "Sorry, I can't do that on this line."
_CANCEL = re.compile(r"\b(never ?mind|cancel|forget it|no thanks|dont bother)\b")


def _stem(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        word = word[:-3] + "y"
    elif len(word) > 5 and word.endswith("ing"):
        word = word[:-3]
    elif len(word) > 4 and word.endswith("ed"):
        word = word[:-2]
    elif len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    return word


def _content_stems(text: str) -> list[str]:
    return [_stem(w) for w in normalise(text).split() if w not in _STOPWORDS]


@dataclass(frozen=True, slots=True)
class _IndexedEntry:
    entry: Entry
    keywords: tuple[tuple[str, ...], ...]  # each keyword as a sequence of stems
    questions: tuple[str, ...]  # each question as its content stems joined


def _keyword_hits(
    stems: list[str],
    keywords: tuple[tuple[str, ...], ...],
    matches: dict[str, set[str]],
    present: set[str],
) -> int:
    """How many keywords occur in `stems`, a keyword of several stems as a run of words;
    `matches` gives, for each word, the keyword stems it stands for, and `present` all of
    them together."""
    hits = 0
    for keyword in keywords:
        if not present.issuperset(keyword):
            continue
        size = len(keyword)
        if size == 1 or any(
            all(k in matches[w] for w, k in zip(stems[i : i + size], keyword, strict=True))
            for i in range(len(stems) - size + 1)
        ):
            hits += 1
    return hits


class LocalProvider(Provider):
    name = "local"
    min_attempt_seconds = 0.05

    def __init__(self, knowledge: KnowledgeBase, assistant_name: str, model: str) -> None:
        self.knowledge = knowledge
        self.assistant_name = assistant_name
        self.model = model
        self._index = tuple(
            _IndexedEntry(
                entry=e,
                keywords=tuple(tuple(_content_stems(k) or [_stem(k.lower())]) for k in e.keywords),
                questions=tuple(" ".join(_content_stems(q)) for q in e.questions),
            )
            for e in knowledge.entries
        )
        # Every word is compared with all keyword stems, and the text with all questions,
        # in one rapidfuzz call each rather than pair by pair: a match costs tens of
        # microseconds, not hundreds.
        stems = {s for item in self._index for keyword in item.keywords for s in keyword}
        self._long_stems = sorted(s for s in stems if len(s) >= _FUZZY_MIN_LENGTH)
        asked = [(n, q) for n, item in enumerate(self._index) for q in item.questions if q]
        self._question_entries = [n for n, _ in asked]  # the entry of each question
        self._questions = [q for _, q in asked]

    @classmethod
    def from_file(cls, path: Path, assistant_name: str) -> LocalProvider:
        return cls(KnowledgeBase.load(path), assistant_name, f"knowledge-base/{path.stem}")

    @property
    def topics(self) -> str:
        names = [e.topic for e in self.knowledge.entries]
        return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]

    def match(self, text: str) -> Entry | None:
        """The best entry for `text`, or None when nothing is a convincing match."""
        stems = _content_stems(text)
        if not stems:
            return None
        matches = {word: self._keyword_stems(word) for word in stems}
        present = set().union(*matches.values())
        similarity = [0.0] * len(self._index)
        for _, score, at in process.extract(
            " ".join(stems),
            self._questions,
            scorer=fuzz.token_sort_ratio,
            limit=None,
        ):
            n = self._question_entries[at]
            similarity[n] = max(similarity[n], score / 100)
        best: tuple[float, Entry] | None = None
        for n, item in enumerate(self._index):
            hits = _keyword_hits(stems, item.keywords, matches, present)
            if hits == 0 and similarity[n] < _MIN_QUESTION_SIMILARITY:
                continue
            score = hits + similarity[n]
            if best is None or score > best[0]:
                best = (score, item.entry)
        return best[1] if best else None

    def _keyword_stems(self, word: str) -> set[str]:
        """The keyword stems a caller's word stands for: itself, and when long enough the
        long stems within the fuzzy threshold of it."""
        found = {word}
        if len(word) >= _FUZZY_MIN_LENGTH:
            found.update(
                stem
                for stem, _, _ in process.extract(
                    word,
                    self._long_stems,
                    scorer=fuzz.ratio,
                    score_cutoff=_FUZZY_KEYWORD,
                    limit=None,
                )
            )
        return found

    async def generate(self, prompt: Prompt, budget: float) -> Completion:
        if prompt.task == "summary":
            return Completion(self.summary(prompt.history))
        if prompt.steps:
            return Completion(self._after_tools(prompt))
        message = self._message_in_progress(prompt)
        if message is not None:
            return message
        entry = self._entry(prompt)
        if entry is not None and entry.action is not None:
            return self._act(prompt, entry)
        return Completion(self._answer(prompt, entry))

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
        for text in asked:
            entry = self.match(normalise(text))
            if entry is not None and entry.topic not in topics:
                topics.append(entry.topic)
        if not topics:
            return f"The caller spoke {len(said)} times, about nothing in the knowledge base."
        listed = topics[0] if len(topics) == 1 else ", ".join(topics[:-1]) + " and " + topics[-1]
        return f"The caller asked about {listed}."

    def _entry(self, prompt: Prompt) -> Entry | None:
        text = normalise(prompt.user_text)
        if _IDENTITY.search(text):
            return None
        entry = self.match(text)
        if entry is None and _FOLLOW_UP.match(text):
            previous = next((t.text for t in reversed(prompt.history) if t.role == "user"), "")
            entry = self.match(f"{previous} {text}") if previous else None
        return entry

    def answer(self, prompt: Prompt) -> str:
        return self._answer(prompt, self._entry(prompt))

    def _answer(self, prompt: Prompt, entry: Entry | None) -> str:
        """What to say to the caller's words, given their knowledge-base match (made once
        per turn: matching is most of this provider's time)."""
        name = prompt.assistant_name or self.assistant_name
        business = self.knowledge.business_name
        text = normalise(prompt.user_text)
        words = set(text.split())
        if _IDENTITY.search(text):
            return (
                f"I'm {name}, the automated assistant for {business}. "
                f"I can answer questions about {self.topics}."
            )
        if entry is not None:
            return entry.answer
        if _CAPABILITIES.search(text):
            return f"I can help with {self.topics}. What would you like to know?"
        if words & _GREETINGS and words <= _GREETINGS | _STOPWORDS:
            return f"Hello! This is {name} at {business}. How can I help you today?"
        if words & _THANKS:
            return "You're welcome! Is there anything else I can help you with?"
        return (
            "I'm sorry, I don't have an answer to that. "
            f"I can help with {self.topics}. Which of those would you like to know about?"
        )


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
