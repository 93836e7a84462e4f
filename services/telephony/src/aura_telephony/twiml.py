"""Every TwiML document the service answers with, built by the `twilio` library so that
whatever a caller says is escaped text inside <Say>, never markup; what XML forbids
outright is dropped before it gets there."""

from __future__ import annotations

from urllib.parse import urlencode

from twilio.twiml.voice_response import Gather, VoiceResponse

from aura_common.text import xml_safe
from aura_telephony.config import Settings
from aura_telephony.macs import value_mac
from aura_telephony.phrases import Phrasebook, Phrases

PROCESS_PATH = "/api/voice/process"
RELAY_PATH = "/api/voice/relay"
RELAY_ENDED_PATH = "/api/voice/relay/ended"
STREAM_PATH = "/api/voice/stream"
STREAM_ENDED_PATH = "/api/voice/stream/ended"
TRANSFER_PATH = "/api/voice/transfer"
TRANSFER_ENDED_PATH = "/api/voice/transfer/ended"
WHISPER_PATH = "/api/voice/whisper"
WHISPER_ANSWER_PATH = "/api/voice/whisper/answer"
CONSENT_PATH = "/api/voice/consent"
# How long the person who answers a warm transfer has to press 1.
WHISPER_SECONDS = 10


class Twiml:
    """Documents in the call's language (`lang`, a configured tag; empty: the default):
    its voice, its recogniser, its lines."""

    def __init__(self, settings: Settings, phrasebook: Phrasebook) -> None:
        self._book = phrasebook
        self._settings = settings
        self._assistant_name = settings.AI_ASSISTANT_NAME
        self._gather_options: dict[str, str] = {
            "input": "speech dtmf",
            "method": "POST",
            "speech_timeout": settings.SPEECH_TIMEOUT,
            "num_digits": "1",
            # Silence comes back to us as an empty result, so reprompts are counted here.
            "action_on_empty_result": "true",
            "profanity_filter": "true" if settings.SPEECH_PROFANITY_FILTER else "false",
        }
        if settings.SPEECH_MODEL:
            self._gather_options["speech_model"] = settings.SPEECH_MODEL
        if settings.SPEECH_HINTS:
            self._gather_options["hints"] = settings.SPEECH_HINTS
        # <ConversationRelay>: the caller may interrupt by voice or keys, and keys are sent.
        # <ConversationRelay>: the caller may interrupt by voice or keys, and keys are sent.
        self._relay_options: dict[str, str] = {"interruptible": "any", "dtmf_detection": "true"}
        for option, value in (
            ("interrupt_sensitivity", settings.RELAY_INTERRUPT_SENSITIVITY),
            ("hints", settings.SPEECH_HINTS),
        ):
            if value:
                self._relay_options[option] = value

    def _say(self, parent: VoiceResponse | Gather, text: str, lines: Phrases) -> None:
        parent.say(xml_safe(text), voice=lines.voices.say, language=lines.language)

    def ask(self, text: str, reprompts: int = 0, lang: str = "", offer: bool = False) -> str:
        """Say `text` and listen for the caller's answer, in `lang`. `reprompts` counts
        the silent or unclear turns so far and `lang` is the call's language: both travel
        in the action URL, so any replica can read them. With `offer` (the welcome), the
        other languages are offered by key, each in its own language and voice."""
        lines = self._book(lang)
        query = urlencode({k: v for k, v in (("reprompts", reprompts), ("lang", lang)) if v})
        action = f"{PROCESS_PATH}?{query}" if query else PROCESS_PATH
        gather = Gather(action=action, language=lines.language, **self._gather_options)
        self._say(gather, text, lines)
        if offer:
            for digit, other in enumerate(self._book.languages, start=1):
                if other != lines.language:
                    self._say(gather, self._book(other).choose(str(digit)), self._book(other))
        response = VoiceResponse()
        response.append(gather)
        # Reached only if Twilio cannot post the empty result (the Gather is cut short).
        self._say(response, lines.NO_INPUT_GOODBYE, lines)
        response.hangup()
        return str(response)

    def notice(self, query: str = "") -> str:
        """The recording notice, in each of the deployment's languages and voices, while
        listening for the key that refuses; the notice's webhook (CONSENT_PATH) then
        starts the recording, or not, and greets."""
        action = f"{CONSENT_PATH}?{query}" if query else CONSENT_PATH
        gather = Gather(
            action=action,
            method="POST",
            input="dtmf",
            num_digits="1",
            timeout="1",
            action_on_empty_result="true",
        )
        for tag in self._book.languages:
            lines = self._book(tag)
            self._say(gather, lines.notice(self._settings.RECORDING_OPT_OUT_KEY), lines)
        response = VoiceResponse()
        response.append(gather)
        response.redirect(action, method="POST")  # should the empty result not be posted
        return str(response)

    def hang_up(self, text: str, lang: str = "") -> str:
        response = VoiceResponse()
        self._say(response, text, self._book(lang))
        response.hangup()
        return str(response)

    def transfer(self, number: str, said: str = "", lang: str = "") -> str:
        """Put the caller through to `number`, after `said` (what the assistant told them)
        or the standard line. Warm (TRANSFER_MODE): the caller hears that a colleague is
        being briefed while the transfer webhook writes the summary and dials."""
        lines = self._book(lang)
        response = VoiceResponse()
        if self._settings.TRANSFER_MODE == "warm":
            if said:
                self._say(response, said, lines)
            self._say(response, lines.BRIEFING, lines)
            query = {"to": number, "sig": value_mac("transfer", number, self._settings)}
            if lang:
                query["lang"] = lang
            response.redirect(f"{TRANSFER_PATH}?{urlencode(query)}", method="POST")
            return str(response)
        self._say(response, said or lines.TRANSFERRING, lines)
        response.dial(number)
        # <Dial> falls through to the next verb when nobody answers.
        self._say(response, lines.TRANSFER_FAILED, lines)
        response.hangup()
        return str(response)

    def dial_warm(self, number: str, call_sid: str, lang: str = "") -> str:
        """Dial `number`; whoever answers hears the whisper first (<Number url>), and the
        caller hears ringing meanwhile. The action URL decides what comes after."""
        query = urlencode({k: v for k, v in (("call", call_sid), ("lang", lang)) if v})
        response = VoiceResponse()
        dial = response.dial(action=f"{TRANSFER_ENDED_PATH}?{query}", method="POST")
        dial.number(number, url=f"{WHISPER_PATH}?{query}", method="POST")
        return str(response)

    def whisper(self, summary: str, call_sid: str, lang: str = "") -> str:
        """What the person answering a warm transfer hears: the summary, then how to take
        the call; without a key in time, they are hung up on (and the caller comes back)."""
        lines = self._book(lang)
        query = urlencode({k: v for k, v in (("call", call_sid), ("lang", lang)) if v})
        response = VoiceResponse()
        gather = Gather(
            action=f"{WHISPER_ANSWER_PATH}?{query}",
            method="POST",
            input="dtmf",
            num_digits="1",
            timeout=str(WHISPER_SECONDS),
            action_on_empty_result="true",
        )
        self._say(gather, summary, lines)
        self._say(gather, lines.WHISPER_ACCEPT, lines)
        response.append(gather)
        response.hangup()
        return str(response)

    def relay(self, url: str, welcome: str = "", lang: str = "") -> str:
        """Connect the call to Aura's ConversationRelay WebSocket at `url` (wss://), in
        `lang`. Twilio speaks `welcome` itself; a reconnected call (a handover) gets none."""
        greeting = {"welcome_greeting": xml_safe(welcome)} if welcome else {}
        return self._append_relay(VoiceResponse(), url, lang, **greeting)

    def nobody_available(self, url: str, lang: str = "") -> str:
        """No one to transfer to: say so, and go back to the conversation."""
        response = VoiceResponse()
        self._say(response, self._book(lang).NOBODY_AVAILABLE, self._book(lang))
        return self._append_relay(response, url, lang)

    def _append_relay(self, response: VoiceResponse, url: str, lang: str, **extra: str) -> str:
        """<ConversationRelay> starting in `lang`, with a <Language> for every language
        the call may switch to, each with its own voice and recogniser."""
        start = self._book(lang)
        connect = response.connect(action=RELAY_ENDED_PATH, method="POST")
        options = {**self._relay_options, **_relay_voice(start), "language": start.language}
        relay = connect.conversation_relay(url=url, **options, **extra)
        if len(self._book.languages) > 1:
            for tag in self._book.languages:
                relay.language(code=tag, **_relay_voice(self._book(tag)))
        if lang:
            # A call reconnected in another language than the first (a handover) goes on
            # in it: the session reads it in `setup`.
            relay.parameter(name="lang", value=lang)
        return str(response)

    def stream(self, url: str, ticket: str, say: str = "", lang: str = "") -> str:
        """Connect the call to Aura's Media Streams WebSocket at `url` (wss://, no query:
        Twilio drops it), the call's ticket as a <Parameter>; after `say`, when given."""
        response = VoiceResponse()
        if say:
            self._say(response, say, self._book(lang))
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


def _relay_voice(lines: Phrases) -> dict[str, str]:
    """A language's ConversationRelay voice and recogniser (empty: Twilio's defaults)."""
    voices = lines.voices
    return {
        option: value
        for option, value in (
            ("tts_provider", voices.relay_tts_provider),
            ("voice", voices.relay_voice),
            ("transcription_provider", voices.relay_transcription_provider),
            ("speech_model", voices.relay_speech_model),
        )
        if value
    }
