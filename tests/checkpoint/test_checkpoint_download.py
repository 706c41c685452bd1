"""``birder://NAME`` against a local HTTP server on 127.0.0.1 serving a random-weight birder checkpoint:
good file, wrong sha256, truncated transfer, cache hits, and a dead or silent network failing fast."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.data import DatasetCatalog
from detectron2.engine import DefaultTrainer
from detectron2.utils.file_io import PathManager

from ropevit_det.checkpoint import (
    PUBLISHED_WEIGHTS,
    RoPEViTCheckpointer,
    WeightsDownloadError,
    fetch_published,
)
from ropevit_det.checkpoint.path_handler import BASE_URL_ENV, CACHE_ENV, cache_dir
from ropevit_det.data import register_coco_dataset
from tests.checkpoint_helpers import (
    TINY_SIZE,
    build_d2_model,
    make_birder_net,
    neck_parity,
    save_birder_pt,
    save_birder_safetensors,
    tiny_cfg,
)
from tests.conftest import CAMTRAP_MINI, REPO

NAME = "rope_vit_reg4_b14_capi-inat21"


class _Server:
    """A tiny file server: ``files`` by URL path; ``truncate`` sends half the body under the full Content-Length."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.truncate = False
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                server.requests.append(self.path)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if server.truncate else body)
                self.close_connection = True

            def log_message(self, *args) -> None:  # keep test output quiet
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def birder_net():
    return make_birder_net()


@pytest.fixture(scope="module")
def served_bytes(birder_net, tmp_path_factory):
    return save_birder_pt(birder_net, tmp_path_factory.mktemp("served")).read_bytes()


@pytest.fixture
def server(served_bytes, monkeypatch, tmp_path):
    srv = _Server()
    srv.files[f"/{NAME}.pt"] = served_bytes
    monkeypatch.setenv(BASE_URL_ENV, srv.url)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    yield srv
    srv.close()


@pytest.fixture
def table_matches_served_file(served_bytes, monkeypatch):
    """Point the registry's sha256 at the served random-weight file (the real one is 358 MB away)."""
    entry = dataclasses.replace(PUBLISHED_WEIGHTS[NAME], sha256=hashlib.sha256(served_bytes).hexdigest())
    monkeypatch.setitem(PUBLISHED_WEIGHTS, NAME, entry)


def _cache_files(tmp_path):
    folder = tmp_path / "cache"
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock")) if folder.exists() else []


def test_download_verifies_and_second_use_hits_the_cache(server, table_matches_served_file, served_bytes, tmp_path):
    local = fetch_published(NAME)
    assert local == tmp_path / "cache" / f"{NAME}.pt"
    assert local.read_bytes() == served_bytes
    assert server.requests == [f"/{NAME}.pt"]
    assert fetch_published(NAME) == local
    assert server.requests == [f"/{NAME}.pt"]  # not fetched again
    assert _cache_files(tmp_path) == [f"{NAME}.pt", f"{NAME}.pt.sha256"]  # no partial files left


def test_path_manager_resolves_the_name_to_the_converted_detectron2_file(server, table_matches_served_file, tmp_path):
    """What detectron2's own tools get: a detectron2 checkpoint (classifier kept, as the published file has one)."""
    local = PathManager.get_local_path(f"birder://{NAME}")
    sha12 = PUBLISHED_WEIGHTS[NAME].sha256[:12]  # the served file's sha256 (table_matches_served_file)
    assert local == str(tmp_path / "cache" / f"{NAME}.{sha12}.d2-with-classifier.pth")
    converted = torch.load(local, weights_only=True)
    assert converted["__author__"] == "ropevit_det" and not converted["matching_heuristics"]
    assert "backbone.net.vit.classifier.weight" in converted["model"]
    assert PathManager.get_local_path(f"birder://{NAME}") == local and server.requests == [f"/{NAME}.pt"]


def test_stock_default_trainer_loads_birder_name_exactly(server, table_matches_served_file, birder_net, tmp_path):
    """detectron2's DefaultTrainer (not ours), from our config, with MODEL.WEIGHTS birder://NAME."""
    if "stock_camtrap" not in DatasetCatalog.list():
        register_coco_dataset("stock_camtrap", CAMTRAP_MINI / "annotations.json", CAMTRAP_MINI / "images")
    cfg = tiny_cfg()
    cfg.merge_from_list(
        [
            "MODEL.WEIGHTS",
            f"birder://{NAME}",
            "MODEL.MASK_ON",
            False,
            "OUTPUT_DIR",
            str(tmp_path / "out"),
            "DATASETS.TRAIN",
            ("stock_camtrap",),
            "DATALOADER.NUM_WORKERS",
            0,
            "SOLVER.IMS_PER_BATCH",
            2,
        ]
    )
    trainer = DefaultTrainer(cfg)
    assert type(trainer.checkpointer) is DetectionCheckpointer
    assert neck_parity(trainer.model, birder_net, TINY_SIZE) > 1e-2
    trainer.resume_or_load(resume=False)
    assert neck_parity(trainer.model, birder_net, TINY_SIZE) < 1e-5
    vit_state = trainer.model.backbone.net.vit.state_dict()
    for key, value in birder_net.state_dict().items():
        if not key.startswith("classifier."):
            assert torch.equal(vit_state[key], value), key


