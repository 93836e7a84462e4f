"""The call policy: what the caller said or pressed, and what the model's tools decided,
mean for the call, in every voice mode. It decides what happens next (answer with the
model, ask again, put the caller through to which number, end) and the words the caller
hears; gather renders its decisions as TwiML, relay as ConversationRelay messages, and
neither decides anything of its own.

Only the operator's configuration chooses a number to dial (TRANSFER_NUMBER, or a
department's number from the tools file that the llm service resolved): nothing a caller
says can name one."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from aura_common.actions import CallAction
from aura_telephony.config import Settings
from aura_telephony.conversation import (
    asks_for_language,
    is_goodbye,
    presses_for_a_person,
    refuses_recording,
    wants_a_person,
)
from aura_telephony.phrases import Phrasebook

Next = Literal["model", "ask", "transfer", "end"]


@dataclass(frozen=True, slots=True)
class Decision:
    """What happens next. `say` is what the caller hears first (empty: nothing of ours).
    A transfer dials `number`; when the deployment has none, `say` tells the caller nobody
    is available and the conversation goes on (`next` is then "ask")."""

    next: Next
    say: str = ""
    number: str = ""
    department: str = ""
    # The caller's words belong in the transcript (they were not a model's turn's input).
    keep_caller: bool = False
    reprompt: bool = False  # the caller is asked again: counts towards MAX_REPROMPTS
    events: tuple[str, ...] = ()  # call events to count (aura_call_events_total)
    # The call goes on in this language (a configured one) from here; `say` is in it.
    language: str = ""
    # The caller refused the recording (by words or the notice's key): stop it for good.
    stops_recording: bool = False

    @property
    def dials(self) -> bool:
        return self.next == "transfer"

    @property
    def refused_by(self) -> str:
        """How the caller refused the recording: keypad or words."""
        return "keypad" if "keypad" in self.events else "words"


class CallPolicy:
    """Decides in the call's language (`lang`, a configured tag; empty: the default): the
    words of every decision are that language's lines."""

    def __init__(self, settings: Settings, phrasebook: Phrasebook) -> None:
        self._settings = settings
        self.phrasebook = phrasebook

    def heard(
        self, speech: str, confidence: float | None = None, reprompts: int = 0, lang: str = ""
    ) -> Decision:
        """The caller said `speech` (empty: nothing was recognised), after `reprompts`
        unanswered askings in a row."""
        lines = self.phrasebook(lang)
        if not speech:
            return self._again(lines.DIDNT_CATCH, reprompts, lang)
        if confidence is not None and confidence < self._settings.SPEECH_MIN_CONFIDENCE:
            return self._again(lines.NOT_SURE, reprompts, lang, "low_confidence")
        if refuses_recording(speech):
            return replace(self.refuse_recording(lang), keep_caller=True)
        if wants_a_person(speech):
            return self.transfer(keep_caller=True, lang=lang)
        asked = asks_for_language(speech)
        if asked:
            chosen = self.phrasebook.find(asked)
            if chosen is None:
                return replace(self.refuse_language(lang), keep_caller=True)
            if chosen != lines.language:
                return replace(self.switch(chosen), keep_caller=True)
        if is_goodbye(speech):
            return Decision("end", lines.FAREWELL, keep_caller=True, events=("goodbye",))
        return Decision("model")

    def pressed(self, digits: str, lang: str = "") -> Decision:
        """The caller pressed keys: 0 for a person; with several languages, 2, 3... for
        the second, third... (as the welcome offers them); with recording on, the notice's
        key to refuse it; anything else, help."""
        if presses_for_a_person(digits):
            transfer = self.transfer(lang=lang)
            return replace(transfer, events=("keypad", *transfer.events))
        recording = self._settings.CALL_RECORDING == "on"
        if recording and digits.strip()[:1] == self._settings.RECORDING_OPT_OUT_KEY:
            refusal = self.refuse_recording(lang)
            return replace(refusal, events=("keypad", *refusal.events))
        chosen = self.language_for(digits)
        if chosen:
            return self.switch(chosen, events=("keypad",))
        return Decision("ask", self.phrasebook(lang).KEYPAD_HELP, events=("keypad",))

    def language_for(self, digits: str) -> str:
        """The language a key chooses (the first language is 1), or ""."""
        languages = self.phrasebook.languages
        if len(languages) < 2 or not digits.strip().isdigit():
            return ""
        index = int(digits.strip()) - 1
        return languages[index] if 0 <= index < len(languages) else ""

    def switch(self, language: str, events: tuple[str, ...] = ()) -> Decision:
        """Go on in `language`, a configured one; the caller hears its welcome."""
        lines = self.phrasebook(language)
        welcome = lines.welcome(self._settings.AI_ASSISTANT_NAME)
        if language == self.phrasebook.languages[0]:
            welcome = self._settings.welcome_message
        return Decision("ask", welcome, language=language, events=events)

    def refuse_language(self, lang: str = "") -> Decision:
        """The caller asked for a language the operator did not configure."""
        line = self.phrasebook(lang).LANGUAGE_NOT_AVAILABLE
        return Decision("ask", line.replace("{languages}", self.phrasebook.names()))

    def refuse_recording(self, lang: str = "") -> Decision:
        """The caller does not want the call recorded: with recording on it stops, for
        the rest of the call; with it off they are told so. Nothing a caller says starts
        a recording."""
        lines = self.phrasebook(lang)
        if self._settings.CALL_RECORDING != "on":
            return Decision("ask", lines.RECORDING_OFF)
        return Decision(
            "ask", lines.RECORDING_STOPPED, events=("recording_refused",), stops_recording=True
        )

    def silent(self, reprompts: int, lang: str = "") -> Decision:
        """The caller said nothing for a while, after `reprompts` askings in a row."""
        return self._again(self.phrasebook(lang).STILL_THERE, reprompts, lang)

    def _again(self, say: str, reprompts: int, lang: str, *events: str) -> Decision:
        """Ask again, or after MAX_REPROMPTS a goodbye."""
        if reprompts >= self._settings.MAX_REPROMPTS:
            goodbye = self.phrasebook(lang).NO_INPUT_GOODBYE
            return Decision("end", goodbye, events=(*events, "reprompt"))
        return Decision("ask", say, reprompt=True, events=(*events, "reprompt"))

    def transfer(
        self,
        number: str = "",
        department: str = "",
        say: str = "",
        keep_caller: bool = False,
        lang: str = "",
    ) -> Decision:
        """Put the caller through: to `number` (a department's, from the operator's tools
        file) or TRANSFER_NUMBER; with neither, say nobody is available and go on."""
        number = number or self._settings.TRANSFER_NUMBER
        if not number:
            nobody = self.phrasebook(lang).NOBODY_AVAILABLE
            return Decision("ask", nobody, keep_caller=keep_caller, events=("transfer",))
        return Decision(
            "transfer",
            say,
            number=number,
            department=department,
            keep_caller=keep_caller,
            events=("transfer",),
        )

    def message_line(self, saved: bool, said: str, lang: str = "") -> str:
        """What to add to an answer after a message was (or could not be) kept: nothing
        when it was and the model already said so."""
        lines = self.phrasebook(lang)
        if not saved:
            return lines.MESSAGE_NOT_SAVED
        return "" if said else lines.MESSAGE_TAKEN

    def answered(self, said: str, actions: tuple[CallAction, ...], lang: str = "") -> Decision:
        """The model answered `said` and its tools decided `actions` (messages already
        kept): a transfer, an end, a change of language, or the caller's turn."""
        kinds = {action.kind: action for action in actions}
        if "transfer_call" in kinds:
            action = kinds["transfer_call"]
            return self.transfer(action.number, action.department, say=said, lang=lang)
        if "end_call" in kinds:
            return Decision("end", said or self.phrasebook(lang).FAREWELL, events=("goodbye",))
        if "switch_language" in kinds:
            chosen = self.phrasebook.find(kinds["switch_language"].language)
            if chosen is None:  # the tool's schema allows only configured ones: not trusted
                return self.refuse_language(lang)
            return Decision("ask", said, language=chosen)
        return Decision("ask", said)
