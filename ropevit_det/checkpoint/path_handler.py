"""``birder://NAME``: published weights, downloaded once into a local cache and verified by sha256.

Registered with detectron2's ``PathManager``, so ``MODEL.WEIGHTS: birder://rope_vit_reg4_b14_capi-inat21``
works wherever detectron2 resolves a path, detectron2's own ``DetectionCheckpointer`` (``DefaultTrainer``,
``lazyconfig_train_net.py``) included: the name resolves to the *converted* detectron2 checkpoint, written once
beside the download and keyed by its sha256 (``NAME.SHA12.d2-with-classifier.pth``, or ``NAME.SHA12.d2.pth``
for a file without classifier, SHA12 the first 12 hex digits of the download's sha256), which the stock
checkpointer loads as is: nothing of detectron2 is patched. ``fetch_published`` gives the raw birder file. Where the
files land:

* ``$ROPEVIT_DET_CACHE`` (default ``~/.cache/ropevit_det``) / ``NAME.pt``;
* the transfer goes to a uniquely named ``*.partial`` file in that folder, renamed into place only after its
  sha256 matches the published one, so the cache never holds a partial or altered file;
* ``$ROPEVIT_DET_BASE_URL`` replaces the published download folder (a mirror, or a local test server).

The download is written here with ``urllib`` rather than reusing ``torch.hub.download_url_to_file`` or
iopath's ``download``, because both open the URL without a timeout: on a machine without network (or behind
a silent firewall) they can hang, where this must fail within seconds and say how to proceed by hand.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import IO, Any

import torch
from detectron2.utils.file_io import PathHandler, PathManager
from iopath.common.file_io import file_lock
from tqdm import tqdm

from .birder_format import read_birder_checkpoint
from .conversion import birder_to_d2_checkpoint
from .published import PublishedWeights, get_published

__all__ = [
    "BIRDER_PREFIX",
    "CACHE_ENV",
    "BASE_URL_ENV",
    "WeightsDownloadError",
    "cache_dir",
    "fetch_published",
    "converted_published",
    "BirderPathHandler",
    "register_birder_handler",
]

logger = logging.getLogger(__name__)

BIRDER_PREFIX = "birder://"
CACHE_ENV = "ROPEVIT_DET_CACHE"
BASE_URL_ENV = "ROPEVIT_DET_BASE_URL"
DEFAULT_CACHE_DIR = "~/.cache/ropevit_det"
# Applies to the connection and to every read: no byte for this long means the network is gone.
SOCKET_TIMEOUT_S = 10.0
_CHUNK_BYTES = 1 << 20


class WeightsDownloadError(RuntimeError):
    """A published checkpoint could not be fetched, or what arrived does not match its sha256."""


def cache_dir() -> Path:
    """The download cache: ``$ROPEVIT_DET_CACHE``, else ``~/.cache/ropevit_det`` (read at each call)."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE_DIR).expanduser()


def fetch_published(
    name: str,
    *,
    cache: str | os.PathLike | None = None,
    base_url: str | None = None,
    force: bool = False,
    timeout: float = SOCKET_TIMEOUT_S,
    progress: bool = True,
) -> Path:
    """Local path of published weights, downloading and verifying them on first use.

    Args:
        name: a name from ``PUBLISHED_WEIGHTS`` (e.g. ``rope_vit_reg4_b14_capi-inat21``).
        cache: cache folder; default :func:`cache_dir`.
        base_url: download folder; default ``$ROPEVIT_DET_BASE_URL``, else the published one.
        force: download again even when the cache has the file.
        timeout: seconds without progress (connecting or reading) before giving up.
        progress: show a progress bar (on a terminal).

    Raises:
        ValueError: unknown name.
        WeightsDownloadError: no network, HTTP error, interrupted transfer, or sha256 mismatch; the message
            names the URL and the manual route.
    """
    weights = get_published(name)
    folder = Path(cache).expanduser() if cache is not None else cache_dir()
    dst = folder / weights.file_name
    url = weights.url(base_url or os.environ.get(BASE_URL_ENV))
    if dst.is_file() and not force:
        _verify_cached(dst, weights, url)
        logger.info(f"{BIRDER_PREFIX}{name}: using cached {dst}")
        return dst
    # The lock makes several processes on one machine (DDP ranks) download once; file_lock creates the folder.
    with file_lock(str(dst)):
        if dst.is_file() and not force:
            return dst
        logger.info(f"{BIRDER_PREFIX}{name}: downloading {url} ({weights.size_mb} MB) to {dst}")
        _download_verified(url, dst, weights, timeout, progress)
    return dst


