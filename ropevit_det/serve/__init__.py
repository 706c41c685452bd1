"""``ropevit-det serve``: the detector as an HTTP service (FastAPI + uvicorn), batched, bounded, authenticated.

One module per question: :mod:`.uploads` (an upload to a detector input, or a 4xx with the reason),
:mod:`.pipeline` (a batch of frames to MegaDetector-format entries, through the code ``infer`` uses),
:mod:`.batching` (concurrent requests into model batches, on one worker thread), :mod:`.limits` (the limits and
the ASGI guards for body size and time), :mod:`.auth` (the bearer token), :mod:`.metrics` (Prometheus),
:mod:`.app` (the routes) and :mod:`.server` (uvicorn, with a SIGTERM that drains and exits 0).
"""
