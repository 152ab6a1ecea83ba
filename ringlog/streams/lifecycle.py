"""The ``async with`` protocol shared by ringlog's Kafka clients."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class AsyncService:
    """Something started and stopped around a block: ``async with Client(...) as c: ...``."""

    async def start(self) -> None:
        """Connect; subclasses implement."""
        raise NotImplementedError

    async def stop(self) -> None:
        """Disconnect; subclasses implement."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
