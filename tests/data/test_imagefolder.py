"""``imagefolder:PATH`` on tiny PNG/JPEG trees written with Pillow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from encoder_audit.data import create_dataset
from encoder_audit.errors import CorruptFileError, DataNotFoundError


def _save(path: Path, array: np.ndarray, fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt)


def _rgb(h: int, w: int, color: tuple[int, int, int]) -> np.ndarray:
    return np.broadcast_to(np.array(color, dtype=np.uint8), (h, w, 3)).copy()


def test_class_folders_labels_paths_and_pixels(tmp_path: Path) -> None:
    _save(tmp_path / "dog" / "b.png", _rgb(8, 8, (0, 0, 255)))
    _save(tmp_path / "cat" / "z.png", _rgb(8, 8, (255, 0, 0)))
    _save(tmp_path / "cat" / "a.png", _rgb(8, 8, (0, 255, 0)))
    _save(tmp_path / "cat" / "sub" / "c.jpg", _rgb(8, 8, (10, 20, 30)))
    (tmp_path / "cat" / "notes.txt").write_text("sidecar files are skipped")
    (tmp_path / "cat" / ".DS_Store").write_bytes(b"\x00junk")
    (tmp_path / "README.md").write_text("loose files beside class folders are ignored")
    ds = create_dataset(f"imagefolder:{tmp_path}")
    assert ds.paths == ["cat/a.png", "cat/sub/c.jpg", "cat/z.png", "dog/b.png"]
    assert ds.labels is not None and ds.labels.tolist() == [0, 0, 0, 1]
    assert ds.info.class_names == ("cat", "dog") and ds.info.num_classes == 2
    assert ds.images.shape == (4, 3, 8, 8) and ds.images.dtype == torch.uint8
    assert ds.images[0, :, 3, 3].tolist() == [0, 255, 0] and ds.images[3, :, 0, 0].tolist() == [0, 0, 255]
    assert ds.images[1, :, 4, 4].sub(torch.tensor([10, 20, 30])).abs().max() <= 6  # JPEG is lossy
    assert ds.info.channels == 3 and ds.info.image_size == 8
    assert ds.info.name == f"imagefolder:{tmp_path}"
    sub = ds.subset([3, 0])
    assert sub.paths == ["dog/b.png", "cat/a.png"] and sub.labels is not None and sub.labels.tolist() == [1, 0]
    x = ds.images.double() / 255
    assert np.allclose(ds.info.mean, x.mean(dim=(0, 2, 3)).numpy(), atol=1e-4)


def test_flat_folder_is_unlabeled_and_grayscale_detected(tmp_path: Path) -> None:
    for i in range(3):
        _save(tmp_path / f"img{i}.png", np.full((6, 6), 40 * i, dtype=np.uint8))
    ds = create_dataset("imagefolder", path=tmp_path)
    assert ds.labels is None and ds.info.num_classes == 0 and ds.info.class_names == ()
    assert ds.images.shape == (3, 1, 6, 6) and ds.info.channels == 1
    assert ds.images[:, 0, 0, 0].tolist() == [0, 40, 80]
    assert ds.paths == ["img0.png", "img1.png", "img2.png"]
    rgb = create_dataset("imagefolder", path=tmp_path, channels=3)
    assert rgb.images.shape == (3, 3, 6, 6) and rgb.images[2, :, 1, 1].tolist() == [80, 80, 80]


def test_mixed_sizes_crop_and_resize(tmp_path: Path) -> None:
    # first image (sorted) is 10 wide x 6 high -> default size 6; its center 6x6 crop is the middle columns
    wide = _rgb(6, 10, (0, 0, 0))
    wide[:, 2:8] = (200, 100, 50)
    _save(tmp_path / "a" / "0.png", wide)
    _save(tmp_path / "a" / "1.png", _rgb(24, 12, (9, 9, 9)))
    _save(tmp_path / "b" / "2.png", np.full((12, 12), 255, dtype=np.uint8))  # grayscale among color images
    ds = create_dataset("imagefolder", path=tmp_path)
    assert ds.images.shape == (3, 3, 6, 6) and ds.info.image_size == 6
    assert (ds.images[0].permute(1, 2, 0) == torch.tensor([200, 100, 50], dtype=torch.uint8)).all()
    assert (ds.images[1] == 9).all() and (ds.images[2] == 255).all()
    small = create_dataset("imagefolder", path=tmp_path, size=4, channels=1)
    assert small.images.shape == (3, 1, 4, 4) and small.info.channels == 1
    expected = round(0.299 * 200 + 0.587 * 100 + 0.114 * 50)
    assert abs(int(small.images[0, 0, 2, 2]) - expected) <= 1


def test_corrupt_file_is_named(tmp_path: Path) -> None:
    _save(tmp_path / "cls" / "good.png", _rgb(4, 4, (1, 2, 3)))
    (tmp_path / "cls" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    with pytest.raises(CorruptFileError, match=r"cls/broken\.png"):
        create_dataset(f"imagefolder:{tmp_path}")
    (tmp_path / "cls" / "broken.png").unlink()
    (tmp_path / "cls" / "weights.bin").write_bytes(b"definitely not an image")
    with pytest.raises(CorruptFileError, match=r"weights\.bin"):
        create_dataset(f"imagefolder:{tmp_path}")
    # a truncated JPEG is an error too, not a half-grey image
    jpg = tmp_path / "cls" / "cut.jpg"
    (tmp_path / "cls" / "weights.bin").unlink()
    _save(jpg, np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8))
    jpg.write_bytes(jpg.read_bytes()[:200])
    with pytest.raises(CorruptFileError, match=r"cut\.jpg"):
        create_dataset(f"imagefolder:{tmp_path}")


def test_empty_and_missing_folders(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="no images"):
        create_dataset(f"imagefolder:{tmp_path}")
    (tmp_path / "only.txt").write_text("x")
    with pytest.raises(DataNotFoundError, match="no images"):
        create_dataset(f"imagefolder:{tmp_path}")
    with pytest.raises(DataNotFoundError, match="not a folder"):
        create_dataset(f"imagefolder:{tmp_path / 'nope'}")
    (tmp_path / "emptyclass").mkdir()
    _save(tmp_path / "full" / "x.png", _rgb(4, 4, (1, 1, 1)))
    with pytest.raises(ValueError, match="emptyclass holds no images"):
        create_dataset(f"imagefolder:{tmp_path}")
    with pytest.raises(ValueError, match="channels"):
        create_dataset(f"imagefolder:{tmp_path / 'full'}", channels=2)


def test_split_folders(tmp_path: Path) -> None:
    _save(tmp_path / "train" / "a" / "1.png", _rgb(4, 4, (1, 1, 1)))
    _save(tmp_path / "train" / "b" / "2.png", _rgb(4, 4, (2, 2, 2)))
    _save(tmp_path / "test" / "a" / "3.png", _rgb(4, 4, (3, 3, 3)))
    _save(tmp_path / "test" / "b" / "4.png", _rgb(4, 4, (4, 4, 4)))
    train = create_dataset(f"imagefolder:{tmp_path}", "train")
    test = create_dataset(f"imagefolder:{tmp_path}", "test")
    assert train.paths == ["train/a/1.png", "train/b/2.png"] and test.paths == ["test/a/3.png", "test/b/4.png"]
    assert test.split == "test" and test.labels is not None and test.labels.tolist() == [0, 1]
    with pytest.raises(ValueError, match="no 'unlabeled'"):
        create_dataset(f"imagefolder:{tmp_path}", "unlabeled")


def test_16_bit_images_are_scaled_not_clipped(tmp_path: Path) -> None:
    from encoder_audit.data.imagefolder import to_8bit

    dark = (np.arange(64).reshape(8, 8) * 100).astype(np.uint16)  # 0..6300 of 65535: a dark image
    Image.fromarray(dark).save(tmp_path / "dark.png")
    ds = create_dataset(f"imagefolder:{tmp_path}", "train")
    expected = np.rint(dark.astype(float) * 255 / 65535).astype(np.uint8)
    assert ds.info.channels == 1
    assert np.array_equal(ds.images[0, 0].numpy(), expected)  # the old "max <= 255 means 8-bit" rule kept 6300 as 255
    with Image.open(tmp_path / "dark.png") as im:
        out, depth = to_8bit(im)
    assert depth == 16 and out.mode == "L"
    f = Image.fromarray(np.full((4, 4), 0.5, dtype=np.float32), mode="F")
    assert np.asarray(to_8bit(f)[0]).max() == 128
    with pytest.raises(ValueError):
        to_8bit(Image.fromarray(np.full((4, 4), 300.0, dtype=np.float32), mode="F"))
