"""Protobuf <-> vision domain values. The only vision module besides the servicer that sees protobuf."""

from __future__ import annotations

from typing import Any

from lanai.api.common.v1 import common_pb2
from lanai.api.vision.v1 import vision_pb2
from lanai.services.core.errors import InvalidInput
from lanai.services.vision.image import Picture
from lanai.services.vision.types import Box, Face, Label, Point, TextLine
from lanai.services.vision.video import Analysed, Frame, RawPixels

MAX_TOP_K = 100
DEFAULT_TOP_K = 5


def top_k(requested: int) -> int:
    if requested > MAX_TOP_K:
        raise InvalidInput(f"top_k {requested} is too large; ask for 1 to {MAX_TOP_K} labels (0 for {DEFAULT_TOP_K})")
    return requested or DEFAULT_TOP_K


def min_confidence(options: vision_pb2.ImageOptions) -> float:
    value = options.min_confidence
    if not 0.0 <= value <= 1.0:  # also refuses NaN
        raise InvalidInput(f"min_confidence {value} is out of range; use 0 to 1 (0 for the task's default)")
    return value


def _point(p: Point) -> vision_pb2.Point:
    return vision_pb2.Point(x=p[0], y=p[1])


def _box(b: Box) -> vision_pb2.Box:
    return vision_pb2.Box(x_min=b[0], y_min=b[1], x_max=b[2], y_max=b[3])


def _size(picture: Picture) -> vision_pb2.ImageSize:
    return vision_pb2.ImageSize(width=picture.width, height=picture.height)


def classify_response(labels: list[Label], picture: Picture,
                      served: common_pb2.ServedBy) -> vision_pb2.ClassifyResponse:
    return vision_pb2.ClassifyResponse(
        labels=[vision_pb2.Label(class_id=x.class_id, name=x.name, score=x.score) for x in labels],
        image_size=_size(picture), served_by=served)


def faces_response(faces: list[Face], picture: Picture, served: common_pb2.ServedBy) -> vision_pb2.DetectFacesResponse:
    return vision_pb2.DetectFacesResponse(faces=[vision_pb2.Face(
        box=_box(f.box), confidence=f.confidence, landmarks=vision_pb2.FaceLandmarks(
            left_eye=_point(f.landmarks[0]), right_eye=_point(f.landmarks[1]), nose=_point(f.landmarks[2]),
            mouth_left=_point(f.landmarks[3]), mouth_right=_point(f.landmarks[4])))
        for f in faces], image_size=_size(picture), served_by=served)


def text_response(lines: list[TextLine], picture: Picture, served: common_pb2.ServedBy) -> vision_pb2.ReadTextResponse:
    return vision_pb2.ReadTextResponse(
        lines=[vision_pb2.TextLine(text=x.text, confidence=x.confidence, corners=[_point(p) for p in x.corners],
                                   box=_box(x.box)) for x in lines],
        text="\n".join(x.text for x in lines), image_size=_size(picture), served_by=served)


PIXEL_FORMATS = {vision_pb2.PIXEL_FORMAT_RGB24: "rgb24", vision_pb2.PIXEL_FORMAT_RGBA32: "rgba32",
                 vision_pb2.PIXEL_FORMAT_YUV420P: "yuv420p"}


def frame(message: vision_pb2.StreamAnalyzeRequest, count: int) -> Frame:
    """A video frame off the wire; `count` numbers it when the sender does not."""
    kind = message.WhichOneof("payload")
    if kind == "config":
        raise InvalidInput("config was sent twice; send it once, as the first message, then only frames")
    if kind is None:
        raise InvalidInput("a StreamAnalyze message carries neither config nor frame")
    f = message.frame
    source = f.WhichOneof("picture")
    picture: bytes | RawPixels = b""
    if source == "encoded":
        picture = f.encoded
    elif source == "raw":
        picture = RawPixels(PIXEL_FORMATS.get(f.raw.format, ""), f.raw.width, f.raw.height, f.raw.data)
    return Frame(picture, f.capture_time_us, f.sequence or count)


def analyze_response(done: Analysed, picture: Picture, served: common_pb2.ServedBy,
                     found: dict[str, list[Any]]) -> vision_pb2.StreamAnalyzeResponse:
    response = vision_pb2.StreamAnalyzeResponse(
        sequence=done.frame.sequence, capture_time_us=done.frame.capture_us, dropped=done.dropped,
        image_size=_size(picture), waited_ms=done.waited_s * 1000, served_by=served)
    if "faces" in found:
        response.faces.extend(faces_response(found["faces"], picture, served).faces)
    if "classify" in found:
        response.labels.extend(classify_response(found["classify"], picture, served).labels)
    if "ocr" in found:
        response.lines.extend(text_response(found["ocr"], picture, served).lines)
    return response
