"""HTTP embedding throughput at batch 256 over loopback vs in-process batched inference of the same
encoder, in the same run.

    python benchmarks/service_throughput.py --checkpoint /tmp/victim/encoder.safetensors --threads 2

The server is a separate ``encoder-audit serve`` process (as a real deployment); the client sends
``.npy`` float32 (or uint8) batches of 256 images and reads ``.npy`` back. Reported: images/s
in-process, images/s over HTTP with 1 and 2 concurrent client connections, the ratios, and the
same per CPU-second (client + server processes) for shared machines.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time

import torch
from service_common import process_cpu_seconds, serve_subprocess

from encoder_audit.data import create_dataset
from encoder_audit.service.client import RemoteEncoder
from encoder_audit.victim import load_encoder


def in_process(encoder, x: torch.Tensor, batch: int, repeats: int) -> float:
    rates = []
    encoder.embed(x[:batch])  # warm-up
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(0, len(x), batch):
            encoder.embed(x[i : i + batch])
        rates.append(len(x) / (time.perf_counter() - t0))
    return statistics.median(rates)


def over_http(url: str, key: str, x: torch.Tensor, batch: int, repeats: int, clients: int, wire: str) -> float:
    remotes = [RemoteEncoder(url, key, batch_size=batch, wire_dtype=wire) for _ in range(clients)]
    remotes[0].embed(x[:batch])  # warm-up
    rates = []
    for _ in range(repeats):
        parts = x.chunk(clients)

        threads = [threading.Thread(target=remotes[i].embed, args=(parts[i],)) for i in range(clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rates.append(len(x) / (time.perf_counter() - t0))
    return statistics.median(rates)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--images", type=int, default=4096)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2, help="torch threads, in-process and in the server")
    p.add_argument("--wire", default="float32", choices=["float32", "uint8"])
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    ds = create_dataset("fashion-mnist", "test")
    x = ds.float_images(torch.arange(args.images))
    encoder = load_encoder(args.checkpoint)
    result = {"images": args.images, "batch": args.batch, "threads": args.threads, "wire": args.wire}
    with serve_subprocess(args.checkpoint, threads=args.threads) as (url, key, pid):
        # Interleave the measurements so background load affects all alike. Besides wall-clock rates,
        # record CPU seconds (this process, plus the server process for HTTP): on a shared machine the
        # scheduler gives more runnable threads more CPU, which wall-clock ratios cannot separate.
        stats: dict[str, dict[str, list[float]]] = {k: {"wall": [], "cpu": []} for k in ("local", "http1", "http2")}
        for _ in range(args.repeats):
            for name, fn in (
                ("local", lambda: in_process(encoder, x, args.batch, 1)),
                ("http1", lambda: over_http(url, key, x, args.batch, 1, 1, args.wire)),
                ("http2", lambda: over_http(url, key, x, args.batch, 1, 2, args.wire)),
            ):
                c0 = time.process_time() + (process_cpu_seconds(pid) if name != "local" else 0.0)
                rate = fn()
                c1 = time.process_time() + (process_cpu_seconds(pid) if name != "local" else 0.0)
                stats[name]["wall"].append(rate)
                stats[name]["cpu"].append(len(x) / max(c1 - c0, 1e-9))
    for name, label in (("local", "in_process"), ("http1", "http_1_client"), ("http2", "http_2_clients")):
        result[f"{label}_img_s"] = round(statistics.median(stats[name]["wall"]), 1)
        result[f"{label}_img_per_cpu_s"] = round(statistics.median(stats[name]["cpu"]), 1)
    for label in ("http_1_client", "http_2_clients"):
        result[f"ratio_{label}"] = round(result[f"{label}_img_s"] / result["in_process_img_s"], 3)
        result[f"cpu_ratio_{label}"] = round(result[f"{label}_img_per_cpu_s"] / result["in_process_img_per_cpu_s"], 3)
    result["load_average"] = os.getloadavg()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
