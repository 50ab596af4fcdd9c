from __future__ import annotations

import hashlib

import pytest
import yaml

from encoder_audit.errors import UserError
from encoder_audit.service.auth import KeySpec, KeyStore, add_key, generate_key, hash_key


def test_generated_keys_are_long_unique_and_prefixed():
    keys = {generate_key() for _ in range(200)}
    assert len(keys) == 200
    assert all(k.startswith("ea_") and len(k) == 3 + 43 for k in keys)


def test_hash_matches_hashlib_reference():
    key = "ea_example"
    assert hash_key(key) == hashlib.sha256(key.encode()).hexdigest()


def test_authenticate_right_wrong_and_missing_keys():
    k1, k2 = generate_key(), generate_key()
    store = KeyStore([KeySpec("a", hash_key(k1), budget=5), KeySpec("b", hash_key(k2))])
    assert store.authenticate(k1).name == "a"
    assert store.authenticate(k2).name == "b"
    assert store.authenticate(k1 + "x") is None
    assert store.authenticate(hash_key(k1)) is None  # the digest itself is not a key
    assert store.authenticate("") is None
    assert store.authenticate(None) is None
    assert store.authenticate("\udcff\x00weird") is None


def test_add_key_stores_only_digest_and_roundtrips(tmp_path):
    path = tmp_path / "keys.yaml"
    key = add_key(path, "alice", budget=10, rate=2.5)
    text = path.read_text()
    assert key not in text and hash_key(key) in text
    assert (path.stat().st_mode & 0o077) == 0  # not readable by others
    store = KeyStore.load(path)
    spec = store.authenticate(key)
    assert spec is not None and (spec.name, spec.budget, spec.rate, spec.bucket_size) == ("alice", 10, 2.5, 5.0)
    with pytest.raises(UserError, match="already exists"):
        add_key(path, "alice")
    new = add_key(path, "alice", replace=True)
    store = KeyStore.load(path)
    assert store.authenticate(key) is None and store.authenticate(new).name == "alice"


@pytest.mark.parametrize(
    "doc",
    [
        "keys: [1, 2]",
        "keys:\n  a: 3",
        "keys:\n  a:\n    sha256: abc",
        "keys:\n  a:\n    sha256: " + "0" * 64 + "\n    budget: -1",
        "keys:\n  a:\n    sha256: " + "0" * 64 + "\n    colour: red",
        "keys:\n  'bad name':\n    sha256: " + "0" * 64,
        "keys: {a: [",
    ],
)
def test_malformed_keys_files_are_user_errors(tmp_path, doc):
    path = tmp_path / "keys.yaml"
    path.write_text(doc)
    with pytest.raises(UserError):
        KeyStore.load(path)


def test_missing_keys_file_names_the_fix(tmp_path):
    with pytest.raises(UserError, match="keys create"):
        KeyStore.load(tmp_path / "nope.yaml")


def test_duplicate_digests_rejected():
    d = hash_key("x")
    with pytest.raises(ValueError, match="share one key"):
        KeyStore([KeySpec("a", d), KeySpec("b", d)])


def test_save_is_yaml_with_digests(tmp_path):
    store = KeyStore([KeySpec("a", hash_key("k"), budget=3)])
    store.save(tmp_path / "k.yaml")
    data = yaml.safe_load((tmp_path / "k.yaml").read_text())
    assert data == {"keys": {"a": {"sha256": hash_key("k"), "budget": 3, "rate": None}}}
