"""Patch triggers: a small pattern pasted onto images at a fixed or random position.

Carlini & Terzis (arXiv 2106.09667) backdoor CLIP with a 16x16 patch on 224x224 inputs (about 7% of
the side) at a random position per poisoned image (the setting every reimplementation follows; research
notes, poisoning.md Sec. 1.4). BadEncoder (Jia et al., S&P 2022) uses a white 10x10 square at offset 21
on 32 px images. The trigger is applied to the uint8 image *before* training augmentation, as both
reference implementations do, and every position is returned so a manifest can record it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

__all__ = ["PATTERNS", "Trigger"]

PATTERNS = ("checkerboard", "white", "black", "random")


@dataclass(frozen=True)
class Trigger:
    """A square patch trigger.

    Attributes:
        size: side length in pixels (Carlini: 16 of 224; default 4 of 28, 14% of the side, because the
            cnn-small stem halves resolution at once and a 2 px patch barely survives it).
        pattern: ``checkerboard`` (binary grid, HanxunH's BadNets patch), ``white``, ``black``, or
            ``random`` (a fixed uniform-noise patch drawn from ``pattern_seed``).
        placement: ``random`` (a new position per image; Carlini) or ``fixed`` (at ``position``).
        position: (row, col) of the top-left corner for fixed placement; negative values count from the
            bottom/right edge (e.g. (-5, -5) = 1 px from the bottom-right corner for size 4).
        pattern_seed: seed of the ``random`` pattern.
    """

    size: int = 4
    pattern: str = "checkerboard"
    placement: str = "random"
    position: tuple[int, int] = (-5, -5)
    pattern_seed: int = 0

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"trigger size must be >= 1, got {self.size}")
        if self.pattern not in PATTERNS:
            raise ValueError(f"trigger pattern must be one of {PATTERNS}, got {self.pattern!r}")
        if self.placement not in ("random", "fixed"):
            raise ValueError(f"trigger placement must be 'random' or 'fixed', got {self.placement!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def patch(self, channels: int) -> torch.Tensor:
        """The pattern as uint8 (C, size, size)."""
        s = self.size
        if self.pattern == "checkerboard":
            r = torch.arange(s)
            p = ((r.view(-1, 1) + r.view(1, -1)) % 2 == 0).to(torch.uint8) * 255
            return p.expand(channels, s, s).clone()
        if self.pattern == "white":
            return torch.full((channels, s, s), 255, dtype=torch.uint8)
        if self.pattern == "black":
            return torch.zeros((channels, s, s), dtype=torch.uint8)
        g = torch.Generator().manual_seed(self.pattern_seed)
        return torch.randint(0, 256, (channels, s, s), generator=g, dtype=torch.uint8)

    def positions(self, n: int, image_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n, 2) top-left corners: uniform over valid positions, or the fixed one.

        Raises:
            ValueError: the patch does not fit in the image.
        """
        if self.size > image_size:
            raise ValueError(f"trigger of size {self.size} does not fit {image_size}x{image_size} images")
        hi = image_size - self.size
        if self.placement == "random":
            return torch.randint(0, hi + 1, (n, 2), generator=generator)
        r, c = (v if v >= 0 else image_size + v for v in self.position)
        if not (0 <= r <= hi and 0 <= c <= hi):
            raise ValueError(f"fixed trigger position {self.position} puts a {self.size} px patch outside the image")
        return torch.tensor([[r, c]]).expand(n, 2).clone()

    def apply(self, images: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Paste the patch onto a copy of ``images`` (uint8 or float in [0, 1]) at ``positions`` (N, 2)."""
        if images.ndim != 4 or len(positions) != len(images):
            raise ValueError("apply needs (N, C, H, W) images and one (row, col) per image")
        out = images.clone()
        p = self.patch(images.shape[1])
        if out.is_floating_point():
            p = p.to(out.dtype) / 255.0
        s = self.size
        for i, (r, c) in enumerate(positions.tolist()):
            out[i, :, r : r + s, c : c + s] = p
        return out

    def paste(
        self, images: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample positions and apply: returns (triggered images, positions)."""
        pos = self.positions(len(images), images.shape[-1], generator)
        return self.apply(images, pos), pos
