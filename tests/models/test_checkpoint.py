"""Safe checkpoints: round trip, tamper detection, and proof that crafted pickles never run."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch

from encoder_audit import __version__
from encoder_audit.errors import CheckpointError
from encoder_audit.models import create_encoder, load_encoder_net, load_state, read_sidecar, save_encoder, save_state
from encoder_audit.models.checkpoint import sha256_file
from encoder_audit.victim import load_encoder


class _Payload:
    """Unpickling this object runs ``touch MARKER`` (the classic pickle code-execution exploit)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch '{self.marker}'",))


def _evil_pickle(marker: Path) -> bytes:
    return pickle.dumps({"state_dict": _Payload(marker)})


def _evil_torch_file(path: Path, marker: Path) -> None:
    # torch.save's zip format, whose data.pkl holds the payload: what a malicious "state.pt" looks like
    torch.save({"objective": _Payload(marker), "epoch": 1}, path)


def test_payload_is_live(tmp_path: Path) -> None:
    """Control: the payload really executes when unpickled, so the refusals below mean something."""
    marker = tmp_path / "CONTROL"
    pickle.loads(_evil_pickle(marker))
    assert marker.exists()


@pytest.fixture
def net():  # type: ignore[no-untyped-def]
    torch.manual_seed(3)
    enc = create_encoder("cnn-small", in_channels=3, image_size=16, mean=(0.1, 0.2, 0.3), std=(0.9, 0.8, 0.7))
    with torch.no_grad():  # make batch-norm statistics non-trivial so they must round-trip too
        enc.train()(torch.rand(8, 3, 16, 16))
    return enc.eval()


def test_round_trip_gives_identical_embeddings_and_sidecar(tmp_path: Path, net) -> None:  # type: ignore[no-untyped-def]
    path = save_encoder(
        tmp_path / "enc", net, training={"method": "simclr", "epochs": 3}, data_manifest="abc", extra={"note": "x"}
    )
    assert path == tmp_path / "enc.safetensors" and (tmp_path / "enc.json").is_file()
    loaded, meta = load_encoder_net(path)
    x = torch.rand(5, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))
    assert not loaded.training
    assert meta["architecture"] == "cnn-small"
    assert meta["input_shape"] == [3, 16, 16]
    norm = meta["normalization"]
    torch.testing.assert_close(torch.tensor(norm["mean"]), torch.tensor([0.1, 0.2, 0.3]))
    torch.testing.assert_close(torch.tensor(norm["std"]), torch.tensor([0.9, 0.8, 0.7]))
    assert meta["embedding_dim"] == 128
    assert meta["versions"]["encoder_audit"] == __version__ and meta["versions"]["torch"] == torch.__version__
    assert meta["weights_sha256"] == sha256_file(path)
    assert meta["training"] == {"method": "simclr", "epochs": 3}
    assert meta["data_manifest_sha256"] == "abc" and meta["note"] == "x"
    assert read_sidecar(path) == meta == read_sidecar(tmp_path / "enc.json") == read_sidecar(tmp_path / "enc")
    # the victim-side loader gives the same network
    victim = load_encoder(path)
    assert victim.input_shape == (3, 16, 16) and victim.embedding_dim == 128
    with torch.no_grad():
        torch.testing.assert_close(victim.embed(x), net(x))


def test_extra_fields_cannot_replace_checkpoint_facts(tmp_path: Path, net) -> None:  # type: ignore[no-untyped-def]
    for key in ("architecture", "weights_sha256", "input_shape"):
        with pytest.raises(ValueError, match=key):
            save_encoder(tmp_path / "enc", net, extra={key: "forged"})
    assert not list(tmp_path.iterdir())  # refused before anything was written


def test_directory_path_loads_encoder_safetensors(tmp_path: Path, net) -> None:  # type: ignore[no-untyped-def]
    save_encoder(tmp_path / "encoder.safetensors", net)
    loaded, _ = load_encoder_net(tmp_path)
    assert loaded.arch == "cnn-small"


def test_tampered_weights_are_refused(tmp_path: Path, net) -> None:  # type: ignore[no-untyped-def]
    path = save_encoder(tmp_path / "enc", net)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # flip bits inside the last tensor
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        load_encoder_net(path)
    with pytest.raises(CheckpointError, match="sha256"):
        load_encoder(path)


def test_sidecar_without_sha256_is_refused(tmp_path: Path, net) -> None:  # type: ignore[no-untyped-def]
    path = save_encoder(tmp_path / "enc", net)
    sidecar = tmp_path / "enc.json"
    meta = json.loads(sidecar.read_text())
    del meta["weights_sha256"]
    sidecar.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="sha256"):
        load_encoder_net(path)


