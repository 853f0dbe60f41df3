"""How the API is served: uvicorn on h11, with deadlines for idle connections and slow headers.

uvicorn closes a connection left idle `timeout_keep_alive` seconds after an answer, but any byte
received cancels that timer, and nothing times a request whose line and headers trickle in (or
never come, on a fresh connection). `HeaderDeadline` gives every request `headers_timeout`
seconds from the moment the connection is ready for it until its headers are complete; the
headers may take at most `max_header_bytes`. Bodies are timed by `dispatcher.api.limits`.
"""

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from dispatcher.settings import Settings


class HeaderDeadline(H11Protocol):
    """uvicorn's h11 protocol, closing connections whose request headers do not arrive in time."""

    headers_timeout = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the clock for the first request."""
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        """Stop the clock once a request's headers are in."""
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._disarm()

    def on_response_complete(self) -> None:
        """Start the clock for the next request on this connection."""
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the clock."""
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.headers_timeout, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


def serve(settings: Settings, host: str, port: int) -> None:
    """Run the API until stopped."""
    import uvicorn

    protocol = type("Protocol", (HeaderDeadline,), {"headers_timeout": settings.headers_timeout})
    uvicorn.run(
        "dispatcher.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        log_level="info",
        http=protocol,
        timeout_keep_alive=settings.api_keep_alive_timeout,
        h11_max_incomplete_event_size=settings.api_max_header_bytes,
    )
