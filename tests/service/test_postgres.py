"""Two real uvicorn servers (replicas) on one PostgreSQL ledger: 32 concurrent clients, spread over both,
spend one account's budget exactly. Skipped unless ``ENCODER_AUDIT_POSTGRES_DSN`` names a server
(``bash scripts/ci_postgres.sh python -m pytest -q tests/service/test_postgres.py``)."""

from __future__ import annotations

import random
import threading
import time

import torch
from service_helpers import LinearEncoder, postgres_dsn_or_skip

from encoder_audit.errors import BudgetExhausted
from encoder_audit.service.client import RemoteEncoder
from encoder_audit.service.testing import serve_in_background


def test_two_replicas_on_one_postgres_ledger_spend_the_budget_exactly():
    dsn = postgres_dsn_or_skip()
    from encoder_audit.service.ledger_postgres import PostgresLedger

    prefix = f"replicas{random.getrandbits(32):x}"
    budget = 500
    keys = {"shared": {"key": "ea_replica_test_key", "budget": budget}}
    ledgers = [PostgresLedger(dsn, prefix=prefix), PostgresLedger(dsn, prefix=prefix)]
    received: list[int] = []
    clients: list[RemoteEncoder] = []
    lock = threading.Lock()
    try:
        with (
            serve_in_background(LinearEncoder(), keys=keys, ledger=ledgers[0]) as (url_a, key),
            serve_in_background(LinearEncoder(), keys=keys, ledger=ledgers[1]) as (url_b, _),
        ):

            def client(seed: int) -> None:
                rng = random.Random(seed)
                remote = RemoteEncoder(url_a if seed % 2 else url_b, key, batch_size=64, wire_dtype="uint8")
                with lock:
                    clients.append(remote)
                while True:
                    n = rng.randint(1, 12)
                    if remote.remaining is not None:
                        n = min(n, remote.remaining)
                    if n == 0:
                        usage = remote.server_usage()  # reservations of the other replica may come back
                        if usage["used"] >= budget:
                            return
                        time.sleep(0.01)
                        n = max(usage["remaining"], 1)
                    try:
                        out = remote.embed(torch.rand(n, 1, 8, 8))
                    except BudgetExhausted:
                        continue
                    assert out.shape == (n, 16)
                    with lock:
                        received.append(n)

            threads = [threading.Thread(target=client, args=(i,)) for i in range(32)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=300)
            assert not any(t.is_alive() for t in threads)
            assert sum(received) == budget
            assert sum(c.images for c in clients) == budget
            usage = clients[0].server_usage()
            assert (usage["used"], usage["reserved"], usage["remaining"]) == (budget, 0, 0)
            assert usage["calls"] == len(received)
            assert ledgers[1].account("shared").used == budget
    finally:
        ledgers[0].drop_tables()
        for ledger in ledgers:
            ledger.close()
