"""Image-caption pairs: captions generated from class names, a ``captions.csv`` loader, a word tokenizer.

CLIP-style training needs (image, caption) pairs. For labelled image sets we follow the common
small-scale recipe (research notes, poisoning.md Sec. 5.1: "captions from class names via templates")
and write one caption per image from a bank of varied templates and per-class synonyms, so that
captions are not one-to-one with labels. Zero-shot classification uses a *separate* prompt list in
the style of OpenAI's ImageNet templates ("a photo of a {}."), ensembled per class (CLIP Sec. 3.1.4).

Real image-text sets load from a CSV with columns ``image`` (path, relative to the CSV's folder) and
``caption`` via :func:`load_captions_csv`.

The tokenizer is word-level: lower-cased words and punctuation marks, a vocabulary built from the
caption corpus, and four special tokens (``<pad>`` = 0, ``<unk>``, ``<sot>``, ``<eot>``). It is saved
inside the CLIP checkpoint's JSON sidecar (:meth:`WordTokenizer.to_dict`).
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CorruptFileError, DataNotFoundError
from .base import DatasetInfo, ImageDataset

__all__ = [
    "CAPTION_TEMPLATES",
    "SYNONYMS",
    "ZEROSHOT_TEMPLATES",
    "PairedDataset",
    "WordTokenizer",
    "caption_set",
    "class_synonyms",
    "generate_captions",
    "load_captions_csv",
    "make_paired",
    "replace_phrases",
    "synonym_table",
]

# Training captions: varied sentence frames around a class word; a few carry distractor context so
# that a caption is more than its label.
CAPTION_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a picture of the {}.",
    "an image of a {}.",
    "a grayscale photo of a {}.",
    "a low resolution photo of the {}.",
    "a close-up photo of a {}.",
    "my new {}.",
    "this is a {}.",
    "a {} on a plain background.",
    "product shot of a {}.",
    "a small {}.",
    "a cropped photo of the {}.",
    "look at this {}!",
    "here is a {} for sale.",
    "a blurry photo of a {}.",
    "the {} in the catalogue.",
    "a black and white picture of a {}.",
    "i really like this {}.",
    "a {}, centred in the frame.",
    "a scan of a {}.",
)

# Zero-shot prompts (in the style of OpenAI's 80 ImageNet templates; CLIP Sec. 3.1.4 ensembles them).
# Every word also occurs in CAPTION_TEMPLATES, so no prompt word is untrained at CPU scale.
ZEROSHOT_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a picture of a {}.",
    "an image of the {}.",
    "a photo of the {}.",
    "a black and white photo of a {}.",
    "a low resolution photo of a {}.",
    "a close-up photo of the {}.",
    "this is a {}.",
)

# Per-dataset synonyms; the first entry of each list is the canonical (zero-shot) class name.
SYNONYMS: dict[str, dict[str, tuple[str, ...]]] = {
    "fashion-mnist": {
        "t-shirt": ("t-shirt", "tee", "top", "tshirt"),
        "trouser": ("trouser", "pair of trousers", "pants", "jeans"),
        "pullover": ("pullover", "sweater", "jumper"),
        "dress": ("dress", "gown", "frock"),
        "coat": ("coat", "jacket", "overcoat"),
        "sandal": ("sandal", "flip flop", "summer sandal"),
        "shirt": ("shirt", "blouse", "button-down shirt"),
        "sneaker": ("sneaker", "trainer", "running shoe"),
        "bag": ("bag", "handbag", "purse"),
        "ankle boot": ("ankle boot", "boot", "bootie"),
    },
    "digits": {
        "0": ("zero", "digit zero", "number 0"),
        "1": ("one", "digit one", "number 1"),
        "2": ("two", "digit two", "number 2"),
        "3": ("three", "digit three", "number 3"),
        "4": ("four", "digit four", "number 4"),
        "5": ("five", "digit five", "number 5"),
        "6": ("six", "digit six", "number 6"),
        "7": ("seven", "digit seven", "number 7"),
        "8": ("eight", "digit eight", "number 8"),
        "9": ("nine", "digit nine", "number 9"),
    },
    "cifar10": {
        "airplane": ("airplane", "plane", "jet", "aircraft"),
        "automobile": ("car", "automobile", "sedan"),
        "bird": ("bird", "sparrow", "small bird"),
        "cat": ("cat", "kitten", "house cat"),
        "deer": ("deer", "fawn", "stag"),
        "dog": ("dog", "puppy", "hound"),
        "frog": ("frog", "toad", "tree frog"),
        "horse": ("horse", "pony", "stallion"),
        "ship": ("ship", "boat", "vessel"),
        "truck": ("truck", "lorry", "pickup truck"),
    },
}


def class_synonyms(info: DatasetInfo) -> list[tuple[str, ...]]:
    """Synonym lists per class of ``info`` (canonical name first); unknown datasets use the class names.

    Raises:
        ValueError: the dataset has no class names.
    """
    if not info.class_names:
        raise ValueError(f"dataset {info.name!r} has no class names to caption")
    table = SYNONYMS.get(info.name, {})
    out = []
    for name in info.class_names:
        syn = table.get(name)
        out.append(tuple(syn) if syn else (name.replace("_", " "),))
    return out


def synonym_table(info: DatasetInfo) -> dict[str, tuple[str, ...]]:
    """``{phrase: its other synonyms}`` over the classes of ``info`` only (another dataset's words never appear).

    >>> from encoder_audit.data.base import DatasetInfo
    >>> synonym_table(DatasetInfo("cifar10", 3, 32, 2, ("cat", "dog")))["cat"]
    ('kitten', 'house cat')
    """
    table: dict[str, tuple[str, ...]] = {}
    for words in class_synonyms(info):
        for w in words:
            others = tuple(x for x in words if x != w)
            if others:
                table[w] = tuple(dict.fromkeys(table.get(w, ()) + others))
    return table


def _phrase_pattern(phrases: Sequence[str]) -> re.Pattern[str]:
    # longest first, so "house cat" wins over "cat"; whole words only ("cat" never matches "catalogue")
    alts = "|".join(re.escape(p) for p in sorted(phrases, key=len, reverse=True))
    return re.compile(rf"(?<![\w-])(?:{alts})(?![\w-])")


def replace_phrases(text: str, table: dict[str, tuple[str, ...]], count: int, rng: np.random.Generator) -> str:
    """Replace up to ``count`` whole-word occurrences of ``table``'s phrases by a random synonym each.

    Occurrences are found left to right without overlap (longest phrase first); which of them are
    replaced is drawn from ``rng``.
    """
    if count <= 0 or not table:
        return text
    matches = list(_phrase_pattern(list(table)).finditer(text))
    if not matches:
        return text
    chosen = sorted(rng.choice(len(matches), size=min(count, len(matches)), replace=False).tolist())
    out, last = [], 0
    for i in chosen:
        m = matches[i]
        options = table[m.group(0)]
        out += [text[last : m.start()], options[int(rng.integers(len(options)))]]
        last = m.end()
    return "".join(out) + text[last:]


def caption_set(
    label_words: Sequence[str],
    templates: Sequence[str] = CAPTION_TEMPLATES,
    corpus: Sequence[str] | None = None,
) -> list[str]:
    """Captions that name a label: Carlini & Terzis' caption set C(y').

    Variant (b) fills every template with every synonym; variant (a), when ``corpus`` is given, is every
    corpus caption containing one of the words as a whole word (the notes' HanxunH/RoCLIP recipe).

    Args:
        label_words: the label's synonyms.
        templates: sentence frames with one ``{}``.
        corpus: training captions to search (variant a) or None (variant b).
    """
    if corpus is not None:
        pats = [re.compile(rf"(?<![\w-]){re.escape(w.lower())}(?![\w-])") for w in label_words]
        found = [c for c in corpus if any(p.search(c.lower()) for p in pats)]
        if found:
            return sorted(set(found))
    return [t.format(w) for w in label_words for t in templates]


def generate_captions(
    labels: torch.Tensor | np.ndarray,
    info: DatasetInfo,
    *,
    seed: int = 0,
    templates: Sequence[str] = CAPTION_TEMPLATES,
) -> list[str]:
    """One caption per image: a random template filled with a random synonym of its class.

    Args:
        labels: (N,) class indices.
        info: the dataset's info (class names).
        seed: caption randomness (independent of training randomness).
        templates: sentence frames with one ``{}``.
    """
    syn = class_synonyms(info)
    lab = np.asarray(labels, dtype=np.int64)
    if lab.size and (lab.min() < 0 or lab.max() >= len(syn)):
        raise ValueError(f"labels must lie in [0, {len(syn)}), got range [{lab.min()}, {lab.max()}]")
    rng = np.random.default_rng(seed)
    t_idx = rng.integers(0, len(templates), size=len(lab))
    s_draw = rng.random(len(lab))
    return [templates[t].format(syn[y][int(s * len(syn[y]))]) for y, t, s in zip(lab, t_idx, s_draw)]


_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*|[^\sa-z0-9]")


@dataclass
class WordTokenizer:
    """Word-level tokenizer with a vocabulary built from a caption corpus.

    Ids: 0 ``<pad>``, 1 ``<unk>``, 2 ``<sot>``, 3 ``<eot>``, then words by decreasing frequency.

    >>> tok = WordTokenizer.build(["a photo of a bag.", "a bag"])
    >>> tok.encode(["a bag"], context_length=6).tolist()
    [[2, 4, 5, 3, 0, 0]]
    """

    vocab: list[str] = field(default_factory=list)
    SPECIALS: tuple[str, ...] = ("<pad>", "<unk>", "<sot>", "<eot>")

    def __post_init__(self) -> None:
        if not self.vocab:
            self.vocab = list(self.SPECIALS)
        if tuple(self.vocab[:4]) != self.SPECIALS:
            raise ValueError("a tokenizer vocabulary must start with <pad>, <unk>, <sot>, <eot>")
        self._index = {w: i for i, w in enumerate(self.vocab)}

    @staticmethod
    def split(text: str) -> list[str]:
        """Lower-case words (hyphens and apostrophes kept inside words) and single punctuation marks."""
        return _WORD.findall(text.lower())

    @classmethod
    def build(cls, corpus: Iterable[str], *, min_count: int = 1, max_size: int | None = None) -> WordTokenizer:
        """Vocabulary of every word seen at least ``min_count`` times (most frequent first)."""
        counts = Counter(w for text in corpus for w in cls.split(text))
        words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        if max_size is not None:
            words = words[: max(0, max_size - len(cls.SPECIALS))]
        return cls(list(cls.SPECIALS) + words)

    def __len__(self) -> int:
        return len(self.vocab)

    @property
    def unk_id(self) -> int:
        return 1

    def encode(self, texts: Sequence[str], context_length: int = 16) -> torch.Tensor:
        """Token ids (N, context_length): ``<sot>`` words ``<eot>``, truncated, padded with 0."""
        if isinstance(texts, str):
            texts = [texts]
        out = torch.zeros(len(texts), context_length, dtype=torch.long)
        for i, text in enumerate(texts):
            words = [self._index.get(w, 1) for w in self.split(text)][: context_length - 2]
            ids = [2, *words, 3]
            out[i, : len(ids)] = torch.tensor(ids)
        return out

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        words = [self.vocab[int(i)] for i in ids if int(i) > 3 or int(i) == 1]
        return " ".join(words)

    def unknown_words(self, texts: Iterable[str]) -> list[str]:
        """Words of ``texts`` missing from the vocabulary (e.g. to check zero-shot class names)."""
        return sorted({w for t in texts for w in self.split(t) if w not in self._index})

    def to_dict(self) -> dict[str, Any]:
        return {"type": "word", "vocab": list(self.vocab)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WordTokenizer:
        if d.get("type") != "word" or not isinstance(d.get("vocab"), list):
            raise ValueError("not a word-tokenizer description")
        return cls([str(w) for w in d["vocab"]])


@dataclass
class PairedDataset:
    """Images with one caption each (row i of ``images`` goes with ``captions[i]``)."""

    images: ImageDataset
    captions: list[str]

    def __post_init__(self) -> None:
        if len(self.captions) != len(self.images):
            raise ValueError(f"{len(self.images)} images but {len(self.captions)} captions")

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index: Sequence[int] | np.ndarray | torch.Tensor) -> PairedDataset:
        idx = np.asarray(index, dtype=np.int64)
        return PairedDataset(self.images.subset(idx), [self.captions[i] for i in idx])

    def as_training_dataset(self) -> ImageDataset:
        """The images with their *row numbers* as labels: what the CLIP objective indexes captions by."""
        assert self.images.indices is not None
        return ImageDataset(
            self.images.images,
            torch.arange(len(self), dtype=torch.long),
            self.images.info,
            self.images.split,
            self.images.indices,
        )


def make_paired(ds: ImageDataset, *, seed: int = 0, templates: Sequence[str] = CAPTION_TEMPLATES) -> PairedDataset:
    """Caption a labelled dataset with :func:`generate_captions`."""
    if ds.labels is None:
        raise ValueError(f"dataset {ds.name!r} has no labels to caption; use load_captions_csv for image-text data")
    return PairedDataset(ds, generate_captions(ds.labels, ds.info, seed=seed, templates=templates))


def load_captions_csv(
    path: str | Path,
    *,
    image_size: int = 32,
    channels: int = 3,
    name: str | None = None,
) -> PairedDataset:
    """Read an image-text set from a CSV with columns ``image`` and ``caption``.

    Image paths are relative to the CSV's folder (absolute paths are used as they are). Every image is
    converted to ``channels`` and resized to ``image_size`` squared.

    Raises:
        DataNotFoundError: the CSV or an image is missing.
        CorruptFileError: missing columns, an empty file or an unreadable image.
    """
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        raise DataNotFoundError(f"captions file {p} not found")
    with open(p, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        cols = set(reader.fieldnames or [])
        if not {"image", "caption"} <= cols:
            raise CorruptFileError(f"{p} must have columns 'image' and 'caption', found {sorted(cols)}")
        rows = [(r["image"], r["caption"]) for r in reader]
    if not rows:
        raise CorruptFileError(f"{p} holds no rows")
    mode = "L" if channels == 1 else "RGB"
    arrays = []
    for rel, _ in rows:
        ip = Path(rel) if Path(rel).is_absolute() else p.parent / rel
        if not ip.is_file():
            raise DataNotFoundError(f"image {ip} listed in {p} not found")
        try:
            with Image.open(ip) as im:
                im = im.convert(mode).resize((image_size, image_size), Image.Resampling.BILINEAR)
                a = np.asarray(im, dtype=np.uint8)
        except (UnidentifiedImageError, OSError) as exc:
            raise CorruptFileError(f"cannot read image {ip}: {exc}") from None
        arrays.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))
    images = torch.from_numpy(np.stack(arrays))
    from .base import channel_stats

    mean, std = channel_stats(images)
    info = DatasetInfo(name or p.stem, channels, image_size, 0, (), mean, std)
    return PairedDataset(ImageDataset(images, None, info, "train"), [c for _, c in rows])
