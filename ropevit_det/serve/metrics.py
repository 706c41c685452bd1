"""The server's Prometheus metrics (requests, latency, batch sizes, failures), in a registry of its own."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["ServeMetrics"]

# Failures by status: 422 is a corrupt, truncated or non-image upload, 503 a full queue or a draining server.
_REASONS = {401: "unauthorized", 413: "too_large", 422: "invalid_upload", 503: "unavailable", 504: "timeout"}
_ROUTES = ("/v1/detect", "/healthz", "/readyz", "/metrics", "/openapi.json")


class ServeMetrics:
    """Counters and histograms of one server; :meth:`middleware` counts every request and its status."""

    def __init__(self, *, max_batch: int) -> None:
        # A registry per server, not the process-wide default: two servers in one process (tests) stay apart.
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ropevit_serve_requests", "HTTP requests by route and status", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "ropevit_serve_request_seconds",
            "time from request to response, by route",
            ["route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        sizes = sorted({1, 2, 4, 8, 16, 32, 64, max_batch})
        self.batch_size = Histogram(
            "ropevit_serve_batch_size",
            "images per model call",
            registry=self.registry,
            buckets=[s for s in sizes if s <= max_batch],
        )
        self.batch_seconds = Histogram(
            "ropevit_serve_batch_seconds", "time of one model call (detect + species)", registry=self.registry
        )
        self.images = Counter("ropevit_serve_images", "images answered with an entry", registry=self.registry)
        self.failures = Counter(
            "ropevit_serve_failures", "requests refused or failed, by reason", ["reason"], registry=self.registry
        )
        self.queue_depth = Gauge(
            "ropevit_serve_queue_depth", "images admitted and not yet in a model call", registry=self.registry
        )

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)

    def middleware(self, app):
        """ASGI middleware around ``app`` that counts requests by route and status, and their latency."""
        metrics = self

        async def counted(scope, receive, send):
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            # Known routes only: a fuzzer's random paths must not grow the label set without bound.
            route = scope["path"] if scope["path"] in _ROUTES else "other"
            status = 500
            start = time.perf_counter()

            async def watching_send(message):
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            try:
                await app(scope, receive, watching_send)
            finally:
                metrics.requests.labels(route, str(status)).inc()
                metrics.latency.labels(route).observe(time.perf_counter() - start)
                if status >= 400:
                    metrics.failures.labels(_REASONS.get(status, "internal" if status >= 500 else "bad_request")).inc()

        return counted
