"""Choosing the passages for a turn: one retrieval path for every provider.

Two scorers, each doing what it is good at:
- the entry matcher (YAML entries only): the entry's keywords after light stemming, typos
  of longer words tolerated, and fuzzy similarity to its listed questions. An entry it
  accepts is the operator's own answer to the question, so it ranks first;
- BM25 (the `bm25s` library) over every passage, with the caller's words stemmed the same
  way and a misrecognised word mapped to the passages' words it is a typo of.

A short follow-up ("and on Sunday?") is searched together with the caller's previous words
when it finds nothing convincing on its own."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import bm25s
import numpy as np
from rapidfuzz import fuzz, process

from aura_common.text import normalise
from aura_llm.knowledge import Entry
from aura_llm.knowledge.documents import Passage

# Words that carry no topic; question words such as "where" and "when" are kept on purpose.
STOPWORDS = frozenset(
    """a an the i me my we our you your yours is are am was were be been do does did can
    could would will shall should may might to of in on at for from with about and or but
    if so it its this that these those what which who how there here any some have has had
    get got please just like want wanna need know tell let us im id ok okay um uh er yes
    yeah well hi hello hey guys guy one""".split()
)
_FOLLOW_UP = re.compile(r"^(and|also|what about|how about|and what about)\b")
_FOLLOW_UP_MAX_STEMS = 3
_MIN_QUESTION_SIMILARITY = 0.75
_FUZZY_KEYWORD = 85
# Fuzzy only on longer words: short ones ("cake", "take") differ by one letter too often.
_FUZZY_MIN_LENGTH = 5
# A document passage answers on its own when it holds this share of the question's
# information (its words weighted by how rare they are in the knowledge).
_MIN_COVERAGE = 0.6
_CLEARLY_MORE = 0.2
# Entries the matcher accepts rank above any BM25 score.
_ENTRY_RANK = 100.0


def stem(word: str) -> str:
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


def content_stems(text: str) -> list[str]:
    return [stem(w) for w in normalise(text).split() if w not in STOPWORDS]


# Kept for matching, but a passage need not contain them to answer the question.
_QUESTION_STEMS = frozenset(stem(w) for w in "when where why whom whose".split())


@dataclass(frozen=True, slots=True)
class Hit:
    passage: Passage
    score: float
    confident: bool  # good enough to answer from on its own


@dataclass(frozen=True, slots=True)
class Retrieval:
    hits: tuple[Hit, ...]  # best first

    @property
    def best(self) -> Hit | None:
        """The first hit good enough to answer from, if any."""
        return next((h for h in self.hits if h.confident), None)


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


class _EntryMatcher:
    """Keywords and listed questions of the YAML entries, as the offline provider has
    always matched them."""

    def __init__(self, entries: Sequence[tuple[int, Entry]]) -> None:
        self._positions = [position for position, _ in entries]
        self._keywords = [
            tuple(tuple(content_stems(k) or [stem(k.lower())]) for k in e.keywords)
            for _, e in entries
        ]
        # Every word is compared with all keyword stems, and the text with all questions,
        # in one rapidfuzz call each rather than pair by pair.
        stems = {s for keywords in self._keywords for keyword in keywords for s in keyword}
        self._long_stems = sorted(s for s in stems if len(s) >= _FUZZY_MIN_LENGTH)
        asked = [
            (n, joined)
            for n, (_, e) in enumerate(entries)
            for q in e.questions
            if (joined := " ".join(content_stems(q)))
        ]
        self._question_entries = [n for n, _ in asked]
        self._questions = [q for _, q in asked]

    def _keyword_stems(self, word: str) -> set[str]:
        found = {word}
        if len(word) >= _FUZZY_MIN_LENGTH:
            found.update(
                s
                for s, _, _ in process.extract(
                    word,
                    self._long_stems,
                    scorer=fuzz.ratio,
                    score_cutoff=_FUZZY_KEYWORD,
                    limit=None,
                )
            )
        return found

    def match(self, stems: list[str]) -> list[tuple[float, int]]:
        """(score, passage position) of every entry convincingly matched, best first."""
        if not stems or not self._positions:
            return []
        matches = {word: self._keyword_stems(word) for word in stems}
        present = set().union(*matches.values())
        similarity = [0.0] * len(self._positions)
        for _, score, at in process.extract(
            " ".join(stems), self._questions, scorer=fuzz.token_sort_ratio, limit=None
        ):
            n = self._question_entries[at]
            similarity[n] = max(similarity[n], score / 100)
        found = []
        for n, keywords in enumerate(self._keywords):
            hits = _keyword_hits(stems, keywords, matches, present)
            if hits or similarity[n] >= _MIN_QUESTION_SIMILARITY:
                found.append((hits + similarity[n], self._positions[n]))
        found.sort(key=lambda item: -item[0])
        return found


class Retriever:
    def __init__(self, passages: Sequence[Passage]) -> None:
        self.passages = tuple(passages)
        self._entries = _EntryMatcher(
            [(n, p.entry) for n, p in enumerate(self.passages) if p.entry is not None]
        )
        tokens = [content_stems(p.text) for p in self.passages]
        self._tokens = [frozenset(t) for t in tokens]
        self._bm25 = bm25s.BM25()
        self._bm25.index(tokens, show_progress=False)
        frequency = Counter(word for words in self._tokens for word in words)
        size = len(self.passages)
        self._idf = {w: math.log((size + 1) / (df + 0.5)) for w, df in frequency.items()}
        self._unknown_idf = math.log((size + 1) / 0.5)
        # Typos are looked for among words of about the same length and first letter.
        self._by_start: dict[str, list[str]] = {}
        for word in frequency:
            if len(word) >= _FUZZY_MIN_LENGTH - 1:
                self._by_start.setdefault(word[0], []).append(word)

    def _known(self, word: str) -> list[str]:
        """The passages' words a caller's word stands for: itself when known, else the
        words it is a likely misrecognition of."""
        if word in self._idf or len(word) < _FUZZY_MIN_LENGTH:
            return [word]
        near = process.extract(
            word,
            self._by_start.get(word[0], []),
            scorer=fuzz.ratio,
            score_cutoff=_FUZZY_KEYWORD,
            limit=3,
        )
        return [found for found, _, _ in near] or [word]

    def _coverage(self, query: list[list[str]], position: int) -> float:
        """The share of the question's information (rare words weigh more) in a passage."""
        held = self._tokens[position]
        total = found = 0.0
        for alternatives in query:
            if alternatives[0] in _QUESTION_STEMS:
                continue
            weight = max(self._idf.get(a, self._unknown_idf) for a in alternatives)
            total += weight
            if any(a in held for a in alternatives):
                found += weight
        return found / total if total else 0.0

    def _search(self, text: str, limit: int) -> list[Hit]:
        stems = content_stems(text)
        if not stems or not self.passages:
            return []
        query = [self._known(word) for word in dict.fromkeys(stems)]
        matched = self._entries.match(stems)
        hits = {n: Hit(self.passages[n], _ENTRY_RANK + score, True) for score, n in matched}
        # A document beats the operator's matched entry only when it holds clearly more of
        # what was asked ("yellow fever jabs": the travel leaflet, not the flu-jab entry).
        first = hits[matched[0][1]] if matched else None
        bar = self._coverage(query, matched[0][1]) if matched else 0.0
        terms = [a for alternatives in query for a in alternatives if a in self._idf]
        if terms:
            scores = self._bm25.get_scores(terms)
            count = min(limit + len(hits), len(scores))
            best = np.argpartition(-scores, count - 1)[:count]
            for position in sorted(best.tolist(), key=lambda n: -float(scores[n])):
                score = float(scores[position])
                passage = self.passages[position]
                if score <= 0 or position in hits:
                    continue
                # An entry answers only when the entry matcher accepts it.
                coverage = self._coverage(query, position) if passage.entry is None else 0.0
                confident = coverage >= _MIN_COVERAGE
                if confident and first is not None and coverage > bar + _CLEARLY_MORE:
                    score += first.score
                hits[position] = Hit(passage, score, confident)
        ranked = sorted(hits.values(), key=lambda h: -h.score)
        return ranked[:limit]

    def search(self, text: str, previous: str = "", limit: int = 4) -> Retrieval:
        """The passages for what the caller said; `previous` is what they said before,
        used for a short follow-up."""
        hits = self._search(text, limit)
        if previous and not any(h.confident for h in hits) and self._follow_up(text):
            joint = self._search(f"{previous} {text}", limit)
            seen = {h.passage.id for h in joint}
            hits = (joint + [h for h in hits if h.passage.id not in seen])[:limit]
        return Retrieval(tuple(hits))

    @staticmethod
    def _follow_up(text: str) -> bool:
        words = normalise(text)
        return bool(_FOLLOW_UP.match(words)) or len(content_stems(text)) <= _FOLLOW_UP_MAX_STEMS
