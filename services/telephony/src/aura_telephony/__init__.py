"""Aura telephony service: answers Twilio's voice webhooks with TwiML."""
