#!/usr/bin/env python
r"""Load benchmark of ``ropevit-det serve`` on loopback, against in-process batch inference on the same frames.

Starts the server as its own process on a free 127.0.0.1 port and drives it with a bounded async client
(httpx): one image per request, ``--requests`` requests at each concurrency of ``--concurrency``, each level
also stopped by ``--level-timeout-s``. Reports images/s and p50/p99 latency per level; the same frames through
``infer``'s loop in this process (``run_inference`` on models loaded once, same batch size, after a warm-up),
measured right before each level; and the server's resident memory (RSS) after 100 requests and after
``--memory-requests``.

    python tools/benchmark_serve.py --json output/serve_load.json INPUT.MIN_SIZE_TEST 320 INPUT.MAX_SIZE_TEST 432

Without ``--weights`` the detector is ``--config`` with random weights (speed does not depend on them).
Nothing leaves the machine: the client only talks to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n", 1)[0],
        epilog=__doc__.split("\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config",
        default="quick_schedules/ropevit_faster_rcnn_instant_test.yaml",
        help="detector config, file or zoo name (default: %(default)s)",
    )
    parser.add_argument("--weights", default=None, help="detector weights (default: random weights of --config)")
    parser.add_argument(
        "--input",
        default=str(REPO / "tests" / "assets" / "camtrap_mini" / "images"),
        help="folder of frames, sent in turn (default: the repository's sample frames)",
    )
    parser.add_argument("--concurrency", default="1,4,16", help="concurrent clients per level (default: %(default)s)")
    parser.add_argument("--requests", type=int, default=96, help="requests per level (default: %(default)s)")
    parser.add_argument(
        "--memory-requests",
        type=int,
        default=1000,
        help="requests of the memory phase; RSS read after 100 and after these (default: %(default)s)",
    )
    parser.add_argument("--max-batch", type=int, default=8, help="server --max-batch and in-process batch size")
    parser.add_argument("--max-wait-ms", type=float, default=10.0, help="server --max-wait-ms (default: %(default)s)")
    parser.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        help="OMP threads of the server and of the in-process run (default: all cores)",
    )
    parser.add_argument("--level-timeout-s", type=float, default=300.0, help="time bound of each level and phase")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the figures here")
    parser.add_argument("opts", nargs=argparse.REMAINDER, metavar="KEY VALUE", help="config overrides")
    return parser


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


class InProcess:
    """``infer``'s loop (``run_inference``) in this process, on models loaded once, after a warm-up pass.

    Batch ``--max-batch``, one decoding worker; the loop's own timing (images / seconds). Measured right before
    each load level, so that both figures of a row see the same machine: a shared machine's load drifts.
    """

    def __init__(self, args: argparse.Namespace, config: str, weights: str, frames: list[Path], work: Path):
        import torch

        from ropevit_det.camera_trap.detection.job_models import load_job_models
        from ropevit_det.camera_trap.detection.job_settings import BatchJobSettings, build_job_cfg

        torch.set_num_threads(args.threads)
        self.args, self.frames, self.work, self.weights = args, frames, work, weights
        work.mkdir()
        settings = BatchJobSettings(
            config_file=config, weights=weights, input=str(args.input), output="", opts=tuple(args.opts), device="cpu"
        )
        self.cfg = build_job_cfg(settings)
        self.models = load_job_models(settings, self.cfg)
        self.runs = 0
        self.images_per_second(2 * args.max_batch)  # warm-up, as the server had one

    def images_per_second(self, count: int) -> float:
        from ropevit_det.camera_trap.detection.batch_loop import run_inference
        from ropevit_det.camera_trap.results.md_format import make_info
        from ropevit_det.camera_trap.results.writer import ResultsWriter

        self.runs += 1
        folder = self.work / f"run_{self.runs}"
        folder.mkdir()
        files = [f"{i:05d}_{self.frames[i % len(self.frames)].name}" for i in range(count)]
        for i, file in enumerate(files):
            (folder / file).symlink_to(self.frames[i % len(self.frames)])
        models = self.models
        writer = ResultsWriter(
            self.work / f"run_{self.runs}.json",
            info=make_info(Path(self.weights).name),
            detection_categories=models.classes.categories,
        )
        with writer:
            summary = run_inference(
                models.detector,
                models.spec,
                folder,
                files,
                writer,
                models.classes,
                threshold=self.cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST,
                batch_size=self.args.max_batch,
                num_workers=1,
                progress=False,
            )
        return summary.images_per_second


async def _load(
    url: str, payloads: list[tuple[str, bytes]], requests: int, concurrency: int, timeout: float
) -> tuple[list[float], float, int]:
    """``requests`` posts from ``concurrency`` clients; (latencies of the 200s, wall seconds, non-200 count)."""
    import httpx

    latencies: list[float] = []
    failures = 0
    next_index = 0
    deadline = time.monotonic() + timeout

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal next_index, failures
        while next_index < requests and time.monotonic() < deadline:
            name, data = payloads[next_index % len(payloads)]
            next_index += 1
            start = time.perf_counter()
            response = await http.post(f"{url}/v1/detect", files=[("image", (name, data))])
            if response.status_code == 200:
                latencies.append(time.perf_counter() - start)
            else:
                failures += 1

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=120) as http:
        start = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
        return latencies, time.perf_counter() - start, failures


def _percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    missing = [name for name in ("httpx", "fastapi", "uvicorn", "multipart") if importlib.util.find_spec(name) is None]
    if missing:
        raise SystemExit(
            f"ERROR: the load benchmark needs the serve and test extras ({', '.join(missing)} missing): "
            "pip install -e '.[serve,test]'"
        )
    import httpx

    from ropevit_det.cli.benchmark_scaling import random_checkpoint
    from ropevit_det.cli.common import config_arg

    frames = sorted(p for p in Path(args.input).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not frames:
        raise SystemExit(f"ERROR: --input {args.input}: no .jpg/.png frames")
    payloads = [(p.name, p.read_bytes()) for p in frames]
    config = config_arg(args.config)
    levels = [int(c) for c in args.concurrency.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        weights = args.weights
        if weights is None:
            weights = str(work / "random_detector.pth")
            random_checkpoint(args.config, args.opts, Path(weights))
        in_process = InProcess(args, config, weights, frames, work / "in_process")
        port = _free_port()
        url = f"http://{HOST}:{port}"
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        log = open(work / "server.log", "w")  # noqa: SIM115  (open for the server's whole life)
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ropevit_det",
                "serve",
                "--config",
                config,
                "--weights",
                weights,
                "--host",
                HOST,
                "--port",
                str(port),
                "--device",
                "cpu",
                "--max-batch",
                str(args.max_batch),
                "--max-wait-ms",
                str(args.max_wait_ms),
                "--max-queue",
                str(4 * max(levels) * args.max_batch),
                "--log-level",
                "warning",
                *args.opts,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            deadline = time.monotonic() + 300
            while True:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"ERROR: the server did not start:\n{(work / 'server.log').read_text()[-3000:]}")
                try:
                    if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            asyncio.run(_load(url, payloads, 2 * args.max_batch, 4, args.level_timeout_s))  # warm-up
            results = {"levels": []}
            for concurrency in levels:
                reference = in_process.images_per_second(args.requests)  # the server idles meanwhile
                latencies, seconds, failed = asyncio.run(
                    _load(url, payloads, args.requests, concurrency, args.level_timeout_s)
                )
                results["levels"].append(
                    {
                        "concurrency": concurrency,
                        "requests": len(latencies),
                        "failed": failed,
                        "in_process_images_per_second": reference,
                        "images_per_second": len(latencies) / seconds,
                        "p50_ms": 1000 * _percentile(latencies, 50),
                        "p99_ms": 1000 * _percentile(latencies, 99),
                    }
                )
                print(f"concurrency {concurrency}: {results['levels'][-1]}", flush=True)
            asyncio.run(_load(url, payloads, 100, 4, args.level_timeout_s))
            rss_100 = _rss_mib(server.pid)
            asyncio.run(_load(url, payloads, args.memory_requests - 100, 4, args.level_timeout_s))
            rss_after = _rss_mib(server.pid)
            results["memory"] = {"rss_mib_after_100": rss_100, f"rss_mib_after_{args.memory_requests}": rss_after}
            print(f"memory: {results['memory']}", flush=True)
            metrics = httpx.get(f"{url}/metrics", timeout=10).text
            results["batch_size_metric"] = [
                line for line in metrics.splitlines() if line.startswith("ropevit_serve_batch_size_")
            ]
        finally:
            server.terminate()
            server.wait(timeout=120)
            log.close()
    results["settings"] = {k: v for k, v in vars(args).items() if k != "json"}
    results["machine"] = {"cpus": os.cpu_count(), "threads": args.threads}
    print(_table(results))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


def _table(results: dict) -> str:
    lines = [
        "| clients | server images/s | in-process images/s (just before) | server / in-process | p50 ms | "
        "p99 ms | non-200 |",
        "|---|---|---|---|---|---|---|",
    ]
    for level in results["levels"]:
        base = level["in_process_images_per_second"]
        lines.append(
            f"| {level['concurrency']} | {level['images_per_second']:.2f} | {base:.2f} | "
            f"{level['images_per_second'] / base:.2f}x | {level['p50_ms']:.0f} | {level['p99_ms']:.0f} | "
            f"{level['failed']} |"
        )
    memory = results["memory"]
    lines += ["", "RSS: " + ", ".join(f"{k} = {v:.1f} MiB" for k, v in memory.items())]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
