"""The server's batching queue on its own: admission bounds, batches, cancelled items, failures, the drain."""

from __future__ import annotations

import threading
import time

import pytest

from ropevit_det.serve.batching import BatchQueue, QueueClosed


def _queue(run, **kwargs) -> BatchQueue:
    options = {"max_batch": 4, "max_wait_s": 0.2, "max_queue": 6, **kwargs}
    queue = BatchQueue(run, **options)
    queue.start()
    return queue


def test_admission_is_all_or_nothing_and_bounded():
    queue = _queue(lambda items: items)
    assert queue.admit(4) and not queue.admit(3) and queue.admit(2)  # 4 + 3 > 6 refused whole; 4 + 2 fits
    assert queue.depth == 6
    queue.release(6)
    assert queue.depth == 0 and queue.admit(6)
    queue.release(6)
    queue.close(timeout=5)
    assert not queue.admit(1)  # closed: no admissions


def test_concurrent_items_share_a_batch_and_get_their_own_results():
    sizes = []
    queue = _queue(lambda items: (sizes.append(len(items)), [x * 10 for x in items])[1])
    assert queue.admit(3)
    futures = [queue.submit(x) for x in (1, 2, 3)]
    assert [f.result(timeout=5) for f in futures] == [10, 20, 30]
    assert sizes == [3]  # one call: the first item waited for the others
    queue.close(timeout=5)


def test_cancelled_items_are_not_run_and_a_failed_batch_does_not_stop_the_worker():
    seen = []

    def run(items):
        seen.extend(items)
        if "boom" in items:
            raise RuntimeError("model failed")
        return items

    queue = _queue(run, max_wait_s=0.3)
    assert queue.admit(2)
    dropped, kept = queue.submit("dropped"), queue.submit("kept")
    assert dropped.cancel()  # a timed-out request cancels its futures before the batch runs
    assert kept.result(timeout=5) == "kept" and "dropped" not in seen
    assert queue.admit(1)
    with pytest.raises(RuntimeError, match="model failed"):
        queue.submit("boom").result(timeout=5)
    assert queue.admit(1) and queue.submit("after").result(timeout=5) == "after"
    queue.close(timeout=5)


def test_close_finishes_what_is_queued_then_refuses():
    release = threading.Event()

    def slow(items):
        release.wait(5)
        return items

    queue = _queue(slow, max_batch=1, max_wait_s=0.0)
    assert queue.admit(3)
    futures = [queue.submit(i) for i in range(3)]
    closer = threading.Thread(target=queue.close, kwargs={"timeout": 10})
    closer.start()
    time.sleep(0.1)
    release.set()
    closer.join(timeout=10)
    assert [f.result(timeout=1) for f in futures] == [0, 1, 2]  # every queued item ran before the worker stopped
    assert not queue.admit(1)
    with pytest.raises(QueueClosed):
        queue.submit(9)
