"""The routes: ``POST /v1/detect``, ``GET /healthz``, ``GET /readyz``, ``GET /metrics``; FastAPI writes the schema.

Clients send bytes, never a URL or a server path: nothing a client names is fetched or opened.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial
from typing import Annotated, Any

from fastapi import FastAPI, File, HTTPException, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field

from .auth import BearerAuth
from .batching import BatchQueue, QueueClosed
from .limits import BodySizeLimit, RequestTimeout, ServeLimits
from .metrics import ServeMetrics
from .pipeline import DetectionPipeline
from .uploads import UploadRejected, prepare_upload, safe_file_name

__all__ = ["create_app"]

logger = logging.getLogger(__name__)
_RETRY_AFTER_S = "1"  # a full queue empties within a few batches


class DetectResponse(BaseModel):
    """MegaDetector-format entries, one per uploaded image, in upload order."""

    images: list[dict[str, Any]] = Field(description="MD image entries: file, detections (and datetime)")
    detection_categories: dict[str, str]
    classification_categories: dict[str, str] | None = None


class Status(BaseModel):
    status: str


_ERRORS = {
    401: {"description": "missing or wrong bearer token (with --token-file)"},
    413: {"description": "upload over --max-upload-mb, or an image over --max-pixels"},
    422: {"description": "no image field, or an upload that is empty, corrupt, truncated or not an image"},
    503: {"description": "queue full (see Retry-After) or shutting down"},
    504: {"description": "not answered within --request-timeout-s"},
}


def create_app(
    pipeline: DetectionPipeline, *, limits: ServeLimits, token: str | None = None, metrics: ServeMetrics | None = None
) -> FastAPI:
    """The service around a loaded ``pipeline``; the batching worker runs while the app's lifespan lasts."""
    metrics = metrics or ServeMetrics(max_batch=limits.max_batch)

    def on_batch(size: int, seconds: float) -> None:
        metrics.batch_size.observe(size)
        metrics.batch_seconds.observe(seconds)
        metrics.images.inc(size)

    # A pool of its own, not the framework's 40 threads: decoding is CPU-bound, and each extra thread that
    # ever decoded keeps a malloc arena of its own, so resident memory would climb with the thread count.
    decoder = ThreadPoolExecutor(max_workers=limits.decode_threads, thread_name_prefix="ropevit-serve-decode")
    queue = BatchQueue(
        pipeline,
        max_batch=limits.max_batch,
        max_wait_s=limits.max_wait_ms / 1000,
        max_queue=limits.max_queue,
        on_batch=on_batch,
    )
    metrics.queue_depth.set_function(lambda: queue.depth)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        queue.start()
        yield
        # uvicorn has stopped accepting and answered every open request: what is left is finished, then stop.
        await run_in_threadpool(queue.close, limits.request_timeout_s)
        decoder.shutdown()

    # No /docs or /redoc: their pages load scripts from a CDN. The schema is at /openapi.json.
    app = FastAPI(
        title="ropevit-det detection service",
        version="1",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        description="MegaDetector-format detections for uploaded camera-trap images.",
    )
    app.state.queue = queue
    app.state.draining = False  # set by the server on SIGTERM: readyz turns 503 so balancers move away
    app.state.metrics = metrics

    @app.post("/v1/detect", response_model=DetectResponse, responses=_ERRORS)
    async def detect(image: Annotated[list[UploadFile], File(description="one or more image files")]) -> JSONResponse:
        """Detect in each uploaded image; entries as ``ropevit-det infer`` writes them, ``file`` = upload name."""
        count = len(image)
        if count > limits.max_queue:
            raise HTTPException(413, f"{count} images in one request; the server queues at most {limits.max_queue}")
        if not queue.admit(count):
            detail = "shutting down" if queue.closed else f"the queue is full ({limits.max_queue} images)"
            raise HTTPException(503, detail, headers={"Retry-After": _RETRY_AFTER_S})
        futures = []
        try:
            frames = []
            for index, upload in enumerate(image):
                data = await upload.read()
                name = safe_file_name(upload.filename, index)
                decode = partial(
                    prepare_upload,
                    data,
                    name,
                    pipeline.spec,
                    max_pixels=limits.max_pixels,
                    keep_image=pipeline.classifies,
                )
                frames.append(await asyncio.get_running_loop().run_in_executor(decoder, decode))
            for frame in frames:
                futures.append(asyncio.wrap_future(queue.submit(frame)))
        except UploadRejected as exc:
            raise HTTPException(exc.status, str(exc)) from None
        except QueueClosed as exc:
            raise HTTPException(503, str(exc), headers={"Retry-After": _RETRY_AFTER_S}) from None
        finally:
            queue.release(count - len(futures))
        try:
            entries = await asyncio.gather(*futures)
        except asyncio.CancelledError:
            for future in futures:
                future.cancel()
            raise
        except Exception as exc:  # noqa: BLE001  (the model failed on this batch; the worker goes on)
            raise HTTPException(500, f"inference failed: {type(exc).__name__}: {exc}") from None
        return JSONResponse({"images": entries, **pipeline.categories})

    @app.get("/healthz", response_model=Status)
    async def healthz() -> dict[str, str]:
        """The process answers."""
        return {"status": "ok"}

    @app.get("/readyz", response_model=Status, responses={503: {"model": Status, "description": "draining"}})
    async def readyz() -> Any:
        """The model is loaded and the server takes requests (503 while it shuts down)."""
        if queue.closed or app.state.draining:
            return JSONResponse({"status": "draining"}, status_code=503)
        return {"status": "ready"}

    @app.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
    async def prometheus_metrics() -> Response:
        """Requests, latency, batch sizes, queue depth and failures in Prometheus' text format."""
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    # Outermost last: metrics see every answer (401s and 413s included); auth runs before any body is read.
    app.add_middleware(RequestTimeout, seconds=limits.request_timeout_s)
    app.add_middleware(BodySizeLimit, max_bytes=limits.max_upload_bytes)
    if token is not None:
        app.add_middleware(BearerAuth, token=token)
    app.add_middleware(_Counted, metrics=metrics)
    return app


class _Counted:
    """``ServeMetrics.middleware`` in the shape ``add_middleware`` takes."""

    def __init__(self, app, *, metrics: ServeMetrics) -> None:
        self.call = metrics.middleware(app)

    async def __call__(self, scope, receive, send) -> None:
        await self.call(scope, receive, send)
