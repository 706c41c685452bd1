r"""Serve a detector over HTTP: MegaDetector-format entries for uploaded images, batched, bounded, authenticated.

Examples:
  # loopback only (no --host, no token): for a platform on the same machine
  ropevit-det serve --config configs/camera_trap/ropevit_faster_rcnn_cct.yaml --weights model_final.pth \
      --class-names animal,person,vehicle
  curl -F image=@IMG_0001.JPG -F image=@IMG_0002.JPG http://127.0.0.1:8000/v1/detect

  # on the network, with a bearer token, species labels and bf16 on a GPU
  ropevit-det serve --config ... --weights ... --host 0.0.0.0 --token-file /etc/ropevit/token \
      --device cuda --bf16 --classify --max-batch 16
  curl -H "Authorization: Bearer $(cat token)" -F image=@IMG_0001.JPG http://HOST:8000/v1/detect

Routes: POST /v1/detect (multipart fields named 'image'), GET /healthz, GET /readyz, GET /metrics (Prometheus),
GET /openapi.json. Concurrent requests are batched up to --max-batch images, waiting at most --max-wait-ms for
a batch to fill. A full queue answers 503 with Retry-After; SIGTERM stops accepting, finishes what is queued and
exits 0. Needs the serve extra: pip install -e '.[serve]'. More in docs/SERVE.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import logging
import os
import sys

from ropevit_det.camera_trap.detection.job_settings import BatchJobError, BatchJobSettings
from ropevit_det.camera_trap.species.place_filter import SpeciesFilterError
from ropevit_det.cli.common import config_arg
from ropevit_det.cli.infer_args import add_classify_args, add_model_args
from ropevit_det.cli.species_args import check_species_args, species_filter_message

LOOPBACK = "127.0.0.1"
SERVE_EXTRA = ("fastapi", "uvicorn", "multipart", "prometheus_client")
# The flag behind each setting a BatchJobError can name (as in cli/infer.py).
_FLAGS = {
    "class_names": "--class-names / --config",
    "weights": "--weights",
    "classifier_weights": "--classifier-weights",
    "device": "--device",
}

logger = logging.getLogger("ropevit_det.serve")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n", 1)[0],
        epilog=__doc__.split("\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_args(parser)  # the flags infer has for the model: --config, --weights, --threshold, --bf16, ...
    server = parser.add_argument_group("server")
    server.add_argument(
        "--host",
        default=None,
        help=f"address to listen on (default: {LOOPBACK}, this machine only; give one explicitly, "
        "e.g. 0.0.0.0, to serve the network, and use --token-file there)",
    )
    server.add_argument("--port", type=int, default=8000, help="(default: %(default)s)")
    server.add_argument(
        "--token-file",
        default=None,
        metavar="FILE",
        help="file holding the bearer token; requests without 'Authorization: Bearer <token>' get "
        "401 (/healthz, /readyz and /openapi.json stay open)",
    )
    server.add_argument("--max-batch", type=int, default=8, help="images per model call (default: %(default)s)")
    server.add_argument(
        "--max-wait-ms",
        type=float,
        default=10.0,
        help="how long an image waits for others to fill its batch (default: %(default)s)",
    )
    server.add_argument(
        "--max-queue",
        type=int,
        default=64,
        help="images admitted and not yet in a model call; beyond: 503 with Retry-After (default: %(default)s)",
    )
    server.add_argument(
        "--max-upload-mb",
        type=float,
        default=32.0,
        help="largest request body, all images together (default: %(default)s)",
    )
    server.add_argument(
        "--max-pixels",
        type=int,
        default=64_000_000,
        help="largest image, width x height as stored; larger ones (and decompression bombs) get "
        "413 (default: %(default)s)",
    )
    server.add_argument(
        "--request-timeout-s",
        type=float,
        default=60.0,
        help="a request not answered in this time gets 504 (default: %(default)s)",
    )
    server.add_argument(
        "--decode-threads",
        type=int,
        default=min(4, os.cpu_count() or 1),
        help="uploads decoded at once, beside the model's own thread (default: %(default)s)",
    )
    server.add_argument(
        "--log-level",
        default="info",
        choices=("critical", "error", "warning", "info", "debug"),
        help="(default: %(default)s)",
    )
    add_classify_args(parser)  # --classify and the species options, as infer has them
    parser.add_argument("opts", nargs=argparse.REMAINDER, metavar="KEY VALUE", help="config overrides")
    return parser


def require_serve_extra() -> None:
    """End with one line naming the extra when a package of it is missing, before any model is loaded."""
    missing = [name for name in SERVE_EXTRA if importlib.util.find_spec(name) is None]
    if missing:
        raise SystemExit(
            f"ERROR: ropevit-det serve needs the serve extra ({', '.join(missing)} missing): pip install -e '.[serve]'"
        )


def check_args(args: argparse.Namespace) -> None:
    for name in ("threshold", "typical_threshold", "classify_threshold"):
        value = getattr(args, name)
        if value is not None and not 0.0 <= value <= 1.0:
            raise SystemExit(f"--{name.replace('_', '-')} must be between 0 and 1, got {value}")
    if args.backend != "pytorch" and (args.bf16 or (args.device or "cpu") != "cpu"):
        raise SystemExit(f"--backend {args.backend} runs on the CPU in fp32: drop --bf16 and --device")
    if args.smooth_sequences or args.sequences_cct:
        raise SystemExit(
            "ERROR: --smooth-sequences / --sequences-cct smooth a results file; the server answers "
            "one request at a time: smooth the collected entries with infer's tools instead"
        )
    check_species_args(args)
    if not 0 < args.port < 65536:
        raise SystemExit(f"--port must be 1..65535, got {args.port}")


def limits_from_args(args: argparse.Namespace):
    from ropevit_det.serve.limits import ServeLimits

    try:
        return ServeLimits(
            max_batch=args.max_batch,
            max_wait_ms=args.max_wait_ms,
            max_queue=args.max_queue,
            max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
            max_pixels=args.max_pixels,
            request_timeout_s=args.request_timeout_s,
            decode_threads=args.decode_threads,
        )
    except ValueError as exc:
        flag = str(exc).split(" ", 1)[0].replace("_bytes", "_mb").replace("_", "-")
        raise SystemExit(f"ERROR: --{flag}: {exc}") from None


def model_settings(args: argparse.Namespace) -> BatchJobSettings:
    """The model flags as a batch job's settings (the server reads no input and writes no results file)."""
    names = {f.name for f in dataclasses.fields(BatchJobSettings)} - {"config_file", "opts", "input", "output"}
    given = {name: value for name, value in vars(args).items() if name in names}
    return BatchJobSettings(
        **given, config_file=config_arg(args.config_file), opts=tuple(args.opts), input="", output="", progress=False
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    require_serve_extra()
    check_args(args)
    limits = limits_from_args(args)
    from ropevit_det.serve.app import create_app
    from ropevit_det.serve.auth import read_token
    from ropevit_det.serve.pipeline import DetectionPipeline
    from ropevit_det.serve.server import run_server

    token = None
    if args.token_file is not None:
        try:
            token = read_token(args.token_file)
        except (OSError, ValueError) as exc:
            raise SystemExit(f"ERROR: --token-file: {exc}") from None
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    host = LOOPBACK if args.host is None else args.host
    if args.host is None:
        logger.info("listening on %s only (this machine); pass --host explicitly to serve other machines", LOOPBACK)
    if token is None:
        logger.warning("no --token-file: every client that can reach %s:%d can use the detector", host, args.port)
    settings = model_settings(args)
    try:
        pipeline = DetectionPipeline(settings)
    except BatchJobError as exc:
        raise SystemExit(f"ERROR: {_FLAGS.get(exc.setting, exc.setting)}: {exc}") from None
    except SpeciesFilterError as exc:
        raise SystemExit(species_filter_message(exc)) from None
    app = create_app(pipeline, limits=limits, token=token)
    logger.info(
        "model loaded on %s; batches of up to %d images, waiting up to %g ms",
        pipeline.device,
        limits.max_batch,
        limits.max_wait_ms,
    )
    return run_server(app, host=host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    sys.exit(main())
