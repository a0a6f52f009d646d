"""Image files are read as a photo viewer shows them: compared with what Pillow's own conversions give."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from cnnlens.errors import CnnlensError
from cnnlens.images import load_image


def _rgb_expected(im: Image.Image) -> np.ndarray:
    return np.asarray(ImageOps.exif_transpose(im).convert("RGB"), dtype=np.float32) / 255.0


def _hwc(t: torch.Tensor) -> np.ndarray:
    return t.permute(1, 2, 0).numpy()


def _gradient(h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y) * 255 // max(h + w - 2, 1)], -1).astype(np.uint8)


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_exif_orientation_is_applied(tmp_path: Path, orientation: int) -> None:
    im = Image.fromarray(_gradient(20, 40))  # landscape pixels
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "photo.jpg"
    im.save(path, exif=exif, quality=95)
    got = load_image(path)
    with Image.open(path) as ref:
        expected = _rgb_expected(ref)
    assert got.shape == (3, *expected.shape[:2])
    if orientation in (6, 8):  # a portrait photo stays portrait
        assert got.shape[1:] == (40, 20)
    assert np.abs(_hwc(got) - expected).max() < 1e-6


def test_cmyk_jpeg_in_right_colours(tmp_path: Path) -> None:
    rgb = Image.fromarray(_gradient(16, 24))
    path = tmp_path / "cmyk.jpg"
    rgb.convert("CMYK").save(path, quality=95)
    with Image.open(path) as ref:
        assert ref.mode == "CMYK"
        expected = _rgb_expected(ref)
    got = _hwc(load_image(path))
    assert np.abs(got - expected).max() < 1e-6
    # and close to the original colours (a naive CMYK read inverts them)
    assert np.abs(got - np.asarray(rgb, dtype=np.float32) / 255).mean() < 0.05


def test_palette_png(tmp_path: Path) -> None:
    im = Image.fromarray(_gradient(10, 10)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    path = tmp_path / "pal.png"
    im.save(path)
    with Image.open(path) as ref:
        expected = _rgb_expected(ref)
    assert np.abs(_hwc(load_image(path)) - expected).max() < 1e-6


def test_grey_png(tmp_path: Path) -> None:
    grey = _gradient(9, 7)[..., 0]
    path = tmp_path / "grey.png"
    Image.fromarray(grey, mode="L").save(path)
    got = load_image(path)
    assert got.shape == (3, 9, 7)
    assert torch.allclose(got[0], got[1]) and torch.allclose(got[1], got[2])
    assert np.abs(got[0].numpy() - grey / 255.0).max() < 1e-6


def test_grey_alpha_png_over_white(tmp_path: Path) -> None:
    grey = np.full((4, 4), 0, np.uint8)
    alpha = np.array([[0, 255, 128, 255]] * 4, np.uint8)
    path = tmp_path / "la.png"
    Image.fromarray(np.stack([grey, alpha], -1), mode="LA").save(path)
    got = load_image(path)
    expected_row = 1.0 - alpha[0] / 255.0  # black at alpha 1, white where transparent
    assert got.shape == (3, 4, 4)
    assert np.abs(got[0, 0].numpy() - expected_row).max() < 1e-6


def test_16_bit_png(tmp_path: Path) -> None:
    values = np.array([[0, 1000, 32768, 65535]], np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    got = load_image(path)
    assert got.shape == (3, 1, 4)
    assert np.abs(got[0, 0].numpy() - values[0] / 65535.0).max() < 1e-6


def test_gif_first_frame(tmp_path: Path) -> None:
    frames = [Image.fromarray(np.full((6, 8, 3), v, np.uint8)) for v in (30, 220)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with Image.open(path) as ref:
        ref.seek(0)
        expected = np.asarray(ref.convert("RGB"), dtype=np.float32) / 255.0
    got = load_image(path)
    assert got.shape == (3, 6, 8)
    assert np.abs(_hwc(got) - expected).max() < 1e-6


@pytest.mark.parametrize("size", [(1, 1), (1, 7), (5, 1)])
def test_tiny_images_keep_their_shape(tmp_path: Path, size: tuple[int, int]) -> None:
    path = tmp_path / "tiny.png"
    Image.fromarray(_gradient(*size)).save(path)
    got = load_image(path)
    assert got.shape == (3, *size)


def test_unreadable_and_missing_images_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(CnnlensError, match="cannot read image"):
        load_image(bad)
    with pytest.raises(CnnlensError, match="not found"):
        load_image(tmp_path / "missing.png")