def converted_published(name: str, *, keep_classifier: bool | None = None, force: bool = False) -> Path:
    """The published checkpoint in detectron2's format, converted once and cached beside the raw download.

    Args:
        name: a name from ``PUBLISHED_WEIGHTS``.
        keep_classifier: keep birder's ``classifier.*`` (``None``: when the published file has one).
        force: download again (see :func:`fetch_published`).
    """
    if keep_classifier is None:
        keep_classifier = bool(get_published(name).classifier)
    raw = fetch_published(name, force=force)
    # Keyed by the verified download's sha256: a re-published file never meets a conversion of the old one.
    sha12 = get_published(name).sha256[:12]
    converted = raw.with_name(f"{raw.stem}.{sha12}" + (".d2-with-classifier.pth" if keep_classifier else ".d2.pth"))
    if converted.is_file() and not force:
        logger.info(f"{BIRDER_PREFIX}{name}: using the cached converted checkpoint {converted}")
        return converted
    with file_lock(str(converted)):
        if force or not converted.is_file():
            d2_checkpoint = birder_to_d2_checkpoint(read_birder_checkpoint(raw), keep_classifier=keep_classifier)
            # Written under a temporary name, then renamed: an interrupted save never leaves a cached file.
            tmp = converted.with_name(f"{converted.name}.{uuid.uuid4().hex}.partial")
            try:
                torch.save(d2_checkpoint, tmp)
                os.replace(tmp, converted)
            finally:
                tmp.unlink(missing_ok=True)
            logger.info(f"{BIRDER_PREFIX}{name}: converted to detectron2 format and cached as {converted}")
    return converted


def _sha256_marker(dst: Path) -> Path:
    return dst.with_name(dst.name + ".sha256")


def _verify_cached(dst: Path, weights: PublishedWeights, url: str) -> None:
    """A file in the cache is trusted only once its sha256 matched: files we downloaded carry a marker; a file
    copied there by hand (the manual route) is hashed on first use, and refused if it is not the published one."""
    marker = _sha256_marker(dst)
    if marker.is_file() and marker.read_text().strip() == weights.sha256:
        return
    digest = hashlib.sha256()
    with open(dst, "rb") as f:
        while chunk := f.read(_CHUNK_BYTES):
            digest.update(chunk)
    actual = digest.hexdigest()
    if actual != weights.sha256:
        raise WeightsDownloadError(
            f"the cached file {dst} is not the published {weights.name}: sha256 {actual}, expected "
            f"{weights.sha256}. Delete it and run again to download it, or {_manual_route(url, dst, weights)}"
        )
    marker.write_text(weights.sha256 + "\n")


def _manual_route(url: str, dst: Path, weights: PublishedWeights) -> str:
    return (
        f"Manual route: on a machine with network, download {url} (e.g. `curl -L -o {weights.file_name} {url}`; "
        f"its sha256 must be {weights.sha256}), copy it here, then either set MODEL.WEIGHTS to the file's path, "
        f"or put it at {dst} so that {BIRDER_PREFIX}{weights.name} finds it in the cache."
    )