def test_missing_files_give_clear_errors(tmp_path: Path, net) -> None:  # type: ignore[no-untyped-def]
    path = save_encoder(tmp_path / "enc", net)
    (tmp_path / "enc.json").unlink()
    with pytest.raises(CheckpointError, match=r"sidecar .*enc.json.* not found"):
        load_encoder_net(path)
    path2 = save_encoder(tmp_path / "two", net)
    path2.unlink()
    with pytest.raises(CheckpointError, match=r"weights .*two.safetensors.* not found"):
        load_encoder_net(path2)
    with pytest.raises(CheckpointError, match="not found"):
        load_encoder(tmp_path / "nothing-here")


@pytest.mark.parametrize(
    "edit",
    [
        lambda m: {**m, "architecture": "resnet18"},  # weights do not fit
        lambda m: {**m, "architecture": "no-such-net"},
        lambda m: {**m, "input_shape": [3, 16]},
        lambda m: {**m, "input_shape": [2, 16, 16]},
        lambda m: {k: v for k, v in m.items() if k != "architecture"},
    ],
)
def test_inconsistent_sidecar_is_a_checkpoint_error(tmp_path: Path, net, edit) -> None:  # type: ignore[no-untyped-def]
    path = save_encoder(tmp_path / "enc", net)
    sidecar = tmp_path / "enc.json"
    sidecar.write_text(json.dumps(edit(json.loads(sidecar.read_text()))))
    with pytest.raises(CheckpointError):
        load_encoder_net(path)


def test_invalid_json_sidecar(tmp_path: Path, net) -> None:  # type: ignore[no-untyped-def]
    path = save_encoder(tmp_path / "enc", net)
    (tmp_path / "enc.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_encoder_net(path)


# --- crafted pickles ------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".pkl", ".bin", ".ckpt"])
def test_pickle_files_are_refused_by_name(tmp_path: Path, suffix: str) -> None:
    marker = tmp_path / "PWNED"
    evil = tmp_path / f"x{suffix}"
    evil.write_bytes(_evil_pickle(marker))
    (tmp_path / "x.json").write_text(json.dumps({"architecture": "cnn-small", "input_shape": [1, 28, 28]}))
    for loader in (load_encoder, load_encoder_net, read_sidecar):
        with pytest.raises(CheckpointError, match="pickle"):
            loader(evil)
    assert not marker.exists()


@pytest.mark.parametrize("flavour", ["raw-pickle", "torch-zip"])
def test_pickle_disguised_as_safetensors_is_refused(tmp_path: Path, flavour: str) -> None:
    marker = tmp_path / "PWNED"
    evil = tmp_path / "x.safetensors"
    if flavour == "raw-pickle":
        evil.write_bytes(_evil_pickle(marker))
    else:
        _evil_torch_file(evil, marker)
    forged = {
        "format_version": 1,
        "kind": "encoder",
        "architecture": "cnn-small",
        "input_shape": [1, 28, 28],
        "normalization": {"mean": [0.5], "std": [0.5]},
        "embedding_dim": 128,
        "weights_sha256": sha256_file(evil),  # the forger controls the sidecar too
    }
    (tmp_path / "x.json").write_text(json.dumps(forged))
    with pytest.raises(CheckpointError, match="not a valid safetensors"):
        load_encoder_net(evil)
    with pytest.raises(CheckpointError, match="not a valid safetensors"):
        load_encoder(evil)
    assert not marker.exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("flavour", ["raw-pickle", "torch-zip"])
def test_malicious_training_state_is_refused(tmp_path: Path, flavour: str) -> None:
    marker = tmp_path / "PWNED"
    state = tmp_path / "state.pt"
    if flavour == "raw-pickle":
        state.write_bytes(_evil_pickle(marker))
    else:
        _evil_torch_file(state, marker)
    with pytest.raises(CheckpointError, match="refusing to load"):
        load_state(state)
    assert not marker.exists()


def test_state_round_trip_and_errors(tmp_path: Path) -> None:
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters())
    model(torch.rand(4, 3)).sum().backward()
    opt.step()
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 2, "history": [{"loss": 0.5}]}
    path = save_state(tmp_path / "run" / "state.pt", state)
    back = load_state(path)
    assert back["epoch"] == 2 and back["history"] == [{"loss": 0.5}]
    torch.testing.assert_close(back["model"]["weight"], model.weight.detach())
    fresh = torch.optim.Adam(model.parameters())
    fresh.load_state_dict(back["optimizer"])
    assert not list(path.parent.glob(".*.tmp"))  # atomic write leaves no temporary file
    with pytest.raises(CheckpointError, match="not found"):
        load_state(tmp_path / "missing.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="dictionary"):
        load_state(tmp_path / "list.pt")
