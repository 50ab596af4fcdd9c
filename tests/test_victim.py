"""The victim interface: LocalEncoder, adapt_images and the exact, thread-safe QueryCounter."""

from __future__ import annotations

import random
import threading

import pytest
import torch
import torch.nn.functional as F

from encoder_audit.errors import BudgetExhausted
from encoder_audit.models import create_encoder
from encoder_audit.victim import Encoder, LocalEncoder, QueryCounter, adapt_images


@pytest.fixture
def net():  # type: ignore[no-untyped-def]
    torch.manual_seed(1)
    return create_encoder("cnn-small", in_channels=3, image_size=16)


def test_local_encoder_matches_the_net(net) -> None:  # type: ignore[no-untyped-def]
    enc = LocalEncoder(net, batch_size=3)
    assert isinstance(enc, Encoder)
    assert enc.input_shape == (3, 16, 16) and enc.embedding_dim == 128
    x = torch.rand(7, 3, 16, 16)
    out = enc.embed(x)
    with torch.no_grad():
        expected = net.eval()(x)
    assert out.shape == (7, 128) and out.dtype == torch.float32 and out.device.type == "cpu"
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)  # chunks of 3 == one pass
    assert not out.requires_grad
    assert enc.embed(torch.rand(0, 3, 16, 16)).shape == (0, 128)


def test_local_encoder_uses_eval_mode_and_restores_the_callers_mode(net) -> None:  # type: ignore[no-untyped-def]
    net.train()  # e.g. an evaluation callback wraps the encoder in the middle of training
    enc = LocalEncoder(net)
    assert net.training  # wrapping leaves the mode alone
    stats = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.rand(4, 3, 16, 16)
    a, b = enc.embed(x), enc.embed(x[:1])
    assert net.training  # the caller's mode is restored
    for k, v in net.state_dict().items():  # batch-norm running statistics are untouched
        assert torch.equal(v, stats[k]), k
    torch.testing.assert_close(a[:1], b)  # eval mode: an image's embedding does not depend on its batch


def test_local_encoder_adapts_channels_and_size(net) -> None:  # type: ignore[no-untyped-def]
    enc = LocalEncoder(net)
    gray = torch.rand(2, 1, 16, 16)
    torch.testing.assert_close(enc.embed(gray), enc.embed(gray.expand(-1, 3, -1, -1)))
    big = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(enc.embed(big), enc.embed(adapt_images(big, (3, 16, 16))))


def test_adapt_gray_to_rgb_and_rgb_to_gray() -> None:
    gray = torch.rand(2, 1, 8, 8)
    rgb = adapt_images(gray, (3, 8, 8))
    assert rgb.shape == (2, 3, 8, 8)
    for c in range(3):
        assert torch.equal(rgb[:, c], gray[:, 0])
    colour = torch.zeros(1, 3, 1, 3)
    colour[0, 0, 0, 0] = 1.0
    colour[0, 1, 0, 1] = 1.0
    colour[0, 2, 0, 2] = 1.0
    torch.testing.assert_close(adapt_images(colour, (1, 1, 3)).flatten(), torch.tensor([0.299, 0.587, 0.114]))


def test_adapt_resizes_with_antialiasing() -> None:
    x = torch.rand(3, 1, 28, 28)
    y = adapt_images(x, (1, 14, 14))
    assert y.shape == (3, 1, 14, 14)
    torch.testing.assert_close(y.mean(dim=(2, 3)), x.mean(dim=(2, 3)), atol=0.02, rtol=0)
    # antialiased downsampling low-passes white noise well below plain bilinear (2x2 averaging: var / 4)
    assert y.var() < 0.2 * x.var()
    assert F.avg_pool2d(x, 2).var() > 0.2 * x.var()
    up = adapt_images(x, (1, 32, 32))
    assert up.shape == (3, 1, 32, 32) and up.min() >= 0 and up.max() <= 1
    assert adapt_images(x, (1, 28, 28)) is x  # nothing to do


