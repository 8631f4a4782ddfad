"""lanai.services.vision.image: decoding untrusted images (real Pillow encoders and decoders)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from lanai.services.core.errors import InvalidInput
from lanai.services.vision.image import decode

LIMIT = 10_000_000


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def gradient(width: int = 64, height: int = 48) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.uint8)[None, :, None]
    y = np.linspace(0, 255, height, dtype=np.uint8)[:, None, None]
    return Image.fromarray(np.broadcast_to(np.concatenate([x.repeat(height, 0), y.repeat(width, 1),
                                                           np.full((height, width, 1), 128, np.uint8)], 2),
                                           (height, width, 3)).copy())


def png_with_header(width: int, height: int) -> bytes:
    """A PNG whose header declares `width` x `height` but whose data is a few bytes: the shape of
    a decompression bomb (or of a lying header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP", "GIF"])
def test_every_accepted_format_decodes_to_rgb(fmt: str) -> None:
    picture = decode(encode(gradient(), fmt), max_pixels=LIMIT, max_side=0)
    assert picture.rgb.shape == (48, 64, 3) and picture.rgb.dtype == np.uint8
    assert (picture.width, picture.height) == (64, 48) and picture.scale == 1.0
    assert picture.rgb[:, :, 0].mean() > 100  # content, not a blank frame


def test_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    picture = decode(encode(gradient(64, 48), "JPEG", exif=exif), max_pixels=LIMIT, max_side=0)
    assert picture.rgb.shape == (64, 48, 3) and (picture.width, picture.height) == (48, 64)


def test_large_images_are_downscaled_and_keep_their_coordinates() -> None:
    picture = decode(encode(gradient(400, 200), "PNG"), max_pixels=LIMIT, max_side=100)
    assert picture.rgb.shape == (50, 100, 3)
    assert (picture.width, picture.height) == (400, 200) and picture.scale == 4.0


def test_transparency_is_laid_on_white() -> None:
    clear = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    assert (decode(encode(clear, "PNG"), max_pixels=LIMIT, max_side=0).rgb == 255).all()


@pytest.mark.parametrize(("data", "message"), [
    (b"", "no image"),
    (b"hello, this is plain text, not a picture", "not a PNG"),
    (encode(gradient(), "TIFF"), "not a PNG"),
])
def test_non_images_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        decode(data, max_pixels=LIMIT, max_side=0)


def test_a_truncated_file_is_refused() -> None:
    data = encode(gradient(256, 256), "PNG")
    with pytest.raises(InvalidInput, match="truncated|corrupt|could not"):
        decode(data[: len(data) // 2], max_pixels=LIMIT, max_side=0)


def test_a_decompression_bomb_is_refused_before_decoding() -> None:
    with pytest.raises(InvalidInput, match="at most 10,000,000 pixels"):
        decode(png_with_header(100_000, 100_000), max_pixels=LIMIT, max_side=0)


def test_an_image_over_the_pixel_limit_is_refused_with_its_size() -> None:
    with pytest.raises(InvalidInput, match="400x300 = 120,000 pixels.*at most 100,000"):
        decode(encode(gradient(400, 300), "PNG"), max_pixels=100_000, max_side=0)


def test_a_zero_sized_image_is_refused() -> None:
    with pytest.raises(InvalidInput):
        decode(png_with_header(0, 10), max_pixels=LIMIT, max_side=0)
