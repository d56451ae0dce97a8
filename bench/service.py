"""A real service process, for tests and benchmarks: `rag serve` on a free port of 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

RAG = Path(sys.executable).with_name("rag")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_service(
    index_dir: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> Iterator[str]:
    """Start the service on `index_dir`, wait for /readyz, yield its base URL, stop it."""
    with service_process(index_dir, env, timeout) as (url, _):
        yield url


def peak_rss_mb(process: subprocess.Popen[bytes]) -> float | None:
    """A running process's peak resident memory (VmHWM), None if it cannot be read."""
    try:
        status = Path(f"/proc/{process.pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


@contextmanager
def service_process(
    index_dir: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """As `running_service`, yielding the process too."""
    port = free_port()
    log = index_dir.parent / f"service-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(RAG), "serve", "--port", str(port), "--index", str(index_dir)],
            env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process, log, timeout)
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    """Return once `url` answers /readyz; raise with its log if the process dies or stalls."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"service exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass  # not listening yet
        time.sleep(0.2)
    raise TimeoutError(f"service at {url} not ready after {timeout} s:\n{log.read_text()}")
