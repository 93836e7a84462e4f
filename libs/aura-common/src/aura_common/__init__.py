"""Pieces shared by Aura's three services."""
