"""Vision results as plain values (no protobuf), in pixels of the oriented image."""

from __future__ import annotations

from dataclasses import dataclass

Point = tuple[float, float]
Box = tuple[float, float, float, float]
"""x_min, y_min, x_max, y_max."""

TASKS = ("classify", "faces", "ocr")


@dataclass(frozen=True)
class Label:
    class_id: int
    name: str
    score: float


@dataclass(frozen=True)
class Face:
    box: Box
    confidence: float
    landmarks: tuple[Point, ...]
    """Left eye, right eye, nose, mouth left, mouth right (as seen in the image)."""


@dataclass(frozen=True)
class TextLine:
    text: str
    confidence: float
    corners: tuple[Point, ...]
    """The four corners of the (possibly rotated) text box, clockwise from top-left."""

    @property
    def box(self) -> Box:
        xs, ys = [p[0] for p in self.corners], [p[1] for p in self.corners]
        return min(xs), min(ys), max(xs), max(ys)
