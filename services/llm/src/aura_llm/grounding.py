"""The guard against invented facts: the facts a caller acts on (times, days, dates, prices
and amounts, phone numbers, street numbers) found in an answer must appear in what the
model was given for the turn (the knowledge passages, the operator's prompt, the
conversation so far, the turn's tool results).

Facts are compared by meaning, not spelling: "nine", "9", "9:00" and "9 am" are one time,
"$6" and "six dollars" one price, "Monday to Friday" holds Wednesday. The sources are read
generously (every number in them, each reading of a time); the answer strictly, so that
what is flagged is what nothing given could have said."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

_UNITS = {w: n for n, w in enumerate("zero one two three four five six seven eight nine".split())}
_TEENS = {
    w: n + 10
    for n, w in enumerate(
        "ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
    )
}
_TENS = {
    w: (n + 2) * 10
    for n, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split())
}
_SCALES = {"hundred": 100, "thousand": 1000}
_NUMBER_WORD = "|".join(sorted([*_UNITS, *_TEENS, *_TENS, *_SCALES], key=len, reverse=True))
_NUMBER_RUN = re.compile(rf"\b(?:{_NUMBER_WORD})(?:(?:[\s-]+(?:and[\s-]+)?)(?:{_NUMBER_WORD}))*\b")
# A lone "one" is a number only beside a unit or after a word that introduces a time.
_ONE_BEFORE = re.compile(r"\b(at|from|until|till|to|by|before|after|around|about|is|costs?)\s+$")
_UNIT_AFTER = re.compile(
    r"^\s+(am|pm|oclock|dollars?|euros?|pounds?|cents?|percent|hours?|minutes?|miles?)\b"
)
_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY_ABBREVIATIONS = {
    "mon": 0, "tue": 1, "tues": 1, "wed": 2, "thu": 3, "thur": 3, "thurs": 3, "fri": 4,
    "sat": 5, "sun": 6,
}  # fmt: skip
_DAY = re.compile(r"\b(monday|tuesday|wednesday|thursday|friday|saturday|sunday)s?\b")
_DAY_OR_SHORT = (
    r"(monday|tuesday|wednesday|thursday|friday|saturday|sunday"
    r"|mon|tues?|wed|thu(?:rs?)?|fri|sat|sun)s?"
)
_DAY_RANGE = re.compile(
    rf"\b{_DAY_OR_SHORT}\.?\s*(?:-|to|through|thru|until|till)\s*{_DAY_OR_SHORT}\b"
)
_WEEKDAYS = re.compile(r"\bweekdays?\b")
_WEEKEND = re.compile(r"\bweekends?\b")
_EVERY_DAY = re.compile(r"\b(every day|daily|7 days a week|all week)\b")
_MONTHS = (
    "january february march april may june july august september october november december"
).split()
_MONTH = (
    r"(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_DATE_MONTH_FIRST = re.compile(rf"\b{_MONTH}\.?\s+(\d{{1,2}})\b")
# "4 may" and "4 march" are more often a time and a verb than a date.
_DATE_DAY_FIRST = re.compile(rf"\b(\d{{1,2}})\s+(?:of\s+)?(?!may\b|march\b){_MONTH}\b")
# Seven or more digits with spaces, dots, dashes or brackets between: a phone number.
_PHONE = re.compile(r"(?<![\d.])\+?\(?\d(?:(?:[\s().-]{0,3}|,\s)\d){6,}(?![\d])")
_TIME = re.compile(r"\b(\d{1,2}):(\d{2})\b")
_NUMBER = re.compile(r"(?<![\d.])(\d+(?:,\d{3})*(?:\.\d+)?)")
_PM_AFTER = re.compile(r"^\s*(pm|in the (afternoon|evening)|at night|tonight)\b")
_CENTS_AFTER = re.compile(r"^\s*(cents?|pence)\b")
_HALF_PAST = re.compile(r"\b(half|quarter) past (\d{1,2})\b")
_QUARTER_TO = re.compile(r"\bquarter to (\d{1,2})\b")
_NOON = re.compile(r"\b(noon|midday)\b")
_MIDNIGHT = re.compile(r"\bmidnight\b")


def _parse_words(words: list[str]) -> list[int]:
    """The numbers a run of number words says: "twenty five" is 25, "nine thirty" is 9
    and 30, "five five five" three fives."""
    numbers: list[int] = []
    current: int | None = None
    last = ""
    for word in words:
        if word == "and":
            continue
        if word in _UNITS:
            if current is not None and last in ("tens", "scale") and current % 10 == 0:
                current += _UNITS[word]
            else:
                if current is not None:
                    numbers.append(current)
                current = _UNITS[word]
            last = "unit"
        elif word in _TEENS or word in _TENS:
            value = _TEENS.get(word) or _TENS[word]
            if current is not None and last == "scale" and current % 100 == 0:
                current += value
            else:
                if current is not None:
                    numbers.append(current)
                current = value
            last = "tens" if word in _TENS else "teen"
        else:  # hundred, thousand
            current = (current or 1) * _SCALES[word]
            last = "scale"
    if current is not None:
        numbers.append(current)
    return numbers


def _digits_for_words(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        said = match.group(0)
        if said == "one" and not (
            _ONE_BEFORE.search(text[: match.start()]) or _UNIT_AFTER.match(text[match.end() :])
        ):
            return said
        return " ".join(str(n) for n in _parse_words(re.split(r"[\s-]+", said)))

    return _NUMBER_RUN.sub(replace, text)


def _prepare(text: str) -> str:
    """Lowercase, with a.m./p.m. and o'clock in one spelling, number words as digits and
    "half past nine" as 9:30."""
    text = text.lower().replace("\u2013", "-").replace("\u2014", "-")
    text = re.sub(r"\b([ap])\.\s?m\b\.?", r"\1m", text)
    text = re.sub(r"o['\u2019]?\s?clock", "oclock", text)
    text = re.sub(r"(\d)(am|pm)\b", r"\1 \2", text)
    text = re.sub(r"(\d)(st|nd|rd|th)\b", r"\1", text)
    text = _digits_for_words(text)
    text = _HALF_PAST.sub(lambda m: f"{m.group(2)}:{'30' if m.group(1) == 'half' else '15'}", text)
    text = _QUARTER_TO.sub(lambda m: f"{(int(m.group(1)) - 2) % 12 + 1}:45", text)
    text = _NOON.sub("12:00", text)
    return _MIDNIGHT.sub("0:00", text)


@dataclass(frozen=True, slots=True)
class Fact:
    kind: str  # number, phone, day or date
    value: float | str | tuple[int, int]
    said: str  # as it appeared, for logs and spans


def _month(name: str) -> int:
    return next(n for n, m in enumerate(_MONTHS, start=1) if m.startswith(name[:3]))


def _number(raw: str) -> float:
    return round(float(raw.replace(",", "")), 2)


def facts(text: str) -> list[Fact]:
    """The facts a caller would act on in an answer."""
    return _facts(_prepare(text))


def _facts(prepared: str) -> list[Fact]:
    found: list[Fact] = []
    for match in _PHONE.finditer(prepared):
        digits = re.sub(r"\D", "", match.group(0))
        found.append(Fact("phone", digits, match.group(0).strip()))
    prepared = _PHONE.sub(" ", prepared)
    for pattern, month, day in ((_DATE_MONTH_FIRST, 1, 2), (_DATE_DAY_FIRST, 2, 1)):
        for match in pattern.finditer(prepared):
            if 1 <= int(match.group(day)) <= 31:
                date = (_month(match.group(month)), int(match.group(day)))
                found.append(Fact("date", date, match.group(0)))
    for match in _TIME.finditer(prepared):
        hours, minutes = int(match.group(1)), int(match.group(2))
        found.append(Fact("number", round(hours + minutes / 60, 2), match.group(0)))
    prepared = _TIME.sub(" ", prepared)
    for match in _NUMBER.finditer(prepared):
        value = _number(match.group(1))
        if _CENTS_AFTER.match(prepared[match.end() :]):
            value = round(value / 100, 2)
        found.append(Fact("number", value, match.group(0)))
    for match in _DAY.finditer(prepared):
        found.append(Fact("day", match.group(1), match.group(0)))
    for pattern, days in ((_WEEKDAYS, _DAYS[:5]), (_WEEKEND, _DAYS[5:])):
        for match in pattern.finditer(prepared):
            found.extend(Fact("day", day, match.group(0)) for day in days)
    return found


def _day_index(name: str) -> int:
    if name in _DAYS:
        return _DAYS.index(name)
    return _DAY_ABBREVIATIONS[name]


@dataclass(slots=True)
class Grounds:
    """Everything the sources of a turn mention, in every reading."""

    numbers: set[float] = field(default_factory=set)
    phones: set[str] = field(default_factory=set)
    days: set[str] = field(default_factory=set)
    dates: set[tuple[int, int]] = field(default_factory=set)

    @classmethod
    def of(cls, texts: Iterable[str]) -> Grounds:
        grounds = cls()
        for text in texts:
            grounds.add(text)
        return grounds

    def merged(self, other: Grounds) -> Grounds:
        return Grounds(
            self.numbers | other.numbers,
            self.phones | other.phones,
            self.days | other.days,
            self.dates | other.dates,
        )

    def add(self, text: str) -> None:
        prepared = _prepare(text)
        for fact in _facts(prepared):
            if fact.kind == "number":
                assert isinstance(fact.value, float)
                self._add_number(fact.value)
            elif fact.kind == "phone":
                assert isinstance(fact.value, str)
                self.phones.add(fact.value)
                # A number's last digits may be given alone ("extension 0142").
                self._add_number(float(fact.value[-4:]))
            elif fact.kind == "day":
                assert isinstance(fact.value, str)
                self.days.add(fact.value)
            elif isinstance(fact.value, tuple):
                self.dates.add(fact.value)
        self._readings(prepared)

    def _add_number(self, value: float) -> None:
        self.numbers.add(value)
        hours = int(value)
        if value != hours:
            # 9:30 is also "9" and "30"; $12.50 also "12" and "50"
            fraction = value - hours
            self.numbers.update({float(hours), round(fraction * 60), round(fraction * 100)})
        if 13 <= hours <= 24:
            self.numbers.add(round(value - 12, 2))

    def _readings(self, prepared: str) -> None:
        """The readings a plain list of facts misses: afternoon times on a 24-hour clock,
        "nine thirty" as 9:30 (and "six fifty" as 6.50), prices in cents, and the days
        inside a range."""
        text = _PHONE.sub(" ", prepared)
        numbers = list(_NUMBER.finditer(text))
        for index, match in enumerate(numbers):
            following = numbers[index + 1] if index + 1 < len(numbers) else None
            value, rest = _number(match.group(1)), text[match.end() :]
            if _PM_AFTER.match(rest) and value < 12:
                self.numbers.add(value + 12)
            if _CENTS_AFTER.match(rest):
                self.numbers.add(value)
            if following is not None and not text[match.end() : following.start()].strip():
                after = _number(following.group(1))
                if value <= 24 and after < 60:
                    self.numbers.update(
                        {round(value + after / 60, 2), round(value + after / 100, 2)}
                    )
        for match in _DAY_RANGE.finditer(prepared):
            start, end = _day_index(match.group(1)), _day_index(match.group(2))
            for step in range((end - start) % 7 + 1):
                self.days.add(_DAYS[(start + step) % 7])
        if _EVERY_DAY.search(prepared):
            self.days.update(_DAYS)

    def holds(self, fact: Fact) -> bool:
        if fact.kind == "number":
            return fact.value in self.numbers
        if fact.kind == "phone":
            said = str(fact.value)
            return any(said.endswith(p) or p.endswith(said) for p in self.phones if len(p) >= 7)
        if fact.kind == "day":
            return fact.value in self.days
        return fact.value in self.dates


def ungrounded(answer: str, grounds: Grounds) -> list[str]:
    """The facts in `answer` that nothing in `grounds` says, as the answer said them."""
    return [fact.said for fact in facts(answer) if not grounds.holds(fact)]
