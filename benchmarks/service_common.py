"""Shared helpers of the service benchmarks: start ``encoder-audit serve`` in a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve_subprocess(
    checkpoint: str | Path, *, budget: int | None = None, threads: int = 0, extra: list[str] | None = None
) -> Iterator[tuple[str, str, int]]:
    """Run ``encoder-audit serve`` in its own process on a free loopback port; yield (url, key, pid)."""
    from encoder_audit.service.auth import add_key

    with tempfile.TemporaryDirectory(prefix="svc-bench-") as tmp:
        keys = Path(tmp) / "keys.yaml"
        key = add_key(keys, "bench", budget=budget)
        port = free_port()
        cmd = [sys.executable, "-m", "encoder_audit", "serve", str(checkpoint), "--keys", str(keys)]
        cmd += ["--port", str(port), "--threads", str(threads), "-q", *(extra or [])]
        proc = subprocess.Popen(cmd, env=dict(os.environ), stdout=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            t0 = time.perf_counter()
            while True:
                if proc.poll() is not None:
                    raise RuntimeError("server exited")
                try:
                    if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.perf_counter() - t0 > 600:
                    raise RuntimeError("server did not start")
                time.sleep(0.2)
            yield url, key, proc.pid
        finally:
            proc.terminate()
            proc.wait(timeout=60)


def percentile(values: list[float], q: float) -> float:
    xs = sorted(values)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads), from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
