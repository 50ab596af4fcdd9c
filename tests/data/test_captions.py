"""Caption generation, caption sets, the word tokenizer and the captions.csv loader."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from encoder_audit.data import DatasetInfo, create_dataset
from encoder_audit.data.captions import (
    CAPTION_TEMPLATES,
    ZEROSHOT_TEMPLATES,
    WordTokenizer,
    caption_set,
    class_synonyms,
    generate_captions,
    load_captions_csv,
    make_paired,
)
from encoder_audit.errors import CorruptFileError, DataNotFoundError

FMNIST = DatasetInfo(
    "fashion-mnist",
    1,
    28,
    10,
    ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"),
)


def test_generated_captions_name_the_class_and_vary() -> None:
    labels = torch.tensor([1] * 200 + [8] * 200)
    caps = generate_captions(labels, FMNIST, seed=3)
    syn = class_synonyms(FMNIST)
    assert all(any(w in c for w in syn[1]) for c in caps[:200])
    assert all(any(w in c for w in syn[8]) for c in caps[200:])
    assert len(set(caps)) > 40  # templates x synonyms, not one caption per class
    assert caps == generate_captions(labels, FMNIST, seed=3)
    assert caps != generate_captions(labels, FMNIST, seed=4)


def test_unknown_dataset_uses_class_names_and_rejects_bad_labels() -> None:
    info = DatasetInfo("x", 1, 8, 2, ("red_thing", "blue"))
    assert class_synonyms(info) == [("red thing",), ("blue",)]
    with pytest.raises(ValueError):
        generate_captions(torch.tensor([2]), info)
    with pytest.raises(ValueError):
        class_synonyms(DatasetInfo("y", 1, 8, 0))


def test_caption_set_variants() -> None:
    b = caption_set(("bag", "purse"), CAPTION_TEMPLATES)
    assert len(b) == 2 * len(CAPTION_TEMPLATES) and all("bag" in c or "purse" in c for c in b)
    corpus = ["a handbag.", "my bag is red.", "a bagel", "a coat"]
    a = caption_set(("bag",), CAPTION_TEMPLATES, corpus)
    assert a == ["my bag is red."]  # whole words only: not 'handbag', not 'bagel'
    assert caption_set(("zebra",), ("a {}",), corpus) == ["a zebra"]  # no match: templates


def test_tokenizer_round_trip_and_specials() -> None:
    corpus = ["a photo of a t-shirt.", "my new ankle boot!", "a bag"]
    tok = WordTokenizer.build(corpus)
    assert tok.vocab[:4] == ["<pad>", "<unk>", "<sot>", "<eot>"]
    ids = tok.encode(["a photo of a t-shirt.", "a zebra"], context_length=8)
    assert ids.shape == (2, 8) and ids.dtype == torch.long
    assert ids[0, 0] == 2 and 3 in ids[0].tolist()
    assert tok.decode(ids[0]) == "a photo of a t-shirt ."
    assert ids[1].tolist()[:4] == [2, tok.vocab.index("a"), 1, 3]  # unknown word -> <unk>
    assert tok.unknown_words(["a zebra"]) == ["zebra"]
    long = tok.encode(["a " * 50], context_length=6)[0].tolist()
    assert long[0] == 2 and long[-1] == 3 and len(long) == 6
    assert WordTokenizer.from_dict(tok.to_dict()).vocab == tok.vocab
    with pytest.raises(ValueError):
        WordTokenizer(["a", "b"])


def test_zeroshot_prompt_words_occur_in_caption_templates() -> None:
    cap_words = {w for t in CAPTION_TEMPLATES for w in WordTokenizer.split(t.format(""))}
    zs_words = {w for t in ZEROSHOT_TEMPLATES for w in WordTokenizer.split(t.format(""))}
    assert zs_words <= cap_words


def test_make_paired_and_training_rows() -> None:
    ds = create_dataset("synthetic", "train", n=20)
    p = make_paired(ds, seed=0)
    assert len(p) == 20 and all("pattern" in c for c in p.captions)
    tr = p.as_training_dataset()
    assert torch.equal(tr.labels, torch.arange(20)) and torch.equal(tr.images, ds.images)
    sub = p.subset([3, 5])
    assert sub.captions == [p.captions[3], p.captions[5]]


def test_load_captions_csv(tmp_path) -> None:
    (tmp_path / "img").mkdir()
    for i in range(3):
        Image.fromarray(np.full((10, 12, 3), 40 * i, dtype=np.uint8)).save(tmp_path / "img" / f"{i}.png")
    (tmp_path / "captions.csv").write_text("image,caption\n" + "".join(f"img/{i}.png,a photo {i}\n" for i in range(3)))
    p = load_captions_csv(tmp_path / "captions.csv", image_size=8, channels=1)
    assert p.images.images.shape == (3, 1, 8, 8) and p.captions[2] == "a photo 2"
    assert int(p.images.images[2].float().mean()) == 80
    (tmp_path / "bad.csv").write_text("path,text\nx,y\n")
    with pytest.raises(CorruptFileError):
        load_captions_csv(tmp_path / "bad.csv")
    (tmp_path / "missing.csv").write_text("image,caption\nnope.png,a\n")
    with pytest.raises(DataNotFoundError):
        load_captions_csv(tmp_path / "missing.csv")
