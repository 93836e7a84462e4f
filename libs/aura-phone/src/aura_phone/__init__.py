"""A phone simulator that plays Twilio against an Aura deployment."""
