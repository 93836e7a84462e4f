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
from aura_telephony import phrases
from aura_telephony.config import Settings
from aura_telephony.conversation import is_goodbye, presses_for_a_person, wants_a_person

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

    @property
    def dials(self) -> bool:
        return self.next == "transfer"


class CallPolicy:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def heard(self, speech: str, confidence: float | None = None, reprompts: int = 0) -> Decision:
        """The caller said `speech` (empty: nothing was recognised), after `reprompts`
        unanswered askings in a row."""
        if not speech:
            return self._again(phrases.DIDNT_CATCH, reprompts)
        if confidence is not None and confidence < self._settings.SPEECH_MIN_CONFIDENCE:
            return self._again(phrases.NOT_SURE, reprompts, "low_confidence")
        if wants_a_person(speech):
            return self.transfer(keep_caller=True)
        if is_goodbye(speech):
            return Decision("end", phrases.FAREWELL, keep_caller=True, events=("goodbye",))
        return Decision("model")

    def pressed(self, digits: str) -> Decision:
        """The caller pressed keys."""
        if presses_for_a_person(digits):
            transfer = self.transfer()
            return replace(transfer, events=("keypad", *transfer.events))
        return Decision("ask", phrases.KEYPAD_HELP, events=("keypad",))

    def silent(self, reprompts: int) -> Decision:
        """The caller said nothing for a while, after `reprompts` askings in a row."""
        return self._again(phrases.STILL_THERE, reprompts)

    def _again(self, say: str, reprompts: int, *events: str) -> Decision:
        """Ask again, or after MAX_REPROMPTS a goodbye."""
        if reprompts >= self._settings.MAX_REPROMPTS:
            return Decision("end", phrases.NO_INPUT_GOODBYE, events=(*events, "reprompt"))
        return Decision("ask", say, reprompt=True, events=(*events, "reprompt"))

    def transfer(
        self, number: str = "", department: str = "", say: str = "", keep_caller: bool = False
    ) -> Decision:
        """Put the caller through: to `number` (a department's, from the operator's tools
        file) or TRANSFER_NUMBER; with neither, say nobody is available and go on."""
        number = number or self._settings.TRANSFER_NUMBER
        if not number:
            return Decision(
                "ask", phrases.NOBODY_AVAILABLE, keep_caller=keep_caller, events=("transfer",)
            )
        return Decision(
            "transfer",
            say,
            number=number,
            department=department,
            keep_caller=keep_caller,
            events=("transfer",),
        )

    def message_line(self, saved: bool, said: str) -> str:
        """What to add to an answer after a message was (or could not be) kept: nothing
        when it was and the model already said so."""
        if not saved:
            return phrases.MESSAGE_NOT_SAVED
        return "" if said else phrases.MESSAGE_TAKEN

    def answered(self, said: str, actions: tuple[CallAction, ...]) -> Decision:
        """The model answered `said` and its tools decided `actions` (messages already
        kept): a transfer, an end, or the caller's turn."""
        kinds = {action.kind: action for action in actions}
        if "transfer_call" in kinds:
            action = kinds["transfer_call"]
            return self.transfer(action.number, action.department, say=said)
        if "end_call" in kinds:
            return Decision("end", said or phrases.FAREWELL, events=("goodbye",))
        return Decision("ask", said)
