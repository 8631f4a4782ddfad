"""Decoding untrusted images safely: known formats only, pixel count checked from the header
before any pixel is decoded (decompression bombs), truncated files refused, EXIF orientation
applied, and an optional downscale so inference never sees more pixels than it needs."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from lanai.services.core.errors import InvalidInput

FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF")
"""Pillow format names accepted; anything else is refused before its decoder runs."""


@dataclass(frozen=True)
class Picture:
    """A decoded image ready for inference."""

    rgb: np.ndarray
    """uint8, height x width x 3, possibly downscaled."""
    width: int
    height: int
    """Size of the oriented image as sent, before any downscale: responses use these coordinates."""

    @property
    def scale(self) -> float:
        """Factor from `rgb` pixel coordinates back to the oriented image's."""
        return self.width / int(self.rgb.shape[1])


def decode(data: bytes, *, max_pixels: int, max_side: int) -> Picture:
    """Decode, orient and (when larger than `max_side`, if not 0) downscale an encoded image.

    Raises InvalidInput for empty, unknown, truncated, zero-sized or too large images."""
    if not data:
        raise InvalidInput("the request has no image: set image.encoded to the bytes of a PNG, JPEG, WebP, BMP "
                           "or GIF file")
    try:
        with warnings.catch_warnings():
            # Pillow warns (and past 2x its own limit raises) on large images; our limit is checked below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=FORMATS)
    except UnidentifiedImageError:
        raise InvalidInput(f"the image is not a {', '.join(FORMATS)} file (or is corrupt); "
                           "send one of those formats") from None
    except Image.DecompressionBombError:
        raise _too_large(None, max_pixels) from None
    except (OSError, ValueError, SyntaxError) as exc:  # Pillow's header parsers raise all of these
        raise InvalidInput(f"the image header could not be read ({exc}); send a complete image file") from None
    width, height = image.size
    if width <= 0 or height <= 0:
        raise InvalidInput(f"the image is {width}x{height} pixels: it has no pixels to look at")
    if width * height > max_pixels:
        raise _too_large((width, height), max_pixels)
    try:
        if max_side and max(width, height) > max_side and image.format == "JPEG":
            image.draft("RGB", (max_side, max_side))  # decode a JPEG at 1/2, 1/4 or 1/8 scale: faster, less memory
        image.load()  # the first GIF frame; a truncated file raises here
        oriented = ImageOps.exif_transpose(image)
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise InvalidInput(f"the image could not be decoded ({exc}); it may be truncated or corrupt") from None
    if oriented.size != image.size:  # rotated by 90 degrees: width and height swap
        width, height = height, width
    rgb_image = _to_rgb(oriented)
    longest = max(rgb_image.size)
    if max_side and longest > max_side:
        factor = max_side / longest
        rgb_image = rgb_image.resize((max(1, round(rgb_image.width * factor)), max(1, round(rgb_image.height * factor))),
                                     Image.Resampling.BILINEAR, reducing_gap=2.0)
    return Picture(np.asarray(rgb_image, dtype=np.uint8), width, height)


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB; transparent pixels are laid on white (how a viewer shows a transparent logo)."""
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _too_large(size: tuple[int, int] | None, max_pixels: int) -> InvalidInput:
    what = f"{size[0]}x{size[1]} = {size[0] * size[1]:,} pixels" if size else "far too many pixels"
    return InvalidInput(f"the image has {what}; this node accepts at most {max_pixels:,} pixels: "
                        "downscale it before sending")
