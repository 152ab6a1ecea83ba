"""Where the console reads: the deployment's topics, and positions on them."""

from __future__ import annotations

from dataclasses import dataclass

from ringlog.config import Settings

#: A partition: ``(topic, partition)``; a record's place: ``(topic, partition, offset)``.
Position = tuple[str, int]
Place = tuple[str, int, int]


@dataclass(frozen=True)
class ConsoleTopics:
    """The deployment's topics the console reads about (their full names)."""

    prefix: str
    calls: str
    dialog: str
    abt: str
    sessions: str
    deadletter: str
    quarantine: str

    @classmethod
    def of(cls, settings: Settings) -> ConsoleTopics:
        """The topics of ``settings``' deployment."""
        return cls(
            prefix=settings.kafka.topic_prefix,
            calls=settings.topic("calls"),
            dialog=settings.topic("dialog"),
            abt=settings.topic("abt"),
            sessions=settings.topic("sessions"),
            deadletter=settings.topic("deadletter"),
            quarantine=settings.topic("quarantine"),
        )

    @property
    def timeline(self) -> tuple[str, str, str, str]:
        """The topics the timeline view holds: ``calls``, ``dialog``, ``abt``, ``sessions``."""
        return (self.calls, self.dialog, self.abt, self.sessions)


__all__ = ["ConsoleTopics", "Place", "Position"]
