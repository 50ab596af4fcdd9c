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


# --- wrap_encoder: any nn.Module ---------------------------------------------------------------


class _Net(torch.nn.Module):
    """A user's module with batch norm (eval mode matters) and a 2-d output."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.fc = torch.nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3)))


@pytest.fixture
def module() -> _Net:
    torch.manual_seed(2)
    m = _Net()
    with torch.no_grad():
        m.train()(torch.rand(8, 3, 20, 20))  # non-trivial running statistics
    return m.eval()


def test_wrapped_module_embeds_like_the_module_on_the_same_normalized_input(module: _Net) -> None:
    from encoder_audit.victim import WhiteBox, wrap_encoder

    mean, std = (0.4, 0.5, 0.6), (0.2, 0.3, 0.4)
    enc = wrap_encoder(module, input_shape=(3, 20, 20), mean=mean, std=std, batch_size=3)
    assert isinstance(enc, Encoder) and isinstance(enc, WhiteBox)
    assert enc.input_shape == (3, 20, 20) and enc.embedding_dim == 5
    x = torch.rand(7, 3, 20, 20)
    with torch.no_grad():
        expected = module((x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1))
    torch.testing.assert_close(enc.embed(x), expected, atol=1e-5, rtol=1e-5)
    assert enc.meta["source"] == "module" and enc.meta["model_class"] == "_Net"
    assert enc.meta["architecture"] is None and enc.meta["embedding_dim"] == 5
    torch.testing.assert_close(torch.tensor(enc.meta["normalization"]["std"]), torch.tensor(std))


def test_wrapped_module_without_normalization_gets_pixels_and_can_take_a_feature_layer(module: _Net) -> None:
    from encoder_audit.victim import wrap_encoder

    x = torch.rand(2, 3, 20, 20)
    enc = wrap_encoder(module, input_shape=(3, 20, 20))
    enc.embed(x)
    assert not module.training  # embedding leaves the caller's module in its own (eval) mode
    with torch.no_grad():
        torch.testing.assert_close(enc.embed(x), module(x), atol=1e-5, rtol=1e-5)
        conv = wrap_encoder(module, input_shape=(3, 20, 20), feature_layer="bn")
        torch.testing.assert_close(conv.embed(x), module.bn(module.conv(x)).mean(dim=(2, 3)), atol=1e-5, rtol=1e-5)
    assert conv.embedding_dim == 8


def test_wrap_encoder_errors(module: _Net, net) -> None:  # type: ignore[no-untyped-def]
    from encoder_audit.victim import wrap_encoder

    with pytest.raises(ValueError, match="needs input_shape"):
        wrap_encoder(module)
    with pytest.raises(ValueError, match="both mean and std"):
        wrap_encoder(module, input_shape=(3, 20, 20), mean=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="does not run on 1x20x20"):
        wrap_encoder(module, input_shape=(1, 20, 20))
    with pytest.raises(TypeError, match=r"nn\.Module"):
        wrap_encoder(lambda x: x)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="wrap_encoder"):
        LocalEncoder(module)  # type: ignore[arg-type]
    assert wrap_encoder(net).net is net  # an EncoderNet carries its own shape and normalization
    with pytest.raises(ValueError, match="own normalization"):
        wrap_encoder(net, mean=(0.5,), std=(0.5,))


def test_embeddings_are_normal_tensors_usable_as_loss_targets(net) -> None:  # type: ignore[no-untyped-def]
    """embed runs under inference_mode; its result must still be usable where autograd saves it."""
    enc = LocalEncoder(net)
    for n in (1, 3):
        target = enc.embed(torch.rand(n, 3, 16, 16))
        assert not target.is_inference()
        pred = torch.rand(n, 128, requires_grad=True)
        F.cosine_similarity(pred, target).sum().backward()  # saves target for backward
        assert pred.grad is not None


def test_bf16_autocast_keeps_shape_and_float32_output(net) -> None:  # type: ignore[no-untyped-def]
    enc = LocalEncoder(net, autocast="bf16")
    x = torch.rand(4, 3, 16, 16)
    out = enc.embed(x)
    assert out.shape == (4, 128) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    with pytest.raises(ValueError, match="autocast"):
        LocalEncoder(net, autocast="int8")


def test_device_auto_and_unavailable_cuda(net) -> None:  # type: ignore[no-untyped-def]
    from encoder_audit.errors import UserError
    from encoder_audit.victim import resolve_device

    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert LocalEncoder(net, device="auto").device == resolve_device("auto")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA"):
            resolve_device("cuda")


def test_adaptation_is_logged_once_per_shape(net, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    enc = LocalEncoder(net)
    with caplog.at_level("INFO", logger="encoder_audit.victim"):
        for _ in range(3):
            enc.embed(torch.rand(2, 1, 4, 4))
        enc.embed(torch.rand(2, 3, 16, 16))
    lines = [r.getMessage() for r in caplog.records if "adapting" in r.getMessage()]
    assert lines == ["adapting 1x4x4 images to the encoder's 3x16x16 input (upsampled 4.0x)"]


def test_options_that_do_not_apply_to_a_spec_are_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from encoder_audit.errors import UserError
    from encoder_audit.models import save_encoder
    from encoder_audit.victim import load_encoder

    path = save_encoder(tmp_path / "enc", create_encoder("cnn-small", in_channels=1, image_size=16))
    assert load_encoder(path, autocast="bf16").embed(torch.rand(1, 1, 16, 16)).shape == (1, 128)
    with pytest.raises(UserError, match=r"--mean, --std do not apply to the checkpoint"):
        load_encoder(path, mean=(0.5,), std=(0.5,))
    with pytest.raises(UserError, match="--weights do not apply to a victim URL"):
        load_encoder("http://127.0.0.1:9", weights="x.pt")
    with pytest.raises(UserError, match="needs a name"):
        load_encoder("torchvision:")


def test_url_spec_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from encoder_audit.errors import UserError
    from encoder_audit.victim import load_encoder

    monkeypatch.delenv("ENCODER_AUDIT_API_KEY", raising=False)
    with pytest.raises(UserError, match="--api-key"):
        load_encoder("http://127.0.0.1:9")


# --- the top-level facade ----------------------------------------------------------------------


def test_importing_the_package_imports_nothing() -> None:
    import subprocess
    import sys

    code = "import sys, encoder_audit; assert 'torch' not in sys.modules, 'import pulled in torch'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_facade_exposes_the_api() -> None:
    import encoder_audit
    import encoder_audit.attacks.registry as attacks
    import encoder_audit.audit.runner as runner
    import encoder_audit.victim as victim
    from encoder_audit import create_attack, load_encoder, run_audit, wrap_encoder

    assert load_encoder is victim.load_encoder and wrap_encoder is victim.wrap_encoder
    assert run_audit is runner.run_audit and create_attack is attacks.create_attack
    assert {"load_encoder", "wrap_encoder", "run_audit", "create_attack"} <= set(dir(encoder_audit))
    assert set(encoder_audit.__all__) <= set(dir(encoder_audit))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        encoder_audit.nope  # noqa: B018
