"""Victim specs beyond this project's checkpoints: torchvision/timm state dicts, TorchScript, python factories.

Every loaded encoder is checked against the user's own module on the same normalized input, and
every refusal against a file that would do harm (or silently mean something else) if accepted.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch
import torchvision
from safetensors.torch import save_file
from torch import nn

from encoder_audit.errors import CheckpointError, UserError
from encoder_audit.models import create_encoder, save_encoder
from encoder_audit.models.external import (
    FeatureExtractor,
    load_state_dict_into,
    parse_floats,
    parse_input_shape,
    read_state_dict,
    remove_head,
)
from encoder_audit.victim import LocalEncoder, load_encoder

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SHAPE = (3, 64, 64)  # small inputs keep a ResNet-18 forward pass cheap; ResNets take any size


def _normalize(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    return (x - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)


def _trained_bn(model: nn.Module, shape: tuple[int, int, int] = SHAPE) -> nn.Module:
    """Non-trivial batch-norm statistics, so a loader that drops buffers cannot pass."""
    with torch.no_grad():
        model.train()(torch.rand(4, *shape))
    return model.eval()


@pytest.fixture(scope="module")
def resnet() -> nn.Module:
    """The user's fine-tuned model: a torchvision ResNet-18 with a 5-class head (random weights)."""
    torch.manual_seed(0)
    return _trained_bn(torchvision.models.resnet18(num_classes=5))


@pytest.fixture(scope="module")
def files(resnet: nn.Module, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("weights")
    state = resnet.state_dict()
    out = {"pth": d / "model_state.pth", "safetensors": d / "model.safetensors"}
    torch.save(state, out["pth"])
    save_file({k: v.contiguous() for k, v in state.items()}, str(out["safetensors"]))
    return out


def _features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model's own penultimate features (what the audit must see), computed directly."""
    head, model.fc = model.fc, nn.Identity()  # type: ignore[assignment]
    try:
        with torch.no_grad():
            return model.eval()(x)
    finally:
        model.fc = head  # type: ignore[assignment]


# --- torchvision -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["pth", "safetensors"])
def test_torchvision_state_dict_embeds_like_the_module(resnet: nn.Module, files: dict[str, Path], kind: str) -> None:
    enc = load_encoder("torchvision:resnet18", weights=files[kind], input_shape=SHAPE)
    assert isinstance(enc, LocalEncoder)
    assert enc.input_shape == SHAPE and enc.embedding_dim == 512
    x = torch.rand(5, *SHAPE)
    expected = _features(resnet, _normalize(x, IMAGENET_MEAN, IMAGENET_STD))  # ImageNet statistics by default
    torch.testing.assert_close(enc.embed(x), expected, atol=1e-5, rtol=1e-5)
    assert enc.meta["source"] == "torchvision" and enc.meta["architecture"] == "torchvision:resnet18"
    assert enc.meta["removed_head"] == ["fc"] and enc.meta["embedding_dim"] == 512
    assert enc.meta["weights_sha256"] and enc.meta["input_shape"] == list(SHAPE)


def test_torchvision_defaults_come_from_the_weights_metadata(files: dict[str, Path]) -> None:
    enc = load_encoder("torchvision:resnet18", weights=files["pth"])
    assert enc.input_shape == (3, 224, 224)
    norm = enc.meta["normalization"]  # type: ignore[attr-defined]
    torch.testing.assert_close(torch.tensor(norm["mean"]), torch.tensor(IMAGENET_MEAN))
    torch.testing.assert_close(torch.tensor(norm["std"]), torch.tensor(IMAGENET_STD))


def test_user_mean_std_and_non_square_input(resnet: nn.Module, files: dict[str, Path]) -> None:
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.5, 1.0)
    enc = load_encoder("torchvision:resnet18", weights=files["pth"], input_shape="3,48,80", mean=mean, std=std)
    assert enc.input_shape == (3, 48, 80)
    x = torch.rand(3, 3, 48, 80)
    torch.testing.assert_close(enc.embed(x), _features(resnet, _normalize(x, mean, std)), atol=1e-5, rtol=1e-5)


def test_feature_layer_takes_the_pooled_output_of_that_submodule(resnet: nn.Module, files: dict[str, Path]) -> None:
    enc = load_encoder("torchvision:resnet18", weights=files["pth"], input_shape=SHAPE, feature_layer="layer3")
    assert enc.embedding_dim == 256 and enc.meta["architecture"] == "torchvision:resnet18@layer3"
    x = torch.rand(2, *SHAPE)
    z = _normalize(x, IMAGENET_MEAN, IMAGENET_STD)
    m = resnet
    with torch.no_grad():
        fmap = m.layer3(m.layer2(m.layer1(m.maxpool(m.relu(m.bn1(m.conv1(z)))))))
    torch.testing.assert_close(enc.embed(x), fmap.mean(dim=(2, 3)), atol=1e-5, rtol=1e-5)
    with pytest.raises(UserError, match=r"layer5.*did you mean"):
        load_encoder("torchvision:resnet18", weights=files["pth"], feature_layer="layer5")


