"""uvicorn with a drain on SIGTERM: stop accepting, answer what is open, finish the queue, exit 0.

uvicorn already stops listening and waits for open requests on SIGTERM; then the app's lifespan closes the
batching queue, which finishes what is queued. uvicorn then raises the captured signal again, so that the
process ends *by* the signal (exit status -15); for an orchestrator a drained server has stopped cleanly, so
SIGTERM is taken as handled and the process exits 0. SIGINT (Ctrl-C) keeps uvicorn's behaviour.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from types import FrameType

import uvicorn

__all__ = ["DrainingServer", "run_server"]


class DrainingServer(uvicorn.Server):
    """``uvicorn.Server`` that calls ``on_drain`` when asked to stop, and exits 0 after a drained SIGTERM."""

    def __init__(self, config: uvicorn.Config, *, on_drain: Callable[[], None] | None = None) -> None:
        super().__init__(config)
        self.on_drain = on_drain

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.on_drain is not None:
            self.on_drain()
        super().handle_exit(sig, frame)
        captured = getattr(self, "_captured_signals", None)  # uvicorn >= 0.29 re-raises these after the drain
        if sig == signal.SIGTERM and captured and captured[-1] == sig:
            captured.pop()


def run_server(app, *, host: str, port: int, log_level: str = "info") -> int:
    """Serve ``app`` until SIGTERM or SIGINT; 0 after a drained SIGTERM."""

    def drain() -> None:
        app.state.draining = True

    config = uvicorn.Config(
        app, host=host, port=port, log_level=log_level, lifespan="on", workers=1, access_log=log_level == "debug"
    )
    server = DrainingServer(config, on_drain=drain)
    server.run()
    # uvicorn returns (without raising) when it could not bind or its startup failed.
    return 0 if server.started else 1
