"""Protect a folder of images on disk: what ``encoder-audit protect FOLDER`` does.

:func:`protect_folder` reads every file under FOLDER (recursively; FOLDER is only read), crafts the
protection at a craft size that fits the images, resizes each perturbation to the image's own size with
nearest-neighbour interpolation (which keeps every value, so the L-inf budget is unchanged; the official
UC ``resize_type: noise`` mode) and writes ``OUT/<relative path>.png`` atomically, plus
``OUT/protect_manifest.json`` and, for UC, ``OUT/perturbations.safetensors``.

Nothing is lost on the way:

- **every input file is accounted for** in the manifest: protected (source and output path, cluster,
  size, measured L-inf on the written file) or skipped with the reason (hidden file, unreadable);
- **output names are unique**: ``a/b.jpg`` becomes ``a/b.png`` unless another input claims that
  name (``a/b.png``, ``a/B.JPG`` on a case-insensitive disk, ``a/b.jpg.png``); then the full name is
  kept (``a/b.jpg.png``) and, if that is taken too, a counter is added (``a/b.jpg.1.png``);
- **high bit depths** (16-bit PNG/TIFF) are scaled to 8 bits (255/65535), never clipped to white;
- **budgets** are validated (L-inf in (0, 1]) and measured on the written files.

With no surrogate, UC trains one on the folder itself (SimCLR ``cnn-small`` at the craft size, RGB kept
as RGB), reuses it from a cache keyed by the folder's contents, and says so with its training time. A
given surrogate whose input channels differ from the images (a grayscale Fashion-MNIST encoder on colour
photos) is refused, and one whose input is far smaller than the images (its perturbation would become a
visible mosaic of large blocks) is refused too, unless ``allow_mismatch``; K adapts to the folder size
with a warning.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...data.base import DatasetInfo, ImageDataset, channel_stats
from ...victim import Encoder, adapt_images

__all__ = [
    "MANIFEST",
    "FolderOptions",
    "fit_craft_size",
    "load_image",
    "output_names",
    "protect_folder",
]

log = logging.getLogger(__name__)

MANIFEST = "protect_manifest.json"
MAX_UPSCALE = 4.0  # a craft size this many times smaller than the images makes visible blocks
# UC generators sized for a CPU (the settings every CPU benchmark here uses); the official ones (ngf 64,
# 6 blocks, 50 epochs over every image per generator) take hours on a CPU. Flags and --set override them.
CPU_UC = {"ngf": 16, "n_blocks": 2, "epochs": 20, "batch_size": 32, "lr": 5e-3, "train_on": "members"}


@dataclass(frozen=True)
class FolderOptions:
    """How :func:`protect_folder` protects a folder.

    Attributes:
        method: protection name (``uc``, ``random``, ``em``, ``tap``, ``lsp``).
        surrogate: encoder or CLIP checkpoint; None trains (or reuses) one on the folder itself.
        clusters: K of K-means (UC) or protector classes (label-based baselines); None: 10 (the
            official ``num_clusters: 10``), lowered to fit a small folder (at least 2 images per cluster).
        eps: budget in [0, 1] pixel units (16/255, the UC default).
        norm: ``linf`` or ``l2``.
        epochs: UC generator epochs (None: the config's).
        train_on: UC ``all`` or ``members`` (None: the config's).
        craft_size: side of the crafted perturbation (None: the surrogate's input, or for a surrogate
            trained here :func:`fit_craft_size`).
        seed: seed of the surrogate, K-means and crafting.
        options: other fields of the method's config.
        overwrite: allow writing into a non-empty output folder.
        allow_mismatch: use a surrogate whose channels or size do not fit the images (logged).
        cache_dir: where surrogates trained on folders are kept (None: ``~/.cache/encoder-audit``).
        surrogate_epochs: SimCLR epochs of a surrogate trained on the folder.
        device: torch device.
        progress: progress bars.
    """

    method: str = "uc"
    surrogate: Path | None = None
    clusters: int | None = None
    eps: float = 16 / 255
    norm: str = "linf"
    epochs: int | None = None
    train_on: str | None = None
    craft_size: int | None = None
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    overwrite: bool = False
    allow_mismatch: bool = False
    cache_dir: Path | None = None
    surrogate_epochs: int = 30
    device: str = "cpu"
    progress: bool | None = False

    def __post_init__(self) -> None:
        from .base import check_eps

        check_eps(self.eps, self.norm)
        if self.clusters is not None and self.clusters < 2:
            raise ValueError(f"clusters must be >= 2, got {self.clusters}")
        if self.craft_size is not None and not 8 <= self.craft_size <= 512:
            raise ValueError(f"craft_size must be between 8 and 512, got {self.craft_size}")
        if self.surrogate_epochs < 1:
            raise ValueError("surrogate_epochs must be >= 1")


# --------------------------------------------------------------------------------------------- reading


def load_image(path: Path) -> tuple[torch.Tensor, int]:
    """(C, H, W) uint8 tensor of an image file (EXIF orientation applied) and its source bit depth.

    Grayscale stays 1 channel, everything else becomes RGB (alpha dropped); 16-bit images are scaled
    to 8 bits (:func:`encoder_audit.data.imagefolder.to_8bit`).

    Raises:
        Exception: the file is not a decodable image (Pillow's error).
    """
    from PIL import Image, ImageOps

    from ...data.imagefolder import to_8bit

    with Image.open(path) as img:
        img.load()
        img = ImageOps.exif_transpose(img)
        img, depth = to_8bit(img)
        gray = img.mode in ("1", "L", "LA", "La")
        arr = np.asarray(img.convert("L" if gray else "RGB"))
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous(), depth


def _scan(folder: Path) -> tuple[list[Path], list[dict[str, str]]]:
    """Files to read (sorted) and the skipped ones with their reason."""
    files, skipped = [], []
    for f in sorted(folder.rglob("*"), key=lambda p: p.relative_to(folder).as_posix()):
        if not f.is_file():
            continue
        rel = f.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            skipped.append({"path": rel.as_posix(), "reason": "hidden file (name or folder starts with '.')"})
            continue
        files.append(f)
    return files, skipped


def output_names(rels: list[Path]) -> list[Path]:
    """Unique output paths (``.png``) for input paths, in the same order.

    ``a/b.jpg`` becomes ``a/b.png`` when no other input wants that name; otherwise the full name is kept
    (``a/b.jpg.png``) and, if that too is taken, a counter is inserted (``a/b.jpg.1.png``). Names are
    compared case-insensitively, so the outputs are distinct on every file system.
    """
    wanted: dict[str, int] = {}
    short = [r.with_suffix(".png") for r in rels]
    for s in short:
        wanted[s.as_posix().lower()] = wanted.get(s.as_posix().lower(), 0) + 1
    taken: set[str] = set()
    out = []
    # an input already named *.png keeps its name when it is the only one wanting it; others give way
    order = sorted(range(len(rels)), key=lambda i: (rels[i].suffix.lower() != ".png", rels[i].as_posix()))
    chosen: dict[int, Path] = {}
    for i in order:
        r, s = rels[i], short[i]
        candidates = [s] if wanted[s.as_posix().lower()] == 1 else []
        if r.suffix.lower() == ".png" and s.as_posix().lower() not in taken:
            candidates.insert(0, s)
        candidates.append(r.with_name(r.name + ".png"))
        name = next((c for c in candidates if c.as_posix().lower() not in taken), None)
        n = 1
        while name is None or name.as_posix().lower() in taken:
            name = r.with_name(f"{r.name}.{n}.png")
            n += 1
        taken.add(name.as_posix().lower())
        chosen[i] = name
    out = [chosen[i] for i in range(len(rels))]
    return out


# --------------------------------------------------------------------------------------------- sizes


def fit_craft_size(images: list[torch.Tensor], *, lo: int = 16, hi: int = 64) -> int:
    """A craft size for a surrogate trained on these images: their median shorter side, clamped to
    [``lo``, ``hi``] and rounded down to a multiple of 4 (the UC generator halves twice)."""
    sides = sorted(min(int(im.shape[1]), int(im.shape[2])) for im in images)
    median = sides[len(sides) // 2]
    return max(lo, min(hi, median)) // 4 * 4


def _channels(images: list[torch.Tensor]) -> int:
    return 1 if all(im.shape[0] == 1 for im in images) else 3


def _check_fit(surrogate_shape: tuple[int, int, int], images: list[torch.Tensor], craft: int, allow: bool) -> list[str]:
    """Reasons the surrogate does not fit the images (raise unless ``allow``); returns what was adapted."""
    c_s = surrogate_shape[0]
    c_i = _channels(images)
    notes = []
    if c_s == 1 and c_i == 3:
        msg = (
            "the surrogate takes 1-channel (grayscale) images but the folder holds colour images: its perturbation "
            "would be the same on every channel and the surrogate never sees colour"
        )
        if not allow:
            raise ValueError(msg + "; omit --surrogate to train one on the folder, or pass --allow-mismatch")
        notes.append(msg + " (allowed)")
    elif c_s == 3 and c_i == 1:
        notes.append("grayscale images are repeated on 3 channels for the RGB surrogate; the perturbation is averaged")
    sides = sorted(min(int(im.shape[1]), int(im.shape[2])) for im in images)
    median = sides[len(sides) // 2]
    factor = median / craft
    if factor > MAX_UPSCALE:
        msg = (
            f"the perturbation is crafted at {craft}x{craft} px but the images' median side is {median} px: each "
            f"perturbation pixel would cover a {factor:.0f}x{factor:.0f} px block (a visible mosaic)"
        )
        if not allow:
            raise ValueError(msg + "; pass --craft-size, omit --surrogate, or pass --allow-mismatch")
        notes.append(msg + " (allowed)")
    for n in notes:
        log.warning("%s", n)
    return notes


# --------------------------------------------------------------------------------------------- surrogates


def load_surrogate(path: Path) -> tuple[Encoder, dict[str, Any]]:
    """An encoder (or CLIP) checkpoint as the protector's surrogate, and what the manifest records of it."""
    import json

    from ...models.checkpoint import sha256_file
    from ...victim import HasMetadata, load_encoder

    weights = path / "encoder.safetensors" if path.is_dir() else path
    if weights.suffix != ".safetensors":
        weights = weights.with_suffix(".safetensors")
    if not weights.is_file():
        raise FileNotFoundError(f"surrogate checkpoint {weights} not found")
    sidecar = weights.with_suffix(".json")
    kind = json.loads(sidecar.read_text()).get("kind") if sidecar.is_file() else None
    info: dict[str, Any] = {"path": str(weights), "sha256": sha256_file(weights), "kind": kind or "encoder"}
    if kind == "clip":
        from ...models.clip import load_clip

        model, _ = load_clip(weights)
        info["uc_variant"] = "UC-CLIP"
        return model.image_encoder(), info
    enc = load_encoder(weights)
    info["architecture"] = enc.meta.get("architecture") if isinstance(enc, HasMetadata) else None
    info["uc_variant"] = "UC"
    return enc, info


def _folder_key(files: list[Path], folder: Path, craft: int, channels: int, epochs: int, seed: int) -> str:
    h = hashlib.sha256(f"simclr cnn-small {craft} {channels} {epochs} {seed}".encode())
    for f in files:
        h.update(f.relative_to(folder).as_posix().encode())
        h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()[:24]


def folder_surrogate(
    work: ImageDataset, files: list[Path], folder: Path, options: FolderOptions
) -> tuple[Encoder, dict[str, Any]]:
    """A SimCLR ``cnn-small`` trained on the folder's own images at the craft size (cached by content)."""
    from ...models.checkpoint import save_encoder
    from ...victim import LocalEncoder, load_encoder
    from .surrogate import train_surrogate

    c, size = work.info.channels, work.info.image_size
    key = _folder_key(files, folder, size, c, options.surrogate_epochs, options.seed)
    root = options.cache_dir or Path.home() / ".cache" / "encoder-audit"
    path = root / "surrogates" / key / "encoder.safetensors"
    info: dict[str, Any] = {"path": str(path), "kind": "encoder", "uc_variant": "UC", "cache_key": key}
    if path.is_file():
        log.info("reusing the surrogate trained on this folder: %s", path)
        info |= {"trained_here": False, "train_seconds": 0.0, "reused": True}
        return load_encoder(path), info
    t0 = time.perf_counter()
    enc = train_surrogate(
        work,
        "simclr",
        epochs=options.surrogate_epochs,
        batch_size=128,
        lr=2e-3,
        seed=options.seed,
        device=options.device,
    )
    seconds = time.perf_counter() - t0
    assert isinstance(enc, LocalEncoder)
    save_encoder(path, enc.net, training={"method": "simclr", "epochs": options.surrogate_epochs, "folder": key})
    info |= {"trained_here": True, "train_seconds": round(seconds, 1), "reused": False}
    return enc, info


# --------------------------------------------------------------------------------------------- the job


def _check_paths(folder: Path, out: Path, overwrite: bool) -> None:
    if not folder.is_dir():
        raise FileNotFoundError(f"input folder {folder} does not exist or is not a folder")
    fr, orr = folder.resolve(), out.resolve()
    if orr == fr or fr in orr.parents:
        raise ValueError(f"--out {out} must not be inside the input folder {folder} (the input is never modified)")
    if orr in fr.parents:
        raise ValueError(f"--out {out} must not contain the input folder {folder}")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ValueError(f"--out {out} exists and is not empty (use --overwrite)")


def _read_all(
    folder: Path, emit: Callable[[str], None]
) -> tuple[list[torch.Tensor], list[Path], list[int], list[dict[str, str]], list[Path]]:
    files, skipped = _scan(folder)
    images, rels, depths, read = [], [], [], []
    for f in files:
        rel = f.relative_to(folder)
        try:
            im, depth = load_image(f)
        except Exception as exc:  # any undecodable file is named, never fatal
            skipped.append({"path": rel.as_posix(), "reason": f"unreadable: {type(exc).__name__}: {exc}"[:240]})
            log.warning("unreadable, skipped: %s (%s)", rel, type(exc).__name__)
            emit(f"unreadable: {rel.as_posix()}")
            continue
        images.append(im)
        rels.append(rel)
        depths.append(depth)
        read.append(f)
    for s in skipped:
        if s["reason"].startswith("hidden"):
            emit(f"skipped (hidden): {s['path']}")
    return images, rels, depths, skipped, read


def _clusters(requested: int | None, n: int, method: str) -> tuple[int, str]:
    k = requested or 10
    if n < 2:
        raise ValueError(f"{method} needs at least 2 readable images to make clusters, found {n} (try --method random)")
    fit = max(2, n // 2)
    if k > fit:
        note = f"K lowered from {k} to {fit} to fit {n} images (at least 2 images per cluster)"
        log.warning("%s", note)
        return fit, note
    return k, ""


def _method_config(options: FolderOptions, k: int) -> Any:
    from ...config import build_config
    from ..registry import registry

    cls = registry("protection").config_class(options.method)
    if cls is None:
        return None
    fields = {f.name for f in dataclasses.fields(cls)}
    values = dict(options.options)
    if options.method == "uc" and not str(options.device).startswith("cuda"):
        cpu = {k_: v for k_, v in CPU_UC.items() if k_ not in values}
        if cpu:
            log.info("UC on a CPU: generator settings %s (--set ngf=64 --set n_blocks=6 ... for the official)", cpu)
        values = {**cpu, **values}
    flags = {
        "eps": options.eps,
        "norm": options.norm,
        "seed": options.seed,
        "clusters": k,
        "label_clusters": k,
        "label_source": "clusters",
        "epochs": options.epochs,
        "train_on": options.train_on,
    }
    for key, value in flags.items():
        if key in fields and value is not None:
            if key in ("epochs", "train_on"):
                values[key] = value  # an explicit flag wins over the CPU sizing
            else:
                values.setdefault(key, value)
    return build_config(cls, values)


def protect_folder(
    folder: Path, out: Path, options: FolderOptions | None = None, *, emit: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Protect every image of ``folder`` into ``out`` (see the module docstring); returns the manifest.

    Args:
        folder: the input folder (only read).
        out: where the protected PNGs and the manifest go (not inside ``folder``).
        options: :class:`FolderOptions`.
        emit: where user-facing lines go (default: the log).

    Raises:
        FileNotFoundError: no input folder or surrogate checkpoint.
        ValueError: bad paths, no readable image, a surrogate that does not fit, or a bad option.
    """
    from ...io import atomic_write
    from ..registry import attack_class
    from .base import apply_perturbation, create_protection
    from .generator import resize_perturbation
    from .perceptibility import save_png_atomic

    opts = options or FolderOptions()
    say = emit or (lambda s: log.info("%s", s))
    t0 = time.perf_counter()
    _check_paths(folder, out, opts.overwrite)
    images, rels, depths, skipped, read = _read_all(folder, say)
    if not images:
        raise ValueError(f"no readable images in {folder}")
    cls = attack_class("protection", opts.method)
    # a folder has no labels: label-based baselines run in label-agnostic mode, on the surrogate's clusters
    needs_surrogate = bool(cls.needs_surrogate or cls.needs_labels)
    k, k_note = _clusters(opts.clusters, len(images), opts.method) if needs_surrogate else (opts.clusters or 10, "")
    config = _method_config(opts, k)
    channels = _channels(images)
    notes = [k_note] if k_note else []

    surrogate: Encoder | None = None
    sinfo: dict[str, Any] = {"path": None}
    if needs_surrogate and opts.surrogate is not None:
        surrogate, sinfo = load_surrogate(opts.surrogate)
        c_s, s_h, _ = surrogate.input_shape
        size = opts.craft_size or s_h
        notes += _check_fit((c_s, s_h, s_h), images, size, opts.allow_mismatch)
        work_c = c_s
    else:
        size = opts.craft_size or fit_craft_size(images)
        work_c = channels
    work = _work_set(images, work_c, size, folder)
    if needs_surrogate and surrogate is None:
        surrogate, sinfo = folder_surrogate(work, read, folder, opts)
        what = "reused the" if sinfo.get("reused") else "trained a"
        notes.append(
            "the surrogate was trained on the folder without labels: its clusters follow the classes a trainer "
            "will use only partly, and UC protects only as far as they do (see docs/PROTECTION.md)"
        )
        say(
            f"no --surrogate: {what} SimCLR cnn-small surrogate on the {len(images)} images of {folder} at "
            f"{size}x{size} {'RGB' if work_c == 3 else 'grayscale'}"
            + (f" in {sinfo['train_seconds']:.0f} s" if sinfo.get("trained_here") else "")
            + f" (cache: {sinfo['path']})"
        )
    kwargs: dict[str, Any] = {"surrogate": surrogate}
    if opts.method == "uc":
        kwargs["craft_size"] = size
    protection = create_protection(opts.method, config, **kwargs)
    eps_text = f"{opts.eps * 255:.4g}/255" if opts.norm == "linf" else f"{opts.eps:.4g}"
    say(f"protecting {len(images)} images from {folder} with {opts.method} (eps {eps_text} {opts.norm}, K={k}) ...")
    prot = protection.protect(work, progress=opts.progress)
    if opts.method == "uc":
        deltas: torch.Tensor | None = prot.meta["fit"].perturbations  # (K, C, h, w) exact float perturbations
        per_image = None
    else:
        deltas = None
        per_image = (prot.dataset.images.float() - work.images.float()) / 255.0
    groups = prot.groups

    names = output_names(rels)
    records = []
    worst = 0
    for i, (im, rel, name) in enumerate(zip(images, rels, names)):
        c, h, w = im.shape
        src = deltas[int(groups[i]) : int(groups[i]) + 1] if deltas is not None and groups is not None else None
        d = resize_perturbation(src if src is not None else per_image[i : i + 1], h, w, c)  # type: ignore[index]
        protected = apply_perturbation(im[None], d, prot.eps, "l2" if prot.norm == "l2" else "linf")[0]
        save_png_atomic(out / name, protected)
        diff = int((protected.int() - im.int()).abs().max())
        worst = max(worst, diff)
        records.append(
            {
                "source": rel.as_posix(),
                "output": name.as_posix(),
                "cluster": None if groups is None else int(groups[i]),
                "size": [h, w],
                "channels": c,
                "source_bits": depths[i],
                "linf_levels": diff,
            }
        )
    if deltas is not None:
        from safetensors.torch import save_file

        d_all = deltas.contiguous()
        atomic_write(
            out / "perturbations.safetensors",
            lambda tmp: save_file({"perturbations": d_all}, str(tmp), metadata={"format": "encoder-audit"}),
        )
    return _write_manifest(
        out, folder, opts, prot, config, sinfo, k, size, records, skipped, notes, worst, time.perf_counter() - t0, say
    )


def _work_set(images: list[torch.Tensor], channels: int, size: int, folder: Path) -> ImageDataset:
    work = torch.stack(
        [
            (adapt_images(im[None].float().div(255), (channels, size, size))[0] * 255)
            .round()
            .clamp(0, 255)
            .to(torch.uint8)
            for im in images
        ]
    )
    mean, std = channel_stats(work)
    info = DatasetInfo(
        name=f"folder:{folder.name}", channels=channels, image_size=size, num_classes=0, mean=mean, std=std
    )
    return ImageDataset(work, None, info, split="train")


def _write_manifest(
    out: Path,
    folder: Path,
    opts: FolderOptions,
    prot: Any,
    config: Any,
    sinfo: dict[str, Any],
    k: int,
    size: int,
    records: list[dict[str, Any]],
    skipped: list[dict[str, str]],
    notes: list[str],
    worst: int,
    seconds: float,
    say: Callable[[str], None],
) -> dict[str, Any]:
    from ...config import config_to_dict
    from ...io import atomic_write_json

    fit_meta = {k_: v for k_, v in prot.meta.items() if k_ != "fit"}
    manifest = {
        "kind": "protect-manifest",
        "method": opts.method,
        "variant": sinfo.get("uc_variant") if opts.method == "uc" else None,
        "budget": {"eps": prot.eps, "norm": prot.norm, "eps_levels": round(prot.eps * 255, 3)},
        "max_linf_levels_written": worst,
        "surrogate": sinfo,
        "seed": opts.seed,
        "clusters": k,
        "config": config_to_dict(config) if config is not None else {},
        "craft_size": size,
        "noise_resize": "nearest (per-cluster perturbation resized to each image's size)",
        "protection_meta": {k_: v for k_, v in fit_meta.items() if isinstance(v, (str, int, float, bool, list, dict))},
        "notes": notes,
        "images": records,
        "skipped": skipped,
        "unreadable": [s for s in skipped if s["reason"].startswith("unreadable")],
        "counts": {"files": len(records) + len(skipped), "protected": len(records), "skipped": len(skipped)},
        "input_folder": str(folder),
        "seconds": round(seconds, 2),
    }
    atomic_write_json(out / MANIFEST, manifest)
    say(
        f"wrote {len(records)} protected PNGs to {out} (max |delta| {worst}/255, budget {prot.eps * 255:.1f}/255); "
        f"{len(skipped)} skipped; manifest {out / MANIFEST} ({seconds:.0f}s)"
    )
    return manifest
