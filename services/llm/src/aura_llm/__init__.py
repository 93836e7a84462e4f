"""Aura llm service: turns what a caller said into what the assistant answers."""
