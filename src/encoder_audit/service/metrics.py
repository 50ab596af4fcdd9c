"""Prometheus text-format metrics (exposition format 0.0.4), with no client library.

Exposed at ``GET /metrics``: requests by endpoint and status, images delivered (committed), images
reserved then released by reason (error, time-out, client gone), images held by this process's
requests in flight, rejections by reason, and a latency histogram of ``POST /v1/embeddings``.
"""

from __future__ import annotations

import threading
from collections import defaultdict

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _labels(**kv: str) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in kv.items())
    return "{" + inner + "}" if inner else ""


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Metrics:
    """Thread-safe counters and one histogram, rendered by :meth:`render`."""

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.rejections: dict[str, int] = defaultdict(int)
        self.images = 0
        self.released: dict[str, int] = defaultdict(int)
        self.in_flight = 0
        self.buckets = buckets
        self._hist = [0] * (len(buckets) + 1)
        self._sum = 0.0
        self._count = 0

    def request(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.requests[(method, path, status)] += 1

    def rejection(self, reason: str) -> None:
        with self._lock:
            self.rejections[reason] += 1

    def reserved(self, images: int) -> None:
        """A request of this process now holds ``images`` in the ledger."""
        with self._lock:
            self.in_flight += images

    def served(self, images: int) -> None:
        """A reservation was committed: its response was written to the client."""
        with self._lock:
            self.images += images
            self.in_flight -= images

    def release(self, images: int, reason: str) -> None:
        """A reservation was released without charging (``reason``: error, timeout, disconnect, ...)."""
        with self._lock:
            self.released[reason] += images
            self.in_flight -= images

    def observe_latency(self, seconds: float) -> None:
        with self._lock:
            i = 0
            while i < len(self.buckets) and seconds > self.buckets[i]:
                i += 1
            self._hist[i] += 1
            self._sum += seconds
            self._count += 1

    def render(self) -> str:
        """The metrics in Prometheus text format."""
        with self._lock:
            lines = [
                "# HELP encoder_audit_requests_total HTTP requests by method, path and status.",
                "# TYPE encoder_audit_requests_total counter",
            ]
            for (method, path, status), n in sorted(self.requests.items()):
                lines.append(f"encoder_audit_requests_total{_labels(method=method, path=path, status=str(status))} {n}")
            lines += [
                "# HELP encoder_audit_images_total Images delivered and charged (one image = one query).",
                "# TYPE encoder_audit_images_total counter",
                f"encoder_audit_images_total {self.images}",
                "# HELP encoder_audit_released_images_total Images reserved, then released uncharged, by reason.",
                "# TYPE encoder_audit_released_images_total counter",
            ]
            for reason, n in sorted(self.released.items()):
                lines.append(f"encoder_audit_released_images_total{_labels(reason=reason)} {n}")
            lines += [
                "# HELP encoder_audit_reserved_images Images held by this process's requests in flight.",
                "# TYPE encoder_audit_reserved_images gauge",
                f"encoder_audit_reserved_images {self.in_flight}",
                "# HELP encoder_audit_rejections_total Refused requests by reason.",
                "# TYPE encoder_audit_rejections_total counter",
            ]
            for reason, n in sorted(self.rejections.items()):
                lines.append(f"encoder_audit_rejections_total{_labels(reason=reason)} {n}")
            lines += [
                "# HELP encoder_audit_embed_latency_seconds Latency of POST /v1/embeddings.",
                "# TYPE encoder_audit_embed_latency_seconds histogram",
            ]
            cumulative = 0
            for bound, n in zip(self.buckets, self._hist):
                cumulative += n
                lines.append(f'encoder_audit_embed_latency_seconds_bucket{{le="{bound:g}"}} {cumulative}')
            lines.append(f'encoder_audit_embed_latency_seconds_bucket{{le="+Inf"}} {self._count}')
            lines.append(f"encoder_audit_embed_latency_seconds_sum {self._sum:.6f}")
            lines.append(f"encoder_audit_embed_latency_seconds_count {self._count}")
        return "\n".join(lines) + "\n"
