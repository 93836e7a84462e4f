"""Plays Twilio in tests, through the phone simulator's Twilio (aura_phone.twilio): signed
form-encoded webhooks over an httpx client, and the TwiML that comes back, parsed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from xml.etree import ElementTree

import httpx

from aura_phone.twilio import FORM, Twilio, new_call_sid, new_token

__all__ = ["FORM", "AsyncTwilioPlayer", "TwilioPlayer", "Twiml", "new_call_sid", "new_token"]


@dataclass
class Twiml:
    """A parsed TwiML answer."""

    xml: str
    root: ElementTree.Element = field(init=False)

    def __post_init__(self) -> None:
        self.root = ElementTree.fromstring(self.xml)
        assert self.root.tag == "Response", self.xml

    @property
    def verbs(self) -> list[str]:
        return [child.tag for child in self.root]

    @property
    def gather(self) -> ElementTree.Element | None:
        return self.root.find("Gather")

    @property
    def spoken(self) -> str:
        """What the caller hears first: the <Say> in the Gather, else the first <Say>."""
        say = self.root.find("Gather/Say")
        if say is None:
            say = self.root.find("Say")
        return (say.text or "") if say is not None else ""

    @property
    def hangs_up(self) -> bool:
        return self.gather is None and "Hangup" in self.verbs


@dataclass(kw_only=True)
class TwilioPlayer(Twilio):
    client: httpx.Client

    def sign(self, path: str, params: Mapping[str, str]) -> dict[str, str]:
        return self.signed(str(self.client.base_url), path, params)

    def post(self, path: str, params: Mapping[str, str]) -> httpx.Response:
        """One webhook delivery, with a fresh idempotency token as Twilio sends."""
        headers = self.headers(str(self.client.base_url), path, params)
        return self.client.post(path, data=dict(params), headers=headers)


@dataclass(kw_only=True)
class AsyncTwilioPlayer(Twilio):
    client: httpx.AsyncClient

    def sign(self, path: str, params: Mapping[str, str]) -> dict[str, str]:
        return self.signed(str(self.client.base_url), path, params)

    async def post(self, path: str, params: Mapping[str, str]) -> httpx.Response:
        """One webhook delivery, with a fresh idempotency token as Twilio sends."""
        headers = self.headers(str(self.client.base_url), path, params)
        return await self.client.post(path, data=dict(params), headers=headers)


def relay_url_for(stack_url: str, call_sid: str, auth_token: str) -> str:
    """The relay URL a deployment in relay mode would issue for `call_sid` (its ticket is
    keyed with the auth token), for tests whose deployment answers calls in gather mode
    but plays a relay session too; the call must have been welcomed."""
    from aura_telephony.config import Settings
    from aura_telephony.security import relay_ticket

    settings = Settings.model_validate({"TWILIO_AUTH_TOKEN": auth_token})
    return (
        f"{stack_url.replace('http', 'ws', 1)}/api/voice/relay/{relay_ticket(call_sid, settings)}"
    )
