"""The bearer token: read once from a file, compared in constant time, checked before any body is read."""

from __future__ import annotations

import hmac
from pathlib import Path

from .limits import send_error

__all__ = ["BearerAuth", "OPEN_PATHS", "read_token"]

# Probes and the schema need no token: orchestrators call the probes, and the schema holds no secret.
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json"})


def read_token(path: str | Path) -> str:
    """The token in ``path`` (surrounding whitespace stripped); an empty file is an error."""
    token = Path(path).read_text(encoding="utf-8").strip()
    if not token:
        raise ValueError(f"{path} is empty: write the bearer token clients will send into it")
    return token


class BearerAuth:
    """ASGI middleware: requests outside :data:`OPEN_PATHS` without ``Authorization: Bearer <token>`` get 401."""

    def __init__(self, app, *, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"] not in OPEN_PATHS:
            given = dict(scope["headers"]).get(b"authorization", b"")
            # compare_digest: the time taken does not tell how much of a guessed token was right.
            if not hmac.compare_digest(given, self.expected):
                await send_error(
                    send,
                    401,
                    "missing or wrong bearer token (send 'Authorization: Bearer <token>')",
                    {"www-authenticate": "Bearer"},
                )
                return
        await self.app(scope, receive, send)
