"""Concurrent requests into model batches: a bounded queue of images and one worker thread that runs the model.

A request first *admits* its images (all or none: a full queue answers 503 before anything is decoded, so
decoded images in memory never exceed ``max_queue``), then submits each decoded frame and awaits its future.
The worker takes the oldest image, waits up to ``max_wait_s`` for more (or until ``max_batch``), and runs them
as one batch. One thread owns the model, on the CPU as on a GPU: batches, not threads, give the throughput.
Closing stops admissions and lets the worker finish every image already submitted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

__all__ = ["BatchQueue", "QueueClosed"]

logger = logging.getLogger(__name__)


class QueueClosed(RuntimeError):
    """The queue is draining: it takes no new images."""


class BatchQueue:
    """Bounded dynamic batching over one worker thread.

    Args:
        run_batch: called on the worker thread with a list of items; returns one result per item.
        max_batch: items per call.
        max_wait_s: how long the first item of a batch waits for more.
        max_queue: items admitted and not yet taken into a batch.
        on_batch: called with ``(size, seconds)`` after each batch (metrics).
    """

    def __init__(
        self,
        run_batch: Callable[[list[Any]], list[Any]],
        *,
        max_batch: int,
        max_wait_s: float,
        max_queue: int,
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        self.run_batch = run_batch
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self.on_batch = on_batch
        self._items: deque[tuple[float, Any, Future]] = deque()
        self._admitted = 0  # admitted and not yet taken by the worker (queued, or still being decoded)
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._work, name="ropevit-serve-batcher", daemon=True)

    @property
    def depth(self) -> int:
        """Images admitted and not yet in a model call."""
        return self._admitted

    @property
    def closed(self) -> bool:
        return self._closed

    def start(self) -> None:
        self._thread.start()

    def admit(self, count: int) -> bool:
        """Reserve room for ``count`` items; False when the queue is full or closed (the caller answers 503)."""
        with self._cond:
            if self._closed or self._admitted + count > self.max_queue:
                return False
            self._admitted += count
            return True

    def release(self, count: int) -> None:
        """Give back admitted room that will not be submitted (a rejected upload)."""
        with self._cond:
            self._admitted -= count

    def submit(self, item: Any) -> Future:
        """Queue one admitted item; its future gets the item's result (or the batch's exception).

        Raises:
            QueueClosed: the worker has stopped; the caller releases the item's admission.
        """
        future: Future = Future()
        with self._cond:
            if self._closed and not self._thread.is_alive():
                raise QueueClosed("the server is shutting down")
            self._items.append((time.monotonic(), item, future))
            self._cond.notify()
        return future

    def close(self, timeout: float | None = None) -> None:
        """Take no more admissions, finish every submitted item, stop the worker."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _next_batch(self) -> list[tuple[float, Any, Future]] | None:
        with self._cond:
            while not self._items:
                if self._closed and self._admitted == 0:
                    return None
                self._cond.wait(0.1 if self._closed else None)
            deadline = self._items[0][0] + self.max_wait_s
            while len(self._items) < self.max_batch and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            batch = [self._items.popleft() for _ in range(min(self.max_batch, len(self._items)))]
            self._admitted -= len(batch)
            return batch

    def _work(self) -> None:
        while (batch := self._next_batch()) is not None:
            # A request that timed out or went away cancelled its futures: its images are not run.
            live = [(item, future) for _, item, future in batch if future.set_running_or_notify_cancel()]
            if not live:
                continue
            start = time.perf_counter()
            try:
                results = self.run_batch([item for item, _ in live])
            # The worker must outlive any failure of one batch (a model error on odd input): the batch's
            # requests get the error, the next batch runs.
            except Exception as exc:  # noqa: BLE001
                logger.exception("a batch of %d images failed", len(live))
                for _, future in live:
                    future.set_exception(exc)
                continue
            if self.on_batch is not None:
                self.on_batch(len(live), time.perf_counter() - start)
            for (_, future), result in zip(live, results):
                future.set_result(result)