def test_wrapper_prefixes_and_nested_checkpoints_are_unwrapped(resnet: nn.Module, tmp_path: Path) -> None:
    x = torch.rand(2, *SHAPE)
    expected = _features(resnet, _normalize(x, IMAGENET_MEAN, IMAGENET_STD))
    ddp = {f"module.{k}": v for k, v in resnet.state_dict().items()}
    lightning = {"epoch": 3, "state_dict": {f"model.{k}": v for k, v in resnet.state_dict().items()}}
    ssl = {f"backbone.{k}": v for k, v in resnet.state_dict().items()} | {"projector.0.weight": torch.zeros(8, 512)}
    for name, obj in {"ddp": ddp, "lightning": lightning, "ssl": ssl}.items():
        path = tmp_path / f"{name}.pt"
        torch.save(obj, path)
        enc = load_encoder("torchvision:resnet18", weights=path, input_shape=SHAPE)
        torch.testing.assert_close(enc.embed(x), expected, atol=1e-5, rtol=1e-5, msg=name)
    assert enc.meta["weights_key_prefix"] == "backbone."  # type: ignore[attr-defined]
    assert enc.meta["ignored_weight_keys"] == ["projector.0.weight"]  # type: ignore[attr-defined]


def test_weights_of_another_architecture_are_refused(tmp_path: Path) -> None:
    other = tmp_path / "resnet34.pth"
    torch.save(torchvision.models.resnet34().state_dict(), other)
    with pytest.raises(CheckpointError, match=r"do not fit ResNet: .*unexpected.*layer1\.2"):
        load_encoder("torchvision:resnet18", weights=other)
    wide = {k: v for k, v in torchvision.models.resnet18().state_dict().items()}
    wide["conv1.weight"] = torch.zeros(64, 1, 7, 7)
    torch.save(wide, tmp_path / "gray.pth")
    with pytest.raises(CheckpointError, match=r"conv1\.weight has shape \(64, 1, 7, 7\)"):
        load_encoder("torchvision:resnet18", weights=tmp_path / "gray.pth")
    partial = {k: v for k, v in wide.items() if not k.startswith("layer4")}
    torch.save(partial, tmp_path / "partial.pth")
    with pytest.raises(CheckpointError, match="missing"):
        load_encoder("torchvision:resnet18", weights=tmp_path / "partial.pth")