def test_importing_the_package_patches_nothing_of_detectron2():
    """Registering the birder:// handler is all the import does: detectron2's loader stays its own function."""
    code = (
        "import inspect, ropevit_det, ropevit_det.checkpoint\n"
        "from detectron2.checkpoint import DetectionCheckpointer as D\n"
        "from detectron2.checkpoint import detection_checkpoint as stock\n"
        "assert D.__dict__['_load_file'].__module__ == stock.__name__, D._load_file.__module__\n"
        "assert inspect.getsourcefile(D._load_file) == stock.__file__\n"
        "assert D.__dict__['_load_file'].__qualname__ == 'DetectionCheckpointer._load_file'\n"
        "from detectron2.utils.file_io import PathManager\n"
        "assert any(isinstance(h, ropevit_det.checkpoint.BirderPathHandler)\n"
        "           for h in PathManager._path_handlers.values())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("save", [save_birder_pt, save_birder_safetensors], ids=["pt", "safetensors"])
def test_raw_birder_file_needs_our_checkpointer_or_a_conversion(save, birder_net, tmp_path):
    """Without a patch, detectron2's own checkpointer cannot use a raw birder file: it fails (.pt) or finds no
    tensor of its names and warns (.safetensors), and the model keeps its weights; ours converts it in memory."""
    model = build_d2_model(tiny_cfg())
    raw = save(birder_net, tmp_path)
    try:
        DetectionCheckpointer(model).load(str(raw))
    except Exception:  # noqa: BLE001 (fvcore's own error on the .pt layout; either outcome leaves the model)
        pass
    assert neck_parity(model, birder_net, TINY_SIZE) > 1e-2
    RoPEViTCheckpointer(model).load(str(raw))  # ours converts it
    assert neck_parity(model, birder_net, TINY_SIZE) < 1e-5


def test_hand_copied_cache_file_is_verified_before_use(server, table_matches_served_file, served_bytes, tmp_path):
    """The manual route puts a file in the cache: it is hashed on first use, and a wrong file is refused."""
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / f"{NAME}.pt").write_bytes(served_bytes[:-10] + b"0123456789")
    with pytest.raises(WeightsDownloadError, match=r"is not the published .*Delete it"):
        fetch_published(NAME)
    (cache / f"{NAME}.pt").write_bytes(served_bytes)
    assert fetch_published(NAME) == cache / f"{NAME}.pt"
    assert server.requests == []  # verified locally, nothing downloaded
    assert (cache / f"{NAME}.pt.sha256").read_text().strip() == hashlib.sha256(served_bytes).hexdigest()


def test_wrong_sha256_deletes_the_download_and_says_so(server, tmp_path):
    # The table keeps the real published sha256, which the served random file cannot match.
    with pytest.raises(WeightsDownloadError) as info:
        fetch_published(NAME)
    message = str(info.value)
    assert "sha256 mismatch" in message and PUBLISHED_WEIGHTS[NAME].sha256 in message
    assert "deleted" in message and "Manual route" in message
    assert _cache_files(tmp_path) == []


def test_truncated_transfer_is_reported_and_leaves_nothing_behind(server, table_matches_served_file, tmp_path):
    server.truncate = True
    with pytest.raises(WeightsDownloadError, match=r"interrupted after \d+ of \d+ bytes.*partial file was deleted"):
        fetch_published(NAME)
    assert _cache_files(tmp_path) == []
    server.truncate = False  # a retry then succeeds
    assert fetch_published(NAME).is_file()


def test_missing_file_on_the_server_names_the_status(server, table_matches_served_file):
    server.files.clear()
    with pytest.raises(WeightsDownloadError, match=rf"{server.url}/{NAME}\.pt failed: HTTP 404"):
        fetch_published(NAME)


def test_unreachable_host_fails_fast_with_the_manual_route(monkeypatch, tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv(BASE_URL_ENV, f"http://127.0.0.1:{port}")
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    start = time.monotonic()
    with pytest.raises(WeightsDownloadError) as info:
        PathManager.get_local_path(f"birder://{NAME}")
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert f"http://127.0.0.1:{port}/{NAME}.pt" in message
    assert "Manual route" in message and "MODEL.WEIGHTS" in message
    assert str(tmp_path / "cache" / f"{NAME}.pt") in message  # where to put a hand-downloaded file


def test_silent_server_times_out_instead_of_hanging(monkeypatch, tmp_path):
    with socket.socket() as listener:  # accepts connections (kernel backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        base = f"http://127.0.0.1:{listener.getsockname()[1]}"
        start = time.monotonic()
        with pytest.raises(WeightsDownloadError, match="Manual route"):
            fetch_published(NAME, base_url=base, cache=tmp_path / "cache", timeout=1.0)
        assert time.monotonic() - start < 5


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown published weights 'nope'.*rope_vit_reg4_b14_capi-inat21-224px"):
        PathManager.get_local_path("birder://nope")


def test_cache_location_defaults_to_home(monkeypatch, tmp_path):
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir() == tmp_path / ".cache" / "ropevit_det"
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "elsewhere"))
    assert cache_dir() == tmp_path / "elsewhere"


def test_model_weights_birder_name_loads_and_caches_the_converted_form(
    server, table_matches_served_file, birder_net, tmp_path, caplog
):
    model = build_d2_model(tiny_cfg())
    RoPEViTCheckpointer(model).load(f"birder://{NAME}")
    assert neck_parity(model, birder_net, TINY_SIZE) < 1e-5
    converted = tmp_path / "cache" / f"{NAME}.{PUBLISHED_WEIGHTS[NAME].sha256[:12]}.d2.pth"
    assert converted.is_file()
    stamp = converted.stat().st_mtime_ns

    again = build_d2_model(tiny_cfg())
    with caplog.at_level(logging.INFO, logger="ropevit_det.checkpoint"):
        RoPEViTCheckpointer(again).load(f"birder://{NAME}")
    assert neck_parity(again, birder_net, TINY_SIZE) < 1e-5
    assert server.requests == [f"/{NAME}.pt"]  # downloaded once
    assert converted.stat().st_mtime_ns == stamp  # converted once
    assert any("using the cached converted checkpoint" in m for m in caplog.messages)
