"""``ropevit-det serve`` as a real process on a loopback port, with a tiny model (birder's 2-block ViT, random).

Two servers per module: an open one (entries against ``infer``, batching, bad uploads, the schemathesis fuzz)
and one with a bearer token and a tiny queue whose batches wait 1.5 s, so that a request can be held in the
queue while the test fills it (503) or sends SIGTERM (the drain).
"""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
from PIL import Image

from ropevit_det.serve.uploads import safe_file_name
from tests.camtrap_helpers import MINI_IMAGES, save_exif_rotated_jpeg
from tests.checkpoint_helpers import make_birder_net, save_birder_pt
from tests.conftest import CONFIGS
from tests.infer_helpers import run_infer
from tests.serve_helpers import ServerProcess, metric_samples, wait_for_queue_depth

QUICK = CONFIGS / "quick_schedules" / "ropevit_faster_rcnn_instant_test.yaml"
# As in test_camtrap_infer.py: one class "animal", 3 detections per image, no 1024 square padding.
OVERRIDES = ["MODEL.ROI_HEADS.NUM_CLASSES", "1", "TEST.DETECTIONS_PER_IMAGE", "3", "MODEL.SFP.SQUARE_PAD", "0"]
FRAMES = sorted(MINI_IMAGES.iterdir())[:3]
TOKEN = "s3cret-t0ken"
MAX_PIXELS = 4_000_000
MAX_UPLOAD_MB = 2


@pytest.fixture(scope="module")
def model_flags(tmp_path_factory) -> list[str]:
    weights = save_birder_pt(make_birder_net(), tmp_path_factory.mktemp("weights"))
    return [
        "--config",
        str(QUICK),
        "--weights",
        str(weights),
        "--threshold",
        "0",
        "--typical-threshold",
        "0",
        "--class-names",
        "animal",
        "--classify",
        "--top-k",
        "2",
    ]


@pytest.fixture(scope="module")
def card(tmp_path_factory) -> Path:
    """Three sample frames and an EXIF-rotated JPEG (with a capture time), as a folder for infer."""
    root = tmp_path_factory.mktemp("card")
    for frame in FRAMES:
        (root / frame.name).symlink_to(frame)
    rotated = Image.open(save_exif_rotated_jpeg(root / "made.jpg", stored_w=120, stored_h=60, orientation=6))
    exif = rotated.getexif()
    exif.get_ifd(0x8769)[0x9003] = "2024:06:01 12:34:56"  # DateTimeOriginal, in the EXIF sub-directory
    rotated.save(root / "rotated.jpg", exif=exif, quality=95)
    (root / "made.jpg").unlink()
    return root


@pytest.fixture(scope="module")
def infer_entries(tmp_path_factory, model_flags, card) -> dict[str, dict]:
    output = tmp_path_factory.mktemp("infer") / "results.json"
    done = run_infer(
        *model_flags,
        "--input",
        str(card),
        "--output",
        str(output),
        "--batch-size",
        "1",
        "--num-workers",
        "0",
        "--no-progress",
        *OVERRIDES,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return {entry["file"]: entry for entry in json.loads(output.read_text())["images"]}


@pytest.fixture(scope="module")
def server(tmp_path_factory, model_flags):
    proc = ServerProcess(
        [
            *model_flags,
            "--max-batch",
            "4",
            "--max-wait-ms",
            "300",
            "--max-queue",
            "8",
            "--max-pixels",
            str(MAX_PIXELS),
            "--max-upload-mb",
            str(MAX_UPLOAD_MB),
        ],
        OVERRIDES,
        tmp_path_factory.mktemp("server") / "server.log",
    ).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def token_server(tmp_path_factory, model_flags):
    folder = tmp_path_factory.mktemp("token_server")
    (folder / "token").write_text(TOKEN + "\n")
    proc = ServerProcess(
        [
            *model_flags,
            "--token-file",
            str(folder / "token"),
            "--max-batch",
            "4",
            "--max-wait-ms",
            "1500",
            "--max-queue",
            "2",
        ],
        OVERRIDES,
        folder / "server.log",
    ).start()
    yield proc
    proc.stop()


def _post(
    url: str, files: list[tuple[str, bytes]], headers: dict[str, str] | None = None, timeout: float = 60
) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/detect", files=[("image", (name, data)) for name, data in files], headers=headers, timeout=timeout
    )


def _jpeg_bytes(path: Path) -> bytes:
    return path.read_bytes()


def _good(url: str, headers: dict[str, str] | None = None) -> httpx.Response:
    response = _post(url, [(FRAMES[0].name, _jpeg_bytes(FRAMES[0]))], headers)
    assert response.status_code == 200, response.text
    return response


