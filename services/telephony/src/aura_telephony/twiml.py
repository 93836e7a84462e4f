"""Every TwiML document the service answers with, built by the `twilio` library so that
whatever a caller says is escaped text inside <Say>, never markup."""

from __future__ import annotations

from twilio.twiml.voice_response import Gather, VoiceResponse

from aura_telephony.config import Settings

PROCESS_PATH = "/api/voice/process"

NO_INPUT_GOODBYE = "I didn't hear anything, so I'll hang up now. Goodbye!"
FAREWELL = "Thank you for calling. Have a great day. Goodbye!"
APOLOGY = "Sorry, I'm having trouble answering right now. Could you say that again?"
DIDNT_CATCH = "Sorry, I didn't catch that. Could you say it again?"


class Twiml:
    def __init__(self, settings: Settings) -> None:
        self._voice = settings.AI_ASSISTANT_VOICE
        self._speech_timeout = settings.SPEECH_TIMEOUT

    def ask(self, text: str) -> str:
        """Say `text` and listen for the caller's answer; hang up politely on silence."""
        response = VoiceResponse()
        gather = Gather(
            input="speech",
            action=PROCESS_PATH,
            method="POST",
            speech_timeout=self._speech_timeout,
        )
        gather.say(text, voice=self._voice)
        response.append(gather)
        # Twilio reaches the verbs after <Gather> only when the caller said nothing.
        response.say(NO_INPUT_GOODBYE, voice=self._voice)
        response.hangup()
        return str(response)

    def hang_up(self, text: str) -> str:
        response = VoiceResponse()
        response.say(text, voice=self._voice)
        response.hangup()
        return str(response)

    @staticmethod
    def empty() -> str:
        return str(VoiceResponse())
