"""Every TwiML document the service answers with, built by the `twilio` library so that
whatever a caller says is escaped text inside <Say>, never markup; what XML forbids
outright is dropped before it gets there."""

from __future__ import annotations

from twilio.twiml.voice_response import Gather, VoiceResponse

from aura_common.text import xml_safe
from aura_telephony.config import Settings
from aura_telephony.phrases import (
    NO_INPUT_GOODBYE,
    NOBODY_AVAILABLE,
    TRANSFER_FAILED,
    TRANSFERRING,
)

PROCESS_PATH = "/api/voice/process"
RELAY_PATH = "/api/voice/relay"
RELAY_ENDED_PATH = "/api/voice/relay/ended"
STREAM_PATH = "/api/voice/stream"
STREAM_ENDED_PATH = "/api/voice/stream/ended"


class Twiml:
    def __init__(self, settings: Settings) -> None:
        self._voice = settings.AI_ASSISTANT_VOICE
        self._gather_options: dict[str, str] = {
            "input": "speech dtmf",
            "method": "POST",
            "speech_timeout": settings.SPEECH_TIMEOUT,
            "num_digits": "1",
            # Silence comes back to us as an empty result, so reprompts are counted here.
            "action_on_empty_result": "true",
            "profanity_filter": "true" if settings.SPEECH_PROFANITY_FILTER else "false",
        }
        if settings.SPEECH_LANGUAGE:
            self._gather_options["language"] = settings.SPEECH_LANGUAGE
        if settings.SPEECH_MODEL:
            self._gather_options["speech_model"] = settings.SPEECH_MODEL
        if settings.SPEECH_HINTS:
            self._gather_options["hints"] = settings.SPEECH_HINTS
        # <ConversationRelay>: the caller may interrupt by voice or keys, and keys are sent.
        self._relay_options: dict[str, str] = {"interruptible": "any", "dtmf_detection": "true"}
        for option, value in (
            ("language", settings.SPEECH_LANGUAGE),
            ("tts_provider", settings.RELAY_TTS_PROVIDER),
            ("voice", settings.RELAY_VOICE),
            ("transcription_provider", settings.RELAY_TRANSCRIPTION_PROVIDER),
            ("speech_model", settings.RELAY_SPEECH_MODEL),
            ("interrupt_sensitivity", settings.RELAY_INTERRUPT_SENSITIVITY),
            ("hints", settings.SPEECH_HINTS),
        ):
            if value:
                self._relay_options[option] = value

    def ask(self, text: str, reprompts: int = 0) -> str:
        """Say `text` and listen for the caller's answer. `reprompts` counts the silent or
        unclear turns so far; it travels in the action URL, so any replica can read it."""
        response = VoiceResponse()
        action = f"{PROCESS_PATH}?reprompts={reprompts}" if reprompts else PROCESS_PATH
        gather = Gather(action=action, **self._gather_options)
        gather.say(xml_safe(text), voice=self._voice)
        response.append(gather)
        # Reached only if Twilio cannot post the empty result (the Gather is cut short).
        response.say(NO_INPUT_GOODBYE, voice=self._voice)
        response.hangup()
        return str(response)

    def hang_up(self, text: str) -> str:
        response = VoiceResponse()
        response.say(xml_safe(text), voice=self._voice)
        response.hangup()
        return str(response)

    def transfer(self, number: str, said: str = "") -> str:
        """Put the caller through to `number`, after `said` (what the assistant told them)
        or the standard line."""
        response = VoiceResponse()
        response.say(xml_safe(said) or TRANSFERRING, voice=self._voice)
        response.dial(number)
        # <Dial> falls through to the next verb when nobody answers.
        response.say(TRANSFER_FAILED, voice=self._voice)
        response.hangup()
        return str(response)

    def relay(self, url: str, welcome: str = "") -> str:
        """Connect the call to Aura's ConversationRelay WebSocket at `url` (wss://). Twilio
        speaks `welcome` itself; a reconnected call (a handover) gets none."""
        greeting = {"welcome_greeting": xml_safe(welcome)} if welcome else {}
        return self._append_relay(VoiceResponse(), url, **greeting)

    def nobody_available(self, url: str) -> str:
        """No one to transfer to: say so, and go back to the conversation."""
        response = VoiceResponse()
        response.say(NOBODY_AVAILABLE, voice=self._voice)
        return self._append_relay(response, url)

    def _append_relay(self, response: VoiceResponse, url: str, **extra: str) -> str:
        connect = response.connect(action=RELAY_ENDED_PATH, method="POST")
        connect.conversation_relay(url=url, **self._relay_options, **extra)
        return str(response)

    def stream(self, url: str, ticket: str, say: str = "") -> str:
        """Connect the call to Aura's Media Streams WebSocket at `url` (wss://, no query:
        Twilio drops it), the call's ticket as a <Parameter>; after `say`, when given."""
        response = VoiceResponse()
        if say:
            response.say(xml_safe(say), voice=self._voice)
        connect = response.connect(action=STREAM_ENDED_PATH, method="POST")
        stream = connect.stream(url=url)
        stream.parameter(name="ticket", value=ticket)
        return str(response)

    def voicemail(self, message: str) -> str:
        """A message left on an answering machine (after its beep), then a hang-up."""
        return self.hang_up(message) if message else self.hang_up_silently()

    def hang_up_silently(self) -> str:
        response = VoiceResponse()
        response.hangup()
        return str(response)

    @staticmethod
    def empty() -> str:
        return str(VoiceResponse())
