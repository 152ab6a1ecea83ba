"""ringlog: an event-sourced backbone for voice-AI phone calls."""

__version__ = "0.1.0"
