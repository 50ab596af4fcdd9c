#!/usr/bin/env python
"""Load-and-fault test of ``encoder-audit serve``: real server processes, real clients, loopback only.

    python scripts/service_load_test.py --short          # CI form, about a minute
    python scripts/service_load_test.py                   # longer: bigger budget, more time
    python scripts/service_load_test.py --replicas 2 --ledger postgresql://postgres@127.0.0.1:5432/postgres

What it does, all against 127.0.0.1 and bounded in requests and time:

1. starts ``--replicas`` server processes on one ledger (SQLite file in a temporary folder by default)
   with short time-outs, so that reservations of a killed server expire within seconds, plus two
   standby processes on the same ledger (started at once, so restarts cost no start-up time);
2. the amplification requests: an account with budget 0 sends 160 PNGs of 1024 x 1024 (a ~0.5 MB
   multipart body that would decode to ~2 GB of floats; refused 413 by the per-request pixel total)
   and 48 of them (within that total; refused 429 by the budget): each must be refused in under
   100 ms (median of 3 tries), with under 50 MB growth of the server's peak memory (``VmHWM``, reset
   before each request);
3. ``--clients`` threads spend one account's budget with random request sizes, some of them full
   batches whose client gives up 20 ms after sending (long before any answer can exist); meanwhile one
   server gets SIGTERM (graceful: in-flight requests finish) and one gets ``kill -9``, each replaced by
   a standby on the same ledger;
4. waits until the budget is spent and the dead server's reservations have expired, then compares
   the images the clients received (200 responses read in full) with the ledger.

It prints images answered, charged, reserved and released, the requests by outcome, and each server
process's peak memory, as JSON, and exits 1 if a check failed: charged != answered, charged !=
budget, reservations left, a 5xx other than 503, or the amplification request not refused in time
and memory.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

NPY = "application/x-npy"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process in bytes, from /proc (Linux)."""
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return out


