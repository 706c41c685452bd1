"""Helpers for the tests that run ``ropevit-det serve`` as a real process on a loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class ServerProcess:
    """``ropevit-det serve FLAGS KEY VALUE...`` on a free loopback port; ready once ``/readyz`` answers 200."""

    def __init__(self, flags: list[str], overrides: list[str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.log = log
        self.args = [*flags, "--host", HOST, "--port", str(self.port), *overrides]  # overrides come last
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 180) -> ServerProcess:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
        with open(self.log, "w") as err:  # a file, not a pipe: a full pipe would stall the server
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ropevit_det.cli.main", "serve", *self.args],
                stdout=err,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                env=env,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"the server exited with {self.proc.returncode}: {self.tail()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        pytest.fail(f"the server was not ready within {timeout} s: {self.tail()}")

    def tail(self) -> str:
        return self.log.read_text()[-4000:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def metric_samples(url: str, headers: dict[str, str] | None = None) -> dict[str, float]:
    """``/metrics`` as ``{"name{label=value,...}": value}``."""
    text = httpx.get(f"{url}/metrics", headers=headers, timeout=10).text
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples


def wait_for_queue_depth(url: str, depth: int, headers: dict[str, str] | None = None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if metric_samples(url, headers).get("ropevit_serve_queue_depth{}") == depth:
            return
        time.sleep(0.02)
    pytest.fail(f"the queue never held {depth} images")
