"""HTTP embedding throughput over loopback in every wire format vs in-process batched inference of the
same encoder, all in one run with the measurements interleaved.

    python benchmarks/service_throughput.py --threads 1                       # untrained cnn-small
    python benchmarks/service_throughput.py --checkpoint /tmp/victim/encoder.safetensors --threads 1

The server is a separate ``encoder-audit serve`` process (as a real deployment); one client connection
sends batches of ``--batch`` Fashion-MNIST test images in each format:

* ``npy``: float32 ``.npy`` in, ``.npy`` out (what ``RemoteEncoder`` does);
* ``npy->json``: float32 ``.npy`` in, JSON out (parsed by the client with the standard ``json``);
* ``png->json``: one PNG file per image in a multipart body, JSON out (the quick-start curl path);
* ``png->npy``: multipart PNGs in, ``.npy`` out.

Request bodies (``.npy`` files, multipart PNG bodies) are encoded before the clock starts (a client's
own cost); sending them, the server's work and parsing the response are timed. Reported per format:
images/s (wall), images per CPU-second of the processes doing the work (client + server for HTTP),
and both as ratios to in-process inference.
Throughput does not depend on the weights, so an untrained encoder of the victim's architecture
(cnn-small, 1x28x28 -> 128-d) is served unless ``--checkpoint`` is given.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import torch
from service_common import process_cpu_seconds, serve_subprocess

from encoder_audit.data import create_dataset
from encoder_audit.victim import load_encoder

NPY = "application/x-npy"
FORMATS = ("npy", "npy->json", "png->json", "png->npy")


def npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def png_bytes(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def multipart(pngs: list[bytes]) -> tuple[bytes, str]:
    """A multipart/form-data body with one ``image`` file field per PNG (as ``curl -F image=@a.png``)."""
    boundary = "encoderauditbench"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{i}.png"\r\n'
        "Content-Type: image/png\r\n\r\n".encode()
        + png
        + b"\r\n"
        for i, png in enumerate(pngs)
    ]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def in_process(encoder, x: torch.Tensor, batch: int) -> None:
    for i in range(0, len(x), batch):
        encoder.embed(x[i : i + batch])


def make_requests(x: torch.Tensor, batch: int, fmt: str) -> list[dict]:
    """Request keyword arguments for httpx, one per batch, encoded ahead of time."""
    out = []
    for i in range(0, len(x), batch):
        chunk = x[i : i + batch]
        accept = NPY if fmt.endswith("npy") else "application/json"
        if fmt.startswith("png"):
            u8 = (chunk[:, 0] * 255).round().to(torch.uint8).numpy()
            body, ctype = multipart([png_bytes(u8[j]) for j in range(len(u8))])
            out.append({"content": body, "headers": {"Content-Type": ctype, "Accept": accept}})
        else:
            body = npy_bytes(chunk.numpy().astype(np.float32))
            out.append({"content": body, "headers": {"Content-Type": NPY, "Accept": accept}})
    return out


def over_http(http: httpx.Client, requests: list[dict], fmt: str, dim: int) -> None:
    for kw in requests:
        r = http.post("/v1/embeddings", **kw)
        r.raise_for_status()
        if fmt.endswith("json"):
            emb = np.asarray(json.loads(r.content)["embeddings"], dtype=np.float32)
        else:
            emb = np.load(io.BytesIO(r.content), allow_pickle=False)
        assert emb.shape[1] == dim


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=None, help="encoder to serve (default: an untrained cnn-small)")
    p.add_argument("--images", type=int, default=4096)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch threads, in-process and in the server")
    p.add_argument("--formats", default=",".join(FORMATS), help="comma-separated subset of " + ", ".join(FORMATS))
    args = p.parse_args()
    formats = [f for f in args.formats.split(",") if f]
    unknown = set(formats) - set(FORMATS)
    if unknown:
        p.error(f"unknown formats {sorted(unknown)}")
    torch.set_num_threads(args.threads)
    ds = create_dataset("fashion-mnist", "test")
    x = ds.float_images(torch.arange(args.images))
    with tempfile.TemporaryDirectory(prefix="svc-tput-") as tmp:
        ckpt = args.checkpoint
        if ckpt is None:
            from encoder_audit.models import create_encoder, save_encoder

            ckpt = str(save_encoder(Path(tmp) / "enc.safetensors", create_encoder("cnn-small", 1, image_size=28)))
        encoder = load_encoder(ckpt)
        dim = int(encoder.embedding_dim)
        bodies = {fmt: make_requests(x, args.batch, fmt) for fmt in formats}
        result: dict = {
            "images": args.images,
            "batch": args.batch,
            "threads": args.threads,
            "checkpoint": args.checkpoint,
        }
        with serve_subprocess(ckpt, threads=args.threads) as (url, key, pid):
            http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=300)
            work: dict[str, Callable[[], None]] = {"in_process": lambda: in_process(encoder, x, args.batch)}
            for fmt in formats:
                work[fmt] = lambda fmt=fmt: over_http(http, bodies[fmt], fmt, dim)
            for fn in work.values():  # warm-up (one batch would do; a full pass is simpler)
                fn()
            stats: dict[str, dict[str, list[float]]] = {k: {"wall": [], "cpu": []} for k in work}
            for _ in range(args.repeats):
                for name, fn in work.items():
                    server_cpu = (lambda: process_cpu_seconds(pid)) if name != "in_process" else (lambda: 0.0)
                    c0, t0 = time.process_time() + server_cpu(), time.perf_counter()
                    fn()
                    t1, c1 = time.perf_counter(), time.process_time() + server_cpu()
                    stats[name]["wall"].append(len(x) / (t1 - t0))
                    stats[name]["cpu"].append(len(x) / max(c1 - c0, 1e-9))
            http.close()
    base_wall = statistics.median(stats["in_process"]["wall"])
    base_cpu = statistics.median(stats["in_process"]["cpu"])
    for name in work:
        wall, cpu = statistics.median(stats[name]["wall"]), statistics.median(stats[name]["cpu"])
        result[name] = {
            "img_s": round(wall, 1),
            "ratio": round(wall / base_wall, 3),
            "img_per_cpu_s": round(cpu, 1),
            "cpu_ratio": round(cpu / base_cpu, 3),
            "img_s_all": [round(v, 1) for v in stats[name]["wall"]],
        }
    result["load_average"] = [round(v, 2) for v in os.getloadavg()]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