def _download_verified(url: str, dst: Path, weights: PublishedWeights, timeout: float, progress: bool) -> None:
    """Stream ``url`` into a temp file next to ``dst``, hashing on the way; rename only on a sha256 match."""
    tmp = dst.with_name(f"{dst.name}.{uuid.uuid4().hex}.partial")
    request = urllib.request.Request(url, headers={"User-Agent": "ropevit_det"})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        raise WeightsDownloadError(
            f"download of {url} failed: HTTP {e.code} {e.reason}. {_manual_route(url, dst, weights)}"
        ) from e
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", e)
        raise WeightsDownloadError(
            f"cannot reach {url} ({reason}); no network access? {_manual_route(url, dst, weights)}"
        ) from e

    received, expected_bytes = 0, None
    digest = hashlib.sha256()
    try:
        with response, open(tmp, "wb") as f:
            expected_bytes = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(
                total=expected_bytes,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=weights.file_name,
                disable=None if progress else True,  # None: shown on a terminal, silent in log files
            ) as bar:
                while chunk := response.read(_CHUNK_BYTES):
                    f.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        if expected_bytes is not None and received != expected_bytes:
            raise http.client.IncompleteRead(b"", expected_bytes - received)
    except (OSError, http.client.HTTPException) as e:
        tmp.unlink(missing_ok=True)
        of_total = f" of {expected_bytes}" if expected_bytes else ""
        raise WeightsDownloadError(
            f"download of {url} was interrupted after {received}{of_total} bytes ({type(e).__name__}: {e}); the "
            f"partial file was deleted. Run again to retry. {_manual_route(url, dst, weights)}"
        ) from e
    except BaseException:
        tmp.unlink(missing_ok=True)  # Ctrl-C and the like: never leave partial files behind
        raise

    actual = digest.hexdigest()
    if actual != weights.sha256:
        tmp.unlink(missing_ok=True)
        raise WeightsDownloadError(
            f"sha256 mismatch for {url}: expected {weights.sha256}, got {actual} ({received} bytes). The "
            f"downloaded file was deleted, nothing was cached. Retry; if it persists, the served file is not the "
            f"published one. {_manual_route(url, dst, weights)}"
        )
    os.replace(tmp, dst)  # atomic on one filesystem: readers see no file or the whole verified file
    _sha256_marker(dst).write_text(actual + "\n")
    logger.info(f"{BIRDER_PREFIX}{weights.name}: verified sha256 and cached {dst}")


class BirderPathHandler(PathHandler):
    """iopath handler for ``birder://NAME`` (published weights, see :mod:`ropevit_det.checkpoint.published`):
    the local path is the converted detectron2 checkpoint (:func:`converted_published`)."""

    def _get_supported_prefixes(self) -> list[str]:
        return [BIRDER_PREFIX]

    def _get_local_path(self, path: str, force: bool = False, **kwargs: Any) -> str:
        self._check_kwargs(kwargs)
        return str(converted_published(path[len(BIRDER_PREFIX) :], force=force))

    def _open(self, path: str, mode: str = "r", buffering: int = -1, **kwargs: Any) -> IO[Any]:
        self._check_kwargs(kwargs)
        if mode not in ("r", "rb"):
            raise ValueError(f"{path} is read-only; cannot open it with mode {mode!r}")
        return open(self._get_local_path(path), mode, buffering)

    def _exists(self, path: str, **kwargs: Any) -> bool:
        # A known name "exists" (it can be fetched); checking it must not start a download.
        self._check_kwargs(kwargs)
        try:
            get_published(path[len(BIRDER_PREFIX) :])
        except ValueError:
            return False
        return True

    def _isfile(self, path: str, **kwargs: Any) -> bool:
        return self._exists(path, **kwargs)


def register_birder_handler() -> None:
    """Make detectron2's ``PathManager`` resolve ``birder://`` (idempotent)."""
    PathManager.register_handler(BirderPathHandler(), allow_override=True)