def reset_peak(pid: int) -> bool:
    """Reset a process's VmHWM to its current RSS (``echo 5 > /proc/PID/clear_refs``)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class Server:
    """One ``encoder-audit serve`` process on a fixed loopback port (restartable on the same port)."""

    def __init__(self, name: str, cmd: list[str], port: int, env: dict[str, str], log: Path) -> None:
        self.name, self.cmd, self.port, self.env, self.log = name, cmd, port, env, log
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.peaks: list[dict[str, Any]] = []

    def start(self, timeout: float = 180.0) -> None:
        with self.log.open("ab") as f:
            self.proc = subprocess.Popen(
                [*self.cmd, "--port", str(self.port)], env=self.env, stdout=subprocess.DEVNULL, stderr=f
            )
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start-up; see {self.log}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not become healthy in {timeout:.0f}s")

    def _record(self, how: str) -> None:
        assert self.proc is not None
        st = proc_status(self.proc.pid)
        self.peaks.append({"pid": self.proc.pid, "ended_by": how, "peak_rss_mb": round(st.get("VmHWM", 0) / 2**20, 1)})

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        assert self.proc is not None
        self._record("SIGKILL" if sig == signal.SIGKILL else "SIGTERM")
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=30)


def npy_body(n: int, shape: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.random.default_rng(n).integers(0, 256, (n, *shape), dtype=np.uint8), allow_pickle=False)
    return buf.getvalue()


def amplification_body(count: int, side: int) -> tuple[bytes, str]:
    """A multipart body of ``count`` identical black RGB PNGs of ``side`` x ``side``."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (side, side)).save(buf, format="PNG", optimize=True)
    png = buf.getvalue()
    boundary = "encoderauditload"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{i}.png"\r\n'
        f"Content-Type: image/png\r\n\r\n".encode()
        + png
        + b"\r\n"
        for i in range(count)
    ]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def amplification(server: Server, key: str, count: int, side: int, tries: int) -> dict[str, Any]:
    """Send the same amplification request ``tries`` times; time each and measure the peak memory growth."""
    body, ctype = amplification_body(count, side)
    assert server.proc is not None
    pid = server.proc.pid
    results = []
    with httpx.Client(timeout=60) as http:
        for _ in range(tries):
            before = proc_status(pid).get("VmRSS", 0)
            reset = reset_peak(pid)
            t0 = time.perf_counter()
            r = http.post(
                server.url + "/v1/embeddings",
                content=body,
                headers={"Authorization": f"Bearer {key}", "Content-Type": ctype},
            )
            ms = (time.perf_counter() - t0) * 1000
            peak = proc_status(pid).get("VmHWM", 0) if reset else proc_status(pid).get("VmRSS", 0)
            results.append(
                {
                    "status": r.status_code,
                    "error": r.json().get("error") if r.headers.get("content-type") == "application/json" else None,
                    "ms": round(ms, 1),
                    "growth_mb": round(max(peak - before, 0) / 2**20, 2),
                }
            )
    return {
        "images": count,
        "image_side": side,
        "body_kb": round(len(body) / 1024, 1),
        "peak_reset": reset,
        "tries": results,
        "median_ms": sorted(t["ms"] for t in results)[len(results) // 2],
        "max_ms": max(t["ms"] for t in results),
        "max_growth_mb": max(t["growth_mb"] for t in results),
    }


class Load:
    """Client threads spending one account's budget against a set of servers (``urls`` may change)."""

    def __init__(
        self, urls: list[str], key: str, clients: int, shape: tuple[int, int, int], seed: int, max_n: int
    ) -> None:
        self.urls, self.key, self.shape, self.max_n = list(urls), key, shape, max_n
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.answered = 0
        self.outcomes: dict[str, int] = {}
        self.bodies: dict[int, bytes] = {}
        self.threads = [threading.Thread(target=self._client, args=(seed + i, i), daemon=True) for i in range(clients)]

    def _count(self, what: str, images: int = 0) -> None:
        with self.lock:
            self.outcomes[what] = self.outcomes.get(what, 0) + 1
            self.answered += images

    def replace(self, old: str, new: str) -> None:
        with self.lock:
            self.urls = [new if u == old else u for u in self.urls]

    def _body(self, n: int) -> bytes:
        with self.lock:
            if n not in self.bodies:
                self.bodies[n] = npy_body(n, self.shape)
            return self.bodies[n]

    def _client(self, seed: int, index: int) -> None:
        rng = random.Random(seed)
        # Every 8th client sometimes sends a full batch and gives up 20 ms after sending it: far less
        # than decoding and embedding 1,024 images take, so it has always left before any answer.
        impatient = index % 8 == 0
        headers = {"Authorization": f"Bearer {self.key}", "Content-Type": NPY, "Accept": NPY}
        remaining_hint: int | None = None
        with httpx.Client(headers=headers) as http:
            while not self.stop.is_set():
                with self.lock:
                    url = rng.choice(self.urls)
                timeout = httpx.Timeout(30.0)
                if impatient and rng.random() < 0.5:
                    n, timeout = self.max_n, httpx.Timeout(30.0, read=0.02)
                else:
                    n = rng.randint(1, 48)
                    if remaining_hint is not None:
                        n = max(1, min(n, remaining_hint))
                try:
                    r = http.post(url + "/v1/embeddings", content=self._body(n), timeout=timeout)
                except httpx.TimeoutException:
                    self._count("client_timeout")
                    continue
                except httpx.HTTPError:  # the server was stopped or killed
                    self._count("connection_error")
                    time.sleep(0.2)
                    continue
                if r.status_code == 200:
                    emb = np.load(io.BytesIO(r.content), allow_pickle=False)
                    assert emb.shape[0] == n, (emb.shape, n)
                    self._count("200", n)
                    remaining_hint = int(r.headers.get("x-query-images-remaining", "0")) or None
                    continue
                body = r.json() if r.headers.get("content-type") == "application/json" else {}
                self._count(f"{r.status_code} {body.get('error', '')}".strip())
                if r.status_code == 429 and body.get("error") == "budget_exhausted":
                    remaining_hint = int(body.get("remaining", 0))
                    if remaining_hint == 0:
                        time.sleep(0.1)  # wait for releases (expired reservations)
                        remaining_hint = None
                else:
                    time.sleep(0.05)

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def join(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)


def tiny_checkpoint(folder: Path) -> Path:
    from encoder_audit.models import create_encoder, save_encoder

    return Path(save_encoder(folder / "encoder.safetensors", create_encoder("cnn-small", in_channels=1, image_size=28)))


def main() -> int:
    servers: list[Server] = []
    try:
        return run(servers)
    finally:  # never leave a server process behind
        for s in servers:
            if s.proc is not None and s.proc.poll() is None:
                s.proc.kill()
                s.proc.wait(timeout=30)


def run(servers: list[Server]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--short", action="store_true", help="the CI form (small budget, short time-outs)")
    p.add_argument("--checkpoint", type=Path, default=None, help="encoder to serve (default: an untrained cnn-small)")
    p.add_argument("--ledger", default=None, help="ledger location (default: SQLite in a temporary folder)")
    p.add_argument("--replicas", type=int, default=1, help="server processes on the one ledger")
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--budget", type=int, default=None, help="images of the shared account")
    p.add_argument("--request-timeout", type=float, default=None, help="server --request-timeout (seconds)")
    p.add_argument("--limit", type=float, default=None, help="give up after this many seconds of load")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    budget = args.budget or (4000 if args.short else 20000)
    request_timeout = args.request_timeout or (2.0 if args.short else 5.0)
    write_timeout = 2.0
    ttl = request_timeout + write_timeout + 5.0  # ServiceConfig.reservation_ttl
    limit = args.limit or (90.0 if args.short else 300.0)
    if args.replicas < 1 or args.clients < 1:
        p.error("--replicas and --clients must be >= 1")

    from encoder_audit.service.auth import add_key
    from encoder_audit.service.ledger import open_ledger

    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="svc-load-") as tmp_s:
        tmp = Path(tmp_s)
        ckpt = args.checkpoint or tiny_checkpoint(tmp)
        tag = f"{random.Random().getrandbits(32):08x}"
        keys = tmp / "keys.yaml"
        shared = f"shared-{tag}"
        key = add_key(keys, shared, budget=budget)
        zero_key = add_key(keys, f"zero-{tag}", budget=0)
        ledger_loc = args.ledger or str(tmp / "ledger.sqlite")
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        base = [sys.executable, "-m", "encoder_audit", "serve", str(ckpt), "--keys", str(keys), "--ledger", ledger_loc]
        base += ["--threads", "1", "--request-timeout", str(request_timeout), "--write-timeout", str(write_timeout)]
        base += ["--host", "127.0.0.1", "-q"]
        servers += [
            Server(f"server{i}", base, free_port(), env, tmp / f"server{i}.log") for i in range(args.replicas + 2)
        ]
        starters = [threading.Thread(target=s.start) for s in servers]
        for t in starters:
            t.start()
        for t in starters:
            t.join()
        if not all(s.proc is not None and s.proc.poll() is None for s in servers):
            raise RuntimeError("a server failed to start")
        active, standby = servers[: args.replicas], servers[args.replicas :]
        startup_s = time.monotonic() - t_start
        report: dict[str, Any] = {"budget": budget, "clients": args.clients, "replicas": args.replicas}
        report["ledger"] = "postgresql" if ledger_loc.startswith("postgres") else "sqlite"
        report["amplification"] = [
            amplification(active[0], zero_key, count=160, side=1024, tries=3),
            amplification(active[0], zero_key, count=48, side=1024, tries=3),
        ]
        ledger = open_ledger(ledger_loc)
        load = Load([s.url for s in active], key, args.clients, (1, 28, 28), args.seed, max_n=1024)
        t_load = time.monotonic()
        load.start()
        faults: list[dict[str, Any]] = []
        try:

            def wait_used(fraction: float) -> None:
                while ledger.account(shared).used < fraction * budget and time.monotonic() - t_load < limit:
                    time.sleep(0.05)

            wait_used(0.25)
            victim, spare = active[0], standby[0]
            load.replace(victim.url, spare.url)
            active[0] = spare
            term: dict[str, Any] = {
                "signal": "SIGTERM",
                "server": victim.name,
                "used_at_signal": ledger.account(shared).used,
            }
            faults.append(term)

            def graceful(server: Server = victim, record: dict[str, Any] = term) -> None:
                t0 = time.monotonic()
                record["exit"] = server.stop(signal.SIGTERM)
                record["stop_s"] = round(time.monotonic() - t0, 2)

            stopping = threading.Thread(target=graceful)  # the load goes on while it drains
            stopping.start()
            wait_used(0.55)
            victim, spare = active[-1], standby[1]
            u = ledger.account(shared)
            victim.stop(signal.SIGKILL)
            load.replace(victim.url, spare.url)
            active[-1] = spare
            faults.append(
                {"signal": "SIGKILL", "server": victim.name, "used_at_signal": u.used, "reserved_at_kill": u.reserved}
            )
            while time.monotonic() - t_load < limit + ttl:
                u = ledger.account(shared)
                if u.used >= budget and u.reserved == 0:
                    break
                time.sleep(0.1)
            stopping.join(timeout=120)
        finally:
            load.join()
        load_s = time.monotonic() - t_load
        time.sleep(0.5)  # let the last commits land
        final = ledger.account(shared)
        ledger.close()
        for s in active:
            s.stop(signal.SIGTERM)
        report["faults"] = faults
        report["load_s"] = round(load_s, 1)
        report["startup_s"] = round(startup_s, 1)
        report["answered"] = load.answered
        report["charged"] = final.used
        report["reserved"] = final.reserved
        report["released"] = final.released
        report["calls"] = final.calls
        report["charged_minus_answered"] = final.used - load.answered
        report["outcomes"] = dict(sorted(load.outcomes.items()))
        report["server_peak_rss_mb"] = {s.name: s.peaks for s in servers}
        amp_issue, amp_budget = report["amplification"]
        server_errors = {k: v for k, v in load.outcomes.items() if k[:1] == "5" and not k.startswith("503")}
        checks = {
            "charged == answered": final.used == load.answered,
            "charged == budget": final.used == budget,
            "no reservation left": final.reserved == 0,
            "no 5xx but 503": not server_errors,
            "amplification refused 4xx": all(400 <= t["status"] < 500 for t in amp_issue["tries"]),
            "amplification within the pixel cap refused 429": all(t["status"] == 429 for t in amp_budget["tries"]),
            "amplification < 100 ms (median of 3)": max(amp_issue["median_ms"], amp_budget["median_ms"]) < 100,
            "amplification growth < 50 MB": max(amp_issue["max_growth_mb"], amp_budget["max_growth_mb"]) < 50,
            # uvicorn re-raises SIGTERM after its graceful shutdown, so -15 is a clean exit too
            "SIGTERM exit clean": len(faults) == 2 and faults[0].get("exit") in (0, -signal.SIGTERM),
            "faults mid-load": len(faults) == 2 and all(f["used_at_signal"] < budget for f in faults),
        }
        report["checks"] = checks
        report["load_average"] = [round(v, 2) for v in os.getloadavg()]
        report["total_s"] = round(time.monotonic() - t_start, 1)
        print(json.dumps(report, indent=2))
        if not all(checks.values()):
            for s in servers:
                sys.stderr.write(f"--- {s.log} ---\n{s.log.read_text()[-3000:]}\n")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
