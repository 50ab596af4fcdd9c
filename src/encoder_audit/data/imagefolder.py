"""``imagefolder:PATH``: a folder of PNG/JPEG files, labelled by class sub-folder or unlabeled.

Layouts (torchvision's ``ImageFolder`` convention, plus unlabeled folders):

- ``PATH/<class>/**/<image>``: one sub-folder per class; labels are the class folders' indices in
  sorted order, ``class_names`` their names. Loose files beside the class folders are ignored.
- ``PATH/<image>`` with no sub-folders: an unlabeled set (``labels`` is None).
- ``PATH/train/...``, ``PATH/test/...``: if every sub-folder of PATH is a split name (train, test,
  val, valid, validation, unlabeled), ``split`` picks one; otherwise the whole folder is the dataset
  whatever ``split`` says.

Every image is center-cropped to a square, resized to ``size`` (default: the side of the first
image's square) and converted to ``channels`` (default 3 unless every image is grayscale). Images with
more than 8 bits per sample (16-bit PNG/TIFF) are scaled to 8 bits by :func:`to_8bit`. Text
sidecars (``.txt .md .json .csv .yaml .yml``) and hidden files are skipped; any other file that is not
a decodable image is an error naming it. ``ImageDataset.paths`` keeps each image's path relative to
PATH, so a tool that rewrites images can write them back at the same relative places.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import CorruptFileError, DataNotFoundError
from .base import DatasetInfo, ImageDataset, channel_stats, register_dataset

log = logging.getLogger(__name__)

SIDECAR_SUFFIXES = frozenset({".txt", ".md", ".json", ".csv", ".yaml", ".yml"})
SPLIT_DIRS = frozenset({"train", "test", "val", "valid", "validation", "unlabeled"})
_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


def _visible(p: Path) -> bool:
    return not p.name.startswith(".") and p.name not in ("Thumbs.db", "desktop.ini", "__MACOSX")


def _image_files(folder: Path, recursive: bool) -> list[Path]:
    """Candidate image files of ``folder`` in sorted order (hidden files and text sidecars skipped)."""
    it = folder.rglob("*") if recursive else folder.iterdir()
    files = []
    for p in it:
        rel = p.relative_to(folder).parts
        if not all(_visible(Path(part)) for part in rel) or not p.is_file():
            continue
        if p.suffix.lower() in SIDECAR_SUFFIXES:
            log.debug("skipping sidecar file %s", p)
            continue
        files.append(p)
    return sorted(files, key=lambda q: q.relative_to(folder).as_posix())


def _open(path: Path) -> tuple[object, bool]:
    """(decoded PIL image with EXIF orientation applied and no alpha, whether it is grayscale)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            gray = im.mode in _GRAY_MODES or (im.mode == "P" and _palette_is_gray(im))
            im = ImageOps.exif_transpose(im)
            im, _ = to_8bit(im)
            im = im.convert("L" if gray else "RGB")
            return im, gray
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise CorruptFileError(f"{path} is not a readable image (PNG/JPEG expected): {exc}") from None


_HIGH_DEPTH = {"I;16": 16, "I;16B": 16, "I;16L": 16, "I;16N": 16, "I": 32, "F": 32}


def to_8bit(im: Any) -> tuple[Any, int]:
    """A PIL image with more than 8 bits per sample as an 8-bit ``L`` image, and its source bit depth.

    16-bit samples (``I;16*``, and ``I`` holding values up to 65535, which is how Pillow opens many 16-bit
    files) are scaled by 255/65535 with rounding, so white stays white and a dark 16-bit image stays dark
    (not clipped to white as ``convert("L")`` does). Float images (``F``) must lie in [0, 1] or [0, 255].
    Images of 8 bits or fewer are returned unchanged (depth 8).

    Raises:
        ValueError: a 32-bit integer image with values outside [0, 65535], or a float image outside
            [0, 255] or not finite.
    """
    from PIL import Image

    mode = im.mode
    if mode not in _HIGH_DEPTH:
        return im, 8
    arr = np.asarray(im)
    if mode == "F":
        if not np.isfinite(arr).all() or arr.min(initial=0) < 0 or arr.max(initial=0) > 255:
            raise ValueError("a floating-point image must hold values in [0, 1] or [0, 255]")
        scaled = arr * 255.0 if arr.max(initial=0) <= 1.0 else arr
        return Image.fromarray(np.rint(scaled).clip(0, 255).astype(np.uint8), mode="L"), 32
    wide = arr.astype(np.int64)
    if wide.min(initial=0) < 0 or wide.max(initial=0) > 65535:
        raise ValueError(f"a {mode} image with values outside [0, 65535] cannot be read as 16-bit")
    out = np.rint(wide * (255.0 / 65535.0)).clip(0, 255).astype(np.uint8)
    return Image.fromarray(out, mode="L"), 16


def _palette_is_gray(im: object) -> bool:
    rgb = np.asarray(im.convert("RGB"))  # type: ignore[attr-defined]
    return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())