def test_entries_equal_infer(server, card, infer_entries):
    for path in [*FRAMES, card / "rotated.jpg"]:
        response = _post(server.url, [(path.name, path.read_bytes())])
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["images"] == [infer_entries[path.name]]  # detections, species, datetime: all the same
        assert body["detection_categories"] == {"1": "animal"} and len(body["classification_categories"]) == 3
    assert infer_entries["rotated.jpg"]["datetime"] == "2024:06:01 12:34:56"  # EXIF capture time, both paths


def test_several_images_in_one_request_and_file_names_are_sanitised(server):
    data = _jpeg_bytes(FRAMES[1])
    names = ["../../etc/passwd.jpg", "C:\\cards\\IMG_1.JPG", "cards/..", "plain.jpg"]
    response = _post(server.url, [(name, data) for name in names])
    assert response.status_code == 200, response.text
    files = [entry["file"] for entry in response.json()["images"]]
    assert files == ["passwd.jpg", "IMG_1.JPG", "image_2", "plain.jpg"]


def test_safe_file_name_keeps_a_printable_last_component():
    assert safe_file_name("a/b\\c\x00d\x1b.jpg\n", 0) == "cd.jpg"
    assert safe_file_name(None, 3) == "image_3" and safe_file_name(" ", 1) == "image_1"
    assert len(safe_file_name("x" * 1000, 0)) == 255


