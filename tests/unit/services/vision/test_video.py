"""The pure parts of live video (services/vision/video.py): raw pixel layouts, latest-wins, settings."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest

from lanai.services.core.errors import InvalidInput
from lanai.services.vision.video import (Frame, Latest, RawPixels, analyses_of, check_frame, rate_limits, raw_size,
                                         to_picture)


def test_raw_sizes() -> None:
    assert raw_size("rgb24", 4, 2) == 24 and raw_size("rgba32", 4, 2) == 32
    assert raw_size("yuv420p", 4, 2) == 8 + 2 * 2 and raw_size("yuv420p", 3, 3) == 9 + 2 * 4  # chroma rounds up


def test_yuv420_of_flat_colours_comes_back_as_those_colours() -> None:
    w, h = 6, 4
    for (y, u, v), rgb in (((16, 128, 128), (0, 0, 0)), ((235, 128, 128), (255, 255, 255)),
                           ((81, 90, 240), (255, 0, 0))):
        data = bytes([y] * (w * h) + [u] * (w // 2 * h // 2) + [v] * (w // 2 * h // 2))
        picture = to_picture(Frame(RawPixels("yuv420p", w, h, data), 0, 1), max_pixels=100, max_side=0)
        assert picture.rgb.shape == (h, w, 3)
        assert np.abs(picture.rgb.astype(int) - np.array(rgb)).max() <= 2, (rgb, picture.rgb[0, 0])


def test_raw_frames_are_downscaled_but_keep_their_coordinates() -> None:
    frame = Frame(RawPixels("rgb24", 400, 200, bytes(400 * 200 * 3)), 0, 1)
    picture = to_picture(frame, max_pixels=10**6, max_side=100)
    assert picture.rgb.shape == (50, 100, 3) and (picture.width, picture.height) == (400, 200) and picture.scale == 4


def test_frame_checks() -> None:
    good = Frame(RawPixels("rgba32", 2, 2, bytes(16)), 10, 1)
    check_frame(good, previous_us=10, max_pixels=4, max_bytes=100)  # equal capture times are fine
    with pytest.raises(InvalidInput, match="went backwards"):
        check_frame(good, previous_us=11, max_pixels=4, max_bytes=100)
    with pytest.raises(InvalidInput, match="at most 3"):
        check_frame(good, previous_us=0, max_pixels=3, max_bytes=100)
    with pytest.raises(InvalidInput, match="at most 4"):
        check_frame(Frame(b"12345", 0, 1), previous_us=0, max_pixels=4, max_bytes=4)


def test_settings() -> None:
    assert analyses_of(["ocr", "faces"]) == ("faces", "ocr")
    with pytest.raises(InvalidInput, match="unknown analysis 'x'"):
        analyses_of(["x"])
    assert rate_limits(0, 0) == (0.0, math.inf) and rate_limits(4, 250) == (0.25, 0.25)
    for bad in (-1.0, math.inf, math.nan):
        with pytest.raises(InvalidInput):
            rate_limits(bad, 0)


async def test_latest_wins_and_counts_what_it_replaced() -> None:
    latest = Latest()
    for i in range(1, 4):
        latest.put(Frame(b"x", i, i))
    taken = await latest.take()
    assert taken is not None and taken.sequence == 3 and latest.dropped == 2
    waiter = asyncio.ensure_future(latest.take())
    await asyncio.sleep(0)
    assert not waiter.done()
    latest.put(Frame(b"x", 4, 4))
    assert (await waiter).sequence == 4  # type: ignore[union-attr]
    latest.end()
    assert await latest.take() is None
    failed = Latest()
    failed.put(Frame(b"x", 1, 1))
    failed.end(InvalidInput("bad frame"))
    with pytest.raises(InvalidInput, match="bad frame"):  # an error is not held back behind a pending frame
        await failed.take()