def _square(im: object, size: int) -> object:
    """Center-crop to a square and resize to ``size`` (antialiased bicubic)."""
    from PIL import Image

    w, h = im.size  # type: ignore[attr-defined]
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    im = im.crop((left, top, left + s, top + s))  # type: ignore[attr-defined]
    if s != size:
        im = im.resize((size, size), Image.Resampling.BICUBIC)  # type: ignore[attr-defined]
    return im


def _resolve_split_dir(folder: Path, split: str) -> Path:
    subdirs = [p for p in folder.iterdir() if p.is_dir() and _visible(p)]
    if subdirs and all(p.name.lower() in SPLIT_DIRS for p in subdirs):
        match = [p for p in subdirs if p.name.lower() == split.lower()]
        if not match:
            names = ", ".join(sorted(p.name for p in subdirs))
            raise ValueError(f"imagefolder {folder} has split folders {names}; no {split!r}")
        return match[0]
    return folder


@register_dataset("imagefolder", help="imagefolder:PATH, class sub-folders of PNG/JPEG (or a flat unlabeled folder)")
def imagefolder(
    split: str = "train",
    root: Path | None = None,
    download: bool = False,
    path: str | Path | None = None,
    size: int | None = None,
    channels: int | None = None,
    progress: bool | None = False,
) -> ImageDataset:
    """imagefolder:PATH, class sub-folders of PNG/JPEG (or a flat unlabeled folder).

    Args:
        split: picks ``PATH/<split>`` if PATH is divided into split folders; otherwise only recorded.
        root: unused (PATH is explicit); accepted for a uniform signature.
        download: unused; a local folder cannot be fetched.
        path: the folder (relative paths are taken from the working directory).
        size: side length of the square images (default: the first image's shorter side).
        channels: 1 or 3 (default 3, or 1 if every image is grayscale).
        progress: show a progress bar while decoding.

    Raises:
        DataNotFoundError: PATH does not exist or holds no images.
        CorruptFileError: a file is not a decodable image (the message names it).
        ValueError: bad ``size``/``channels`` or an empty class folder.
    """
    if path is None:
        raise ValueError("imagefolder needs a folder: use the name imagefolder:PATH")
    if channels is not None and int(channels) not in (1, 3):
        raise ValueError(f"imagefolder channels must be 1 or 3, not {channels}")
    if size is not None and not 1 <= int(size) <= 4096:
        raise ValueError(f"imagefolder size must be between 1 and 4096, not {size}")
    base = Path(path).expanduser()
    if not base.is_dir():
        raise DataNotFoundError(f"imagefolder: {base} is not a folder (use imagefolder:PATH with a folder of images)")
    folder = _resolve_split_dir(base, split)
    class_dirs = sorted((p for p in folder.iterdir() if p.is_dir() and _visible(p)), key=lambda p: p.name)
    files: list[Path] = []
    labels: list[int] | None
    if class_dirs:
        labels = []
        for k, cdir in enumerate(class_dirs):
            found = _image_files(cdir, recursive=True)
            if not found:
                raise ValueError(f"imagefolder: class folder {cdir} holds no images")
            files += found
            labels += [k] * len(found)
        loose = [p for p in folder.iterdir() if p.is_file() and _visible(p)]
        if loose:
            log.warning("imagefolder: ignoring %d file(s) beside the class folders in %s", len(loose), folder)
    else:
        labels = None
        files = _image_files(folder, recursive=False)
    if not files:
        raise DataNotFoundError(f"imagefolder: no images in {folder} (expected class sub-folders of PNG/JPEG files)")

    decoded = []
    side = int(size) if size is not None else None
    all_gray = True
    for f in tqdm(files, disable=progress is False, desc="decode", unit="img", leave=False):
        im, gray = _open(f)
        all_gray &= gray
        if side is None:
            side = min(im.size)  # type: ignore[attr-defined]
        decoded.append(_square(im, side))
    assert side is not None
    ch = int(channels) if channels is not None else (1 if all_gray else 3)
    mode = "L" if ch == 1 else "RGB"
    arrays = [np.asarray(im.convert(mode) if im.mode != mode else im) for im in decoded]  # type: ignore[attr-defined]
    stack = np.stack(arrays)
    images = torch.from_numpy(stack[:, None] if ch == 1 else np.ascontiguousarray(stack.transpose(0, 3, 1, 2)))
    mean, std = channel_stats(images)
    names = tuple(p.name for p in class_dirs)
    info = DatasetInfo(
        name=f"imagefolder:{path}",
        channels=ch,
        image_size=side,
        num_classes=len(class_dirs),
        class_names=names,
        mean=mean,
        std=std,
    )
    rel = [f.relative_to(base).as_posix() for f in files]
    return ImageDataset(
        images=images,
        labels=None if labels is None else torch.tensor(labels, dtype=torch.int64),
        info=info,
        split=split,
        paths=rel,
    )