def test_concurrent_clients_are_batched(server):
    before = metric_samples(server.url)
    statuses: list[int] = []

    def client(path: Path) -> None:
        statuses.append(_post(server.url, [(path.name, path.read_bytes())]).status_code)

    threads = [threading.Thread(target=client, args=(FRAMES[i % len(FRAMES)],)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert statuses == [200] * 6
    after = metric_samples(server.url)
    batches = after["ropevit_serve_batch_size_count{}"] - before.get("ropevit_serve_batch_size_count{}", 0)
    images = after["ropevit_serve_batch_size_sum{}"] - before.get("ropevit_serve_batch_size_sum{}", 0)
    assert images == 6 and batches < 6  # at least one model call took more than one image
    assert after["ropevit_serve_requests_total{route=/v1/detect,status=200}"] >= 6


def _chunked_upload(size: int):
    """A multipart body of ``size`` bytes of image data without Content-Length (chunked transfer encoding)."""
    yield b'--b0\r\nContent-Disposition: form-data; name="image"; filename="big.jpg"\r\n\r\n'
    for _ in range(0, size, 65536):
        yield b"\xff" * 65536
    yield b"\r\n--b0--\r\n"


def _bad_uploads() -> dict[str, tuple[dict, int, str]]:
    """name -> (httpx keyword arguments, expected status, a word the reason must contain)."""
    jpeg = FRAMES[0].read_bytes()
    big = io.BytesIO()
    Image.new("L", (2500, 2000)).save(big, format="PNG")  # 5 MP in a few kB: over the 4 MP limit
    files = lambda name, data: {"files": [("image", (name, data))]}  # noqa: E731
    return {
        "text file": (files("notes.jpg", b"camera 3 battery low"), 422, "not an image"),
        "truncated JPEG": (files("cut.jpg", jpeg[: len(jpeg) // 2]), 422, "truncated"),
        "corrupt JPEG": (files("corrupt.jpg", b"\xff\xd8\xff\xe0 not really a jpeg" * 20), 422, "corrupt.jpg"),
        "empty file": (files("empty.jpg", b""), 422, "empty"),
        "too many pixels": (files("huge.png", big.getvalue()), 413, "pixels"),
        "over the upload limit": (files("big.jpg", b"\xff" * (MAX_UPLOAD_MB * 1024 * 1024 + 1)), 413, "limit"),
        "chunked body over the upload limit": (
            {
                "content": _chunked_upload(MAX_UPLOAD_MB * 1024 * 1024 + 1),
                "headers": {"content-type": "multipart/form-data; boundary=b0"},
            },
            413,
            "limit",
        ),
        "more images than the queue": ({"files": [("image", (f"{i}.jpg", jpeg)) for i in range(9)]}, 413, "queue"),
        "no image field": ({"files": [("picture", ("a.jpg", jpeg))]}, 422, ""),
        "not multipart": ({"json": {"image": "http://example.org/a.jpg"}}, 422, ""),
    }


@pytest.mark.parametrize("case", list(_bad_uploads()))
def test_bad_upload_is_a_4xx_with_the_reason_and_the_server_keeps_serving(server, case):
    kwargs, status, reason = _bad_uploads()[case]
    response = httpx.post(f"{server.url}/v1/detect", timeout=60, **kwargs)
    assert response.status_code == status, response.text
    assert reason in json.dumps(response.json()["detail"])
    _good(server.url)
    assert server.proc.poll() is None


def test_schemathesis_finds_no_server_error(server, tmp_path):
    st = Path(sys.executable).with_name("schemathesis")
    done = subprocess.run(
        [
            str(st),
            "run",
            f"{server.url}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "25",
            "--seed",
            "1",
            "--workers",
            "1",
            "--request-timeout",
            "60",
            "--generation-deterministic",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "/v1/detect" in done.stdout
    assert server.proc.poll() is None


def test_metrics_count_failures(server):
    samples = metric_samples(server.url)
    assert samples["ropevit_serve_failures_total{reason=invalid_upload}"] >= 1
    assert samples["ropevit_serve_failures_total{reason=too_large}"] >= 1
    assert samples.get("ropevit_serve_failures_total{reason=internal}", 0) == 0


def test_without_the_token_401_with_it_200(token_server):
    url, auth = token_server.url, {"Authorization": f"Bearer {TOKEN}"}
    data = [(FRAMES[0].name, FRAMES[0].read_bytes())]
    missing = _post(url, data)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert _post(url, data, {"Authorization": f"Bearer {TOKEN}x"}).status_code == 401
    assert _post(url, data, {"Authorization": TOKEN}).status_code == 401
    assert httpx.get(f"{url}/metrics").status_code == 401
    assert httpx.get(f"{url}/healthz").status_code == 200  # probes stay open
    assert _post(url, data, auth).status_code == 200


def _post_in_background(url: str, count: int, headers: dict[str, str]) -> tuple[threading.Thread, list]:
    result: list[httpx.Response] = []
    files = [(f"{i}_{FRAMES[i].name}", FRAMES[i].read_bytes()) for i in range(count)]
    thread = threading.Thread(target=lambda: result.append(_post(url, files, headers)))
    thread.start()
    return thread, result


def test_full_queue_is_503_with_retry_after(token_server):
    url, auth = token_server.url, {"Authorization": f"Bearer {TOKEN}"}
    thread, result = _post_in_background(url, 2, auth)  # fills the 2-image queue for 1.5 s
    wait_for_queue_depth(url, 2, auth)
    refused = _post(url, [(FRAMES[0].name, FRAMES[0].read_bytes())], auth)
    thread.join(timeout=60)
    assert refused.status_code == 503 and int(refused.headers["retry-after"]) >= 1
    assert result[0].status_code == 200 and len(result[0].json()["images"]) == 2


def test_sigterm_finishes_the_queued_request_and_exits_0(token_server):
    url, auth = token_server.url, {"Authorization": f"Bearer {TOKEN}"}
    thread, result = _post_in_background(url, 1, auth)
    wait_for_queue_depth(url, 1, auth)  # queued: its batch waits 1.5 s for company
    token_server.proc.send_signal(signal.SIGTERM)
    thread.join(timeout=60)
    assert result and result[0].status_code == 200, token_server.tail()
    assert [e["file"] for e in result[0].json()["images"]] == [f"0_{FRAMES[0].name}"]
    assert token_server.proc.wait(timeout=60) == 0, token_server.tail()
    assert "Application shutdown complete" in token_server.tail()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/healthz", timeout=5)


def test_loopback_unless_host_is_given_and_said_at_start(model_flags, monkeypatch, caplog):
    import ropevit_det.serve.server as server_module
    from ropevit_det.cli import serve as serve_cli

    started: list[dict] = []
    monkeypatch.setattr(server_module, "run_server", lambda app, **kwargs: started.append(kwargs) or 0)
    caplog.set_level("INFO", logger="ropevit_det.serve")
    assert serve_cli.main([*model_flags, *OVERRIDES]) == 0
    assert started[-1]["host"] == "127.0.0.1" and started[-1]["port"] == 8000
    assert "listening on 127.0.0.1 only" in caplog.text and "no --token-file" in caplog.text
    caplog.clear()
    assert serve_cli.main([*model_flags, "--host", "0.0.0.0", "--port", "8123", *OVERRIDES]) == 0
    assert started[-1]["host"] == "0.0.0.0" and "127.0.0.1 only" not in caplog.text


def test_a_missing_serve_extra_is_named_in_one_line_before_any_work(monkeypatch):
    import importlib.util as import_util

    from ropevit_det.cli import serve as serve_cli

    real = import_util.find_spec
    monkeypatch.setattr(import_util, "find_spec", lambda name, *a: None if name == "uvicorn" else real(name, *a))
    with pytest.raises(SystemExit) as exc:
        serve_cli.main(["--config", "missing.yaml", "--weights", "missing.pth"])  # no model is looked at
    assert str(exc.value) == (
        "ERROR: ropevit-det serve needs the serve extra (uvicorn missing): pip install -e '.[serve]'"
    )