@pytest.mark.parametrize(
    ("images", "match"),
    [
        (torch.randint(0, 255, (2, 1, 8, 8), dtype=torch.uint8), "float"),
        (torch.randint(0, 2, (2, 1, 8, 8)), "float"),
        (torch.rand(1, 2, 1, 8, 8), r"\(N, C, H, W\)"),
        (torch.rand(1, 8, 8), r"\(N, C, H, W\)"),
        (torch.rand(2, 2, 8, 8), "channels"),
        (torch.full((1, 1, 8, 8), float("nan")), "finite"),
        (torch.full((1, 1, 8, 8), float("inf")), "finite"),
    ],
)
def test_adapt_rejects_bad_batches(images: torch.Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        adapt_images(images, (3, 8, 8))


def test_bad_batches_are_rejected_by_local_encoder_even_when_empty(net) -> None:  # type: ignore[no-untyped-def]
    enc = LocalEncoder(net)
    with pytest.raises(ValueError):
        enc.embed(torch.zeros(0, 3, 16, 16, dtype=torch.uint8))
    with pytest.raises(ValueError):
        enc.embed(torch.zeros(0, 1, 3, 16, 16))


def test_out_of_range_values_are_clipped() -> None:
    x = torch.tensor([-0.5, 0.25, 1.5]).view(1, 1, 1, 3)
    torch.testing.assert_close(adapt_images(x, (1, 1, 3)).flatten(), torch.tensor([0.0, 0.25, 1.0]))


class _Fake:
    """A trivial Encoder that records what it served."""

    input_shape = (1, 4, 4)
    embedding_dim = 2

    def __init__(self) -> None:
        self.served = 0
        self.lock = threading.Lock()

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        with self.lock:
            self.served += images.shape[0]
        return torch.ones(images.shape[0], 2)


def test_query_counter_counts_exactly() -> None:
    fake = _Fake()
    q = QueryCounter(fake)
    assert isinstance(q, Encoder) and q.input_shape == (1, 4, 4) and q.embedding_dim == 2
    for n in [3, 1, 0, 7]:
        assert q.embed(torch.zeros(n, 1, 4, 4)).shape == (n, 2)
    assert (q.images, q.calls) == (11, 4)
    assert q.usage() == {"query_images": 11, "api_calls": 4, "budget": None}
    assert q.remaining is None and fake.served == 11


def test_budget_refusal_charges_nothing() -> None:
    fake = _Fake()
    q = QueryCounter(fake, budget=10)
    q.embed(torch.zeros(6, 1, 4, 4))
    with pytest.raises(BudgetExhausted, match="6 of 10 images used, request for 5 refused") as info:
        q.embed(torch.zeros(5, 1, 4, 4))
    assert (info.value.used, info.value.budget, info.value.requested) == (6, 10, 5)
    assert (q.images, q.calls, q.remaining, fake.served) == (6, 1, 4, 6)  # the refused call cost nothing
    q.embed(torch.zeros(4, 1, 4, 4))  # exactly up to the budget is allowed
    assert q.remaining == 0 and q.usage() == {"query_images": 10, "api_calls": 2, "budget": 10}
    with pytest.raises(BudgetExhausted):
        q.embed(torch.zeros(1, 1, 4, 4))
    assert fake.served == 10


def test_zero_and_negative_budgets() -> None:
    q = QueryCounter(_Fake(), budget=0)
    with pytest.raises(BudgetExhausted):
        q.embed(torch.zeros(1, 1, 4, 4))
    assert q.embed(torch.zeros(0, 1, 4, 4)).shape == (0, 2)
    with pytest.raises(ValueError):
        QueryCounter(_Fake(), budget=-1)


def test_threads_racing_for_a_budget_get_exactly_the_budget() -> None:
    budget, threads = 997, 16
    fake = _Fake()
    q = QueryCounter(fake, budget=budget)
    served = [0] * threads
    calls = [0] * threads
    start = threading.Barrier(threads)

    def worker(i: int) -> None:
        rng = random.Random(i)
        start.wait()
        while True:
            n = rng.randint(1, 9)
            try:
                out = q.embed(torch.zeros(n, 1, 4, 4))
            except BudgetExhausted as exc:
                if exc.budget - exc.used == 0:
                    return
                continue  # too large for what is left: try another size
            served[i] += out.shape[0]
            calls[i] += 1

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in pool)
    assert sum(served) == budget == q.images == fake.served
    assert sum(calls) == q.calls


def test_query_counter_refunds_a_call_whose_encoder_fails() -> None:
    class Flaky:
        input_shape, embedding_dim = (1, 4, 4), 2

        def __init__(self) -> None:
            self.fail = True

        def embed(self, x):
            if self.fail:
                raise RuntimeError("backend down")
            return torch.zeros(len(x), 2)

    enc = Flaky()
    q = QueryCounter(enc, budget=4)
    with pytest.raises(RuntimeError, match="backend down"):
        q.embed(torch.zeros(3, 1, 4, 4))
    assert (q.images, q.calls, q.remaining) == (0, 0, 4)
    enc.fail = False
    q.embed(torch.zeros(4, 1, 4, 4))
    assert (q.images, q.calls, q.remaining) == (4, 1, 0)