def test_torchvision_needs_weights_or_an_explicit_random_init(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(UserError, match=r"needs --weights.*nothing is downloaded"):
        load_encoder("torchvision:resnet18")
    with caplog.at_level("WARNING"):
        enc = load_encoder("torchvision:resnet18", weights="random", input_shape=SHAPE)
    assert enc.embedding_dim == 512 and "randomly initialised" in caplog.text
    with pytest.raises(UserError, match=r"no classification model 'resnet19'.*resnet18"):
        load_encoder("torchvision:resnet19", weights="random")
    with pytest.raises(UserError, match="3 channels"):
        load_encoder("torchvision:resnet18", weights="random", input_shape=(1, 28, 28))


@pytest.mark.parametrize(
    ("name", "dim"),
    [
        pytest.param("vgg11", 4096, marks=pytest.mark.slow),  # 133M parameters: seconds to build
        ("mobilenet_v3_small", 1024),
        ("convnext_tiny", 768),
        pytest.param("vit_b_16", 768, marks=pytest.mark.slow),
        ("efficientnet_b0", 1280),
    ],
)
def test_heads_of_other_torchvision_families_are_removed(name: str, dim: int) -> None:
    """The last nn.Linear is the head for every common family: the features are the penultimate layer."""
    model = torchvision.models.get_model(name, weights=None)
    head, in_features = remove_head(model)
    assert in_features == dim, head
    shape = (3, 224, 224) if name == "vit_b_16" else (3, 64, 64)
    with torch.no_grad():
        assert model.eval()(torch.rand(1, *shape)).shape == (1, dim)


def test_a_model_without_a_linear_head_asks_for_a_feature_layer() -> None:
    with pytest.raises(UserError, match="--feature-layer"):
        remove_head(torchvision.models.squeezenet1_0())
    with pytest.raises(UserError, match="--feature-layer"):
        load_encoder("torchvision:squeezenet1_0", weights="random", input_shape=SHAPE)
    enc = load_encoder("torchvision:squeezenet1_0", weights="random", input_shape=SHAPE, feature_layer="features")
    assert enc.embedding_dim == 512


# --- refusing files that need code --------------------------------------------------------------


class _Payload:
    """Unpickling this object runs ``touch MARKER``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch '{self.marker}'",))


def test_payload_is_live(tmp_path: Path) -> None:
    """Control: the payload really runs when unpickled, so the refusal below means something."""
    marker = tmp_path / "CONTROL"
    pickle.loads(pickle.dumps({"w": _Payload(marker)}))
    assert marker.exists()


def test_state_dict_with_a_pickled_object_is_refused_and_nothing_runs(resnet: nn.Module, tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    evil = tmp_path / "model_state.pth"
    torch.save({**resnet.state_dict(), "extra": _Payload(marker)}, evil)
    with pytest.raises(CheckpointError, match=r"refusing to load .*pickled Python object \(posix\.system\)"):
        load_encoder("torchvision:resnet18", weights=evil)
    with pytest.raises(CheckpointError, match="pickled Python object"):
        read_state_dict(evil)
    assert not marker.exists()


def test_a_whole_pickled_module_is_refused_naming_its_class(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save(nn.Linear(2, 3), path)
    with pytest.raises(CheckpointError, match=r"torch\.nn\.modules\.linear\.Linear.*state_dict"):
        read_state_dict(path)


def test_non_state_dict_files_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        read_state_dict(tmp_path / "missing.pth")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="holds a list, not a state dict"):
        read_state_dict(tmp_path / "list.pt")
    torch.save({"epoch": 1, "lr": 0.1}, tmp_path / "meta.pt")
    with pytest.raises(CheckpointError, match=r"without a state dict.*epoch, lr"):
        read_state_dict(tmp_path / "meta.pt")
    (tmp_path / "junk.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="not a valid safetensors"):
        read_state_dict(tmp_path / "junk.safetensors")


def test_bare_state_dict_paths_point_to_the_spec_that_loads_them(files: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"pickles.*--victim torchvision:NAME --weights"):
        load_encoder(files["pth"])
    with pytest.raises(CheckpointError, match=r"sidecar .* not found.*--victim torchvision:NAME --weights"):
        load_encoder(files["safetensors"])


# --- TorchScript -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scripted(resnet: nn.Module, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, nn.Module]:
    model = torchvision.models.resnet18(num_classes=5)
    model.load_state_dict(resnet.state_dict())
    model.fc = nn.Identity()  # type: ignore[assignment]
    path = tmp_path_factory.mktemp("ts") / "encoder.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated upstream, still supported
        torch.jit.save(torch.jit.trace(model.eval(), torch.rand(1, *SHAPE)), str(path))
    return path, model


def test_torchscript_archive_embeds_like_the_module(scripted: tuple[Path, nn.Module]) -> None:
    path, model = scripted
    enc = load_encoder(f"torchscript:{path}", input_shape=SHAPE, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    x = torch.rand(3, *SHAPE)
    with torch.no_grad():
        expected = model(_normalize(x, IMAGENET_MEAN, IMAGENET_STD))
    torch.testing.assert_close(enc.embed(x), expected, atol=1e-5, rtol=1e-5)
    assert enc.meta["source"] == "torchscript" and enc.meta["architecture"] is None  # no random-init rebuild


def test_torchscript_without_normalization_gets_raw_pixels(scripted: tuple[Path, nn.Module]) -> None:
    path, model = scripted
    enc = load_encoder(f"torchscript:{path}", input_shape=SHAPE)
    x = torch.rand(2, *SHAPE)
    with torch.no_grad():
        torch.testing.assert_close(enc.embed(x), model(x), atol=1e-5, rtol=1e-5)


def test_torchscript_victim_can_be_copied_and_fine_tuned(scripted: tuple[Path, nn.Module]) -> None:
    """White-box attacks fine-tune a deep copy of the victim (BadEncoder): its parameters must be leaves."""
    import copy

    path, _ = scripted
    enc = load_encoder(f"torchscript:{path}", input_shape=SHAPE)
    clone = copy.deepcopy(enc.net)
    params = list(clone.parameters())
    assert params and all(p.is_leaf for p in params)
    for p in params:
        p.requires_grad_(False)  # what a frozen reference copy does
        p.requires_grad_(True)
    x = torch.rand(2, *SHAPE)
    with torch.no_grad():
        torch.testing.assert_close(clone.eval()(x), enc.embed(x), atol=1e-5, rtol=1e-5)
    clone(x).pow(2).mean().backward()
    assert all(p.grad is not None for p in params[:3])
    torch.optim.SGD(params, lr=0.1).step()
    with torch.no_grad():
        assert not torch.allclose(clone(x), enc.embed(x))  # the copy moved, the victim did not


def test_torchscript_errors(scripted: tuple[Path, nn.Module], files: dict[str, Path]) -> None:
    path, _ = scripted
    with pytest.raises(UserError, match="--input-shape"):
        load_encoder(f"torchscript:{path}")
    with pytest.raises(UserError, match="TorchScript"):
        load_encoder(f"torchscript:{path}", input_shape=SHAPE, feature_layer="layer3")
    with pytest.raises(UserError, match="--weights does not apply"):
        load_encoder(f"torchscript:{path}", input_shape=SHAPE, weights=files["pth"])
    with pytest.raises(CheckpointError, match="not a TorchScript archive"):
        load_encoder(f"torchscript:{files['pth']}", input_shape=SHAPE)
    with pytest.raises(CheckpointError, match=r"TorchScript archive.*--victim torchscript:"):
        load_encoder(path)  # a bare .pt path is refused, and named for what it is
    with pytest.raises(CheckpointError, match="TorchScript archive, not a state dict"):
        load_encoder("torchvision:resnet18", weights=path)


# --- python factories ------------------------------------------------------------------------------

FACTORY = """
import torch
from torch import nn

CALLS = []


class Tiny(nn.Module):
    input_shape = (1, 12, 12)

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.head = nn.Linear(4 * 10 * 10, 6)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).flatten(1))


