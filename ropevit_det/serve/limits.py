"""The server's limits, and the ASGI guards for what cannot be checked inside a route: body size and time.

A route sees an upload only after the framework has read the whole multipart body, so the size limit is
enforced while the body streams in (a ``Content-Length`` over it is refused before a byte is read), and the
time limit wraps the whole request, upload included (a slow client holds a connection, not the model).
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass

__all__ = ["BodySizeLimit", "RequestTimeout", "ServeLimits", "send_error"]


@dataclass(frozen=True, kw_only=True)
class ServeLimits:
    """What one server accepts and how it batches."""

    max_batch: int = 8  # images per model call
    max_wait_ms: float = 10.0  # how long the first image of a batch waits for others
    max_queue: int = 64  # images admitted and not yet in a model call; more get 503
    max_upload_bytes: int = 32 * 1024 * 1024  # the whole request body
    max_pixels: int = 64_000_000  # per image (width x height as stored), decompression bombs included
    request_timeout_s: float = 60.0  # the whole request, upload included
    decode_threads: int = min(4, os.cpu_count() or 1)  # uploads decoded at once, beside the model's thread

    def __post_init__(self) -> None:
        for name in ("max_batch", "max_queue", "max_upload_bytes", "max_pixels", "decode_threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_wait_ms < 0 or self.request_timeout_s <= 0:
            raise ValueError("max_wait_ms must be >= 0 and request_timeout_s > 0")


async def send_error(send, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
    """A JSON error response (``{"detail": ...}``, as FastAPI's own errors) from ASGI middleware."""
    body = json.dumps({"detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    """ASGI middleware: a request body over ``max_bytes`` gets 413 and is not read further."""

    def __init__(self, app, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        detail = f"the request body is over the server's upload limit of {self.max_bytes} bytes"
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await send_error(send, 413, detail, {"connection": "close"})
            return
        seen = 0
        over = False

        async def counting_receive():
            nonlocal seen, over
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    over = True
                    raise _BodyTooLarge
            return message

        async def answering_send(message):
            # The framework turns any error while it parses the body into its own 400: once the body is over
            # the limit, that answer is replaced by the 413.
            if not over:
                await send(message)
            elif message["type"] == "http.response.start":
                await send_error(send, 413, detail, {"connection": "close"})

        try:
            await self.app(scope, counting_receive, answering_send)
        except _BodyTooLarge:
            await send_error(send, 413, detail, {"connection": "close"})


class RequestTimeout:
    """ASGI middleware: a request not answered within ``seconds`` gets 504; its queued images are dropped.

    Cancelling the route cancels its futures, and the batching worker skips cancelled images.
    """

    def __init__(self, app, *, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watching_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await asyncio.wait_for(self.app(scope, receive, watching_send), self.seconds)
        except TimeoutError:
            if not started:
                await send_error(send, 504, f"the request took longer than the server's limit of {self.seconds} s")
