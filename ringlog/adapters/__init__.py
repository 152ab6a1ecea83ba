"""Clients for the outside services ringlog talks to (Retell)."""