def build():
    CALLS.append(1)
    torch.manual_seed(7)
    return Tiny()


def encoder():
    class Constant:
        input_shape = (3, 8, 8)
        embedding_dim = 2

        def embed(self, images):
            return torch.ones(len(images), 2)

    return Constant()


def not_a_model():
    return 42
"""


@pytest.fixture
def factory_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    pkg = tmp_path / "user_models"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "nets.py").write_text(textwrap.dedent(FACTORY))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield pkg / "nets.py"  # type: ignore[misc]
    for name in [m for m in sys.modules if m.startswith("user_models")]:
        del sys.modules[name]


def _reference(path: Path) -> nn.Module:
    namespace: dict[str, object] = {}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    return namespace["build"]().eval()  # type: ignore[operator, no-any-return]


@pytest.mark.parametrize("form", ["module", "file"])
def test_python_factory_embeds_like_its_module(factory_module: Path, form: str) -> None:
    spec = "python:user_models.nets:build" if form == "module" else f"python:{factory_module}:build"
    enc = load_encoder(spec, mean=(0.5,), std=(0.25,))
    assert enc.input_shape == (1, 12, 12) and enc.embedding_dim == 6  # shape from the module's attribute
    ref = _reference(factory_module)
    x = torch.rand(4, 1, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(enc.embed(x), ref((x - 0.5) / 0.25), atol=1e-5, rtol=1e-5)
    assert enc.meta["source"] == "python" and enc.meta["architecture"] is None
    assert enc.meta["removed_head"] == []  # the user's module is used as it is


def test_python_factory_with_weights_and_feature_layer(factory_module: Path, tmp_path: Path) -> None:
    ref = _reference(factory_module)
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(1.0)  # weights that differ from the factory's own init
    torch.save(ref.state_dict(), tmp_path / "mine.pt")
    enc = load_encoder("python:user_models.nets:build", weights=tmp_path / "mine.pt", feature_layer="conv")
    assert enc.embedding_dim == 4
    x = torch.rand(2, 1, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(enc.embed(x), ref.conv(x).mean(dim=(2, 3)), atol=1e-5, rtol=1e-5)


def test_python_factory_returning_an_encoder_is_used_as_is(factory_module: Path) -> None:
    enc = load_encoder("python:user_models.nets:encoder")
    assert enc.embedding_dim == 2 and not isinstance(enc, LocalEncoder)
    with pytest.raises(UserError, match="do not apply"):
        load_encoder("python:user_models.nets:encoder", input_shape=(3, 8, 8))


def test_python_spec_errors(factory_module: Path) -> None:
    with pytest.raises(UserError, match=r"python:package\.module:factory"):
        load_encoder("python:user_models.nets")
    with pytest.raises(UserError, match="cannot import"):
        load_encoder("python:no_such_pkg.mod:build")
    with pytest.raises(UserError, match="no callable 'missing'"):
        load_encoder("python:user_models.nets:missing")
    with pytest.raises(UserError, match="returned int"):
        load_encoder("python:user_models.nets:not_a_model")
    with pytest.raises(UserError, match="not found"):
        load_encoder("python:/no/such/file.py:build")


# --- timm (optional extra) -------------------------------------------------------------------------


def test_timm_state_dict_embeds_like_the_module(tmp_path: Path) -> None:
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = _trained_bn(timm.create_model("resnet10t", pretrained=False, num_classes=3))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "t.safetensors"))
    enc = load_encoder("timm:resnet10t", weights=tmp_path / "t.safetensors", input_shape=SHAPE)
    cfg = model.pretrained_cfg
    model.reset_classifier(0)
    x = torch.rand(2, *SHAPE)
    with torch.no_grad():
        expected = model.eval()(_normalize(x, tuple(cfg["mean"]), tuple(cfg["std"])))
    torch.testing.assert_close(enc.embed(x), expected, atol=1e-5, rtol=1e-5)
    assert enc.meta["architecture"] == "timm:resnet10t" and enc.meta["removed_head"] == ["fc"]
    with pytest.raises(UserError, match="timm has no model"):
        load_encoder("timm:resnet10tx", weights="random")


def test_timm_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm raises ImportError, as without the extra
    with pytest.raises(UserError, match=r"pip install 'encoder-audit\[timm\]'"):
        load_encoder("timm:resnet18", weights="random")


# --- rebuilding external architectures by name -----------------------------------------------------


def test_create_encoder_builds_external_architectures_by_name() -> None:
    net = create_encoder("torchvision:resnet18@layer2", in_channels=3, image_size=32, image_width=48)
    assert net.input_shape == (3, 32, 48) and net.feature_dim == 128 and net.arch == "torchvision:resnet18@layer2"
    torch.testing.assert_close(net.mean.flatten(), torch.tensor(IMAGENET_MEAN))  # the family's statistics
    for refused in ("python:os:getcwd", "torchscript:x.pt", "nope:resnet18"):
        with pytest.raises(UserError, match="only torchvision:NAME and timm:NAME"):
            create_encoder(refused)
    with pytest.raises(ValueError, match="square"):
        create_encoder("cnn-small", in_channels=3, image_size=16, image_width=20)


def test_sidecar_naming_user_code_is_not_imported(tmp_path: Path) -> None:
    """A sidecar is data: one that names python code is refused, with the spec that loads it explicitly."""
    net = create_encoder("cnn-small", in_channels=1, image_size=16)
    path = save_encoder(tmp_path / "enc", net)
    meta = json.loads(path.with_suffix(".json").read_text())
    marker = tmp_path / "IMPORTED"
    (tmp_path / "evil_factory.py").write_text(f"open({str(marker)!r}, 'w').close()\ndef build(): pass\n")
    sys.path.insert(0, str(tmp_path))
    try:
        meta["architecture"] = "python:evil_factory:build"
        path.with_suffix(".json").write_text(json.dumps(meta))
        with pytest.raises(CheckpointError, match=r"--victim python:evil_factory:build --weights"):
            load_encoder(path)
    finally:
        sys.path.remove(str(tmp_path))
    assert not marker.exists()


# --- helpers -------------------------------------------------------------------------------------


def test_parsers() -> None:
    assert parse_input_shape("3,224,224") == (3, 224, 224) == parse_input_shape("3x224x224")
    assert parse_input_shape([1, 28, 28]) == (1, 28, 28)
    for bad in ("3,224", "a,b,c", "0,1,1", "3,224,224,1"):
        with pytest.raises(ValueError, match="C,H,W"):
            parse_input_shape(bad)
    assert parse_floats("0.5, 0.25,1") == (0.5, 0.25, 1.0)
    for bad in ("", "x", "nan"):
        with pytest.raises(ValueError):
            parse_floats(bad, "mean")


def test_load_state_dict_into_reports_what_it_left_out() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Identity())
    state = {"module.0.weight": torch.ones(4, 3), "module.0.bias": torch.zeros(4), "module.2.weight": torch.ones(9, 4)}
    report = load_state_dict_into(model, state, head=["2"])
    assert report.prefix == "module." and report.dropped_head == ["2.weight"] and report.ignored == []
    assert torch.equal(model[0].weight, torch.ones(4, 3))


def test_feature_extractor_hooks_leave_no_trace() -> None:
    model = torchvision.models.resnet18()
    fx = FeatureExtractor(model, "layer2")
    fx(torch.rand(1, *SHAPE))
    assert not model.layer2._forward_hooks  # the hook lives for one call only
    assert set(fx.state_dict()) == {f"model.{k}" for k in model.state_dict()}
