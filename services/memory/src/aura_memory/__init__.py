"""Aura memory service: the working conversation history of every live call."""
