"""p50/p99 latency of POST /v1/embeddings at 1, 8 and 32 concurrent clients, and the ledger's cost.

    python benchmarks/service_latency.py --checkpoint /tmp/victim/encoder.safetensors --batch 16

Each client thread owns one HTTP connection and sends ``--requests`` requests of ``--batch`` images
(uint8 ``.npy`` in, ``.npy`` out) back to back; latency is measured per request at the client.
The ledger part times what one request costs the ledger, as the server does it: a reservation, its
commit without fsync, then the fsync (``reserve`` + ``commit(durable=False)`` + ``sync``), alone
(FULL and NORMAL durability, 1 and 8 threads) on a fresh SQLite file, or on PostgreSQL with
``--postgres URL``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from service_common import percentile, serve_subprocess

from encoder_audit.service.ledger import BaseLedger, SQLiteLedger


def run_clients(url: str, key: str, clients: int, requests: int, batch: int) -> dict[str, float]:
    buf = io.BytesIO()
    np.save(buf, np.random.default_rng(0).integers(0, 256, (batch, 1, 28, 28), dtype=np.uint8))
    body = buf.getvalue()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/x-npy", "Accept": "application/x-npy"}
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()

    def client() -> None:
        mine = []
        with httpx.Client(base_url=url, headers=headers, timeout=120) as http:
            http.post("/v1/embeddings", content=body)  # warm-up, connect
            for _ in range(requests):
                t0 = time.perf_counter()
                r = http.post("/v1/embeddings", content=body)
                mine.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    errors[0] += 1
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {
        "clients": clients,
        "requests": len(latencies),
        "p50_ms": round(1000 * percentile(latencies, 50), 2),
        "p99_ms": round(1000 * percentile(latencies, 99), 2),
        "img_per_s": round(len(latencies) * batch / wall, 1),
        "errors": errors[0],
    }


def ledger_overhead(n: int, threads: int, synchronous: str, postgres: str | None = None) -> dict[str, float | str]:
    with tempfile.TemporaryDirectory() as tmp:
        ledger: BaseLedger
        if postgres:
            from encoder_audit.service.ledger_postgres import PostgresLedger

            ledger = PostgresLedger(postgres, prefix=f"bench{os.getpid()}")
        else:
            ledger = SQLiteLedger(Path(tmp) / "l.sqlite", synchronous=synchronous)
        ledger.charge("warm", 1, None)
        per_thread = n // threads

        def work(i: int) -> None:
            for _ in range(per_thread):
                r = ledger.reserve(f"acct{i % 4}", 16, None, ttl=60)
                assert r.reservation is not None
                ledger.commit(r.reservation, durable=False)  # as the server does: commit, last byte, sync
                ledger.sync(r.reservation.account)

        ts = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
        t0 = time.perf_counter()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        wall = time.perf_counter() - t0
        if postgres:
            ledger.drop_tables()  # type: ignore[attr-defined]
        ledger.close()
    return {
        "backend": "postgresql" if postgres else "sqlite",
        "synchronous": "on" if postgres else synchronous,
        "threads": threads,
        "requests": per_thread * threads,
        "us_per_request": round(1e6 * wall / (per_thread * threads), 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=None, help="encoder to serve (needed unless --skip-latency)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--requests", type=int, default=40, help="requests per client")
    p.add_argument("--clients", default="1,8,32")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--ledger-charges", type=int, default=2000)
    p.add_argument("--durability", default="FULL", choices=["FULL", "NORMAL"], help="the server's ledger durability")
    p.add_argument("--skip-ledger", action="store_true", help="skip the SQLite ledger micro-benchmark")
    p.add_argument("--postgres", default=None, metavar="URL", help="also time a PostgreSQL ledger at this URL")
    p.add_argument("--skip-latency", action="store_true", help="only the ledger micro-benchmark")
    args = p.parse_args()
    if args.checkpoint is None and not args.skip_latency:
        p.error("--checkpoint is needed for the latency part (or pass --skip-latency)")
    out: dict = {"batch": args.batch, "durability": args.durability, "latency": [], "ledger": []}
    for sync in () if args.skip_ledger else ("FULL", "NORMAL"):
        for threads in (1, 8):
            out["ledger"].append(ledger_overhead(args.ledger_charges, threads, sync))
    if args.postgres:
        for threads in (1, 8):
            out["ledger"].append(ledger_overhead(args.ledger_charges, threads, "FULL", args.postgres))
    extra = ["--durability", args.durability]
    if not args.skip_latency:
        with serve_subprocess(args.checkpoint, threads=args.threads, extra=extra) as (url, key, _pid):
            for c in (int(v) for v in args.clients.split(",")):
                requests = max(5, args.requests * 8 // max(c, 8)) if c > 8 else args.requests
                out["latency"].append(run_clients(url, key, c, requests, args.batch))
    out["load_average"] = os.getloadavg()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
