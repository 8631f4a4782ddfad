from lanai.api.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PixelFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PIXEL_FORMAT_UNSPECIFIED: _ClassVar[PixelFormat]
    PIXEL_FORMAT_RGB24: _ClassVar[PixelFormat]
    PIXEL_FORMAT_RGBA32: _ClassVar[PixelFormat]
    PIXEL_FORMAT_YUV420P: _ClassVar[PixelFormat]
PIXEL_FORMAT_UNSPECIFIED: PixelFormat
PIXEL_FORMAT_RGB24: PixelFormat
PIXEL_FORMAT_RGBA32: PixelFormat
PIXEL_FORMAT_YUV420P: PixelFormat

class Image(_message.Message):
    __slots__ = ("encoded",)
    ENCODED_FIELD_NUMBER: _ClassVar[int]
    encoded: bytes
    def __init__(self, encoded: _Optional[bytes] = ...) -> None: ...

class ImageOptions(_message.Message):
    __slots__ = ("model", "min_confidence", "max_side")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MIN_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    MAX_SIDE_FIELD_NUMBER: _ClassVar[int]
    model: str
    min_confidence: float
    max_side: int
    def __init__(self, model: _Optional[str] = ..., min_confidence: _Optional[float] = ..., max_side: _Optional[int] = ...) -> None: ...

class Point(_message.Message):
    __slots__ = ("x", "y")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ...) -> None: ...

class Box(_message.Message):
    __slots__ = ("x_min", "y_min", "x_max", "y_max")
    X_MIN_FIELD_NUMBER: _ClassVar[int]
    Y_MIN_FIELD_NUMBER: _ClassVar[int]
    X_MAX_FIELD_NUMBER: _ClassVar[int]
    Y_MAX_FIELD_NUMBER: _ClassVar[int]
    x_min: float
    y_min: float
    x_max: float
    y_max: float
    def __init__(self, x_min: _Optional[float] = ..., y_min: _Optional[float] = ..., x_max: _Optional[float] = ..., y_max: _Optional[float] = ...) -> None: ...

class ImageSize(_message.Message):
    __slots__ = ("width", "height")
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    width: int
    height: int
    def __init__(self, width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class ClassifyRequest(_message.Message):
    __slots__ = ("image", "options", "top_k")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    image: Image
    options: ImageOptions
    top_k: int
    def __init__(self, image: _Optional[_Union[Image, _Mapping]] = ..., options: _Optional[_Union[ImageOptions, _Mapping]] = ..., top_k: _Optional[int] = ...) -> None: ...

class Label(_message.Message):
    __slots__ = ("class_id", "name", "score")
    CLASS_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    class_id: int
    name: str
    score: float
    def __init__(self, class_id: _Optional[int] = ..., name: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class ClassifyResponse(_message.Message):
    __slots__ = ("labels", "image_size", "served_by")
    LABELS_FIELD_NUMBER: _ClassVar[int]
    IMAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    SERVED_BY_FIELD_NUMBER: _ClassVar[int]
    labels: _containers.RepeatedCompositeFieldContainer[Label]
    image_size: ImageSize
    served_by: _common_pb2.ServedBy
    def __init__(self, labels: _Optional[_Iterable[_Union[Label, _Mapping]]] = ..., image_size: _Optional[_Union[ImageSize, _Mapping]] = ..., served_by: _Optional[_Union[_common_pb2.ServedBy, _Mapping]] = ...) -> None: ...

class DetectFacesRequest(_message.Message):
    __slots__ = ("image", "options")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    image: Image
    options: ImageOptions
    def __init__(self, image: _Optional[_Union[Image, _Mapping]] = ..., options: _Optional[_Union[ImageOptions, _Mapping]] = ...) -> None: ...

class FaceLandmarks(_message.Message):
    __slots__ = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
    LEFT_EYE_FIELD_NUMBER: _ClassVar[int]
    RIGHT_EYE_FIELD_NUMBER: _ClassVar[int]
    NOSE_FIELD_NUMBER: _ClassVar[int]
    MOUTH_LEFT_FIELD_NUMBER: _ClassVar[int]
    MOUTH_RIGHT_FIELD_NUMBER: _ClassVar[int]
    left_eye: Point
    right_eye: Point
    nose: Point
    mouth_left: Point
    mouth_right: Point
    def __init__(self, left_eye: _Optional[_Union[Point, _Mapping]] = ..., right_eye: _Optional[_Union[Point, _Mapping]] = ..., nose: _Optional[_Union[Point, _Mapping]] = ..., mouth_left: _Optional[_Union[Point, _Mapping]] = ..., mouth_right: _Optional[_Union[Point, _Mapping]] = ...) -> None: ...

class Face(_message.Message):
    __slots__ = ("box", "confidence", "landmarks")
    BOX_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    LANDMARKS_FIELD_NUMBER: _ClassVar[int]
    box: Box
    confidence: float
    landmarks: FaceLandmarks
    def __init__(self, box: _Optional[_Union[Box, _Mapping]] = ..., confidence: _Optional[float] = ..., landmarks: _Optional[_Union[FaceLandmarks, _Mapping]] = ...) -> None: ...

class DetectFacesResponse(_message.Message):
    __slots__ = ("faces", "image_size", "served_by")
    FACES_FIELD_NUMBER: _ClassVar[int]
    IMAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    SERVED_BY_FIELD_NUMBER: _ClassVar[int]
    faces: _containers.RepeatedCompositeFieldContainer[Face]
    image_size: ImageSize
    served_by: _common_pb2.ServedBy
    def __init__(self, faces: _Optional[_Iterable[_Union[Face, _Mapping]]] = ..., image_size: _Optional[_Union[ImageSize, _Mapping]] = ..., served_by: _Optional[_Union[_common_pb2.ServedBy, _Mapping]] = ...) -> None: ...

class ReadTextRequest(_message.Message):
    __slots__ = ("image", "options")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    image: Image
    options: ImageOptions
    def __init__(self, image: _Optional[_Union[Image, _Mapping]] = ..., options: _Optional[_Union[ImageOptions, _Mapping]] = ...) -> None: ...

class TextLine(_message.Message):
    __slots__ = ("text", "confidence", "corners", "box")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    CORNERS_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    text: str
    confidence: float
    corners: _containers.RepeatedCompositeFieldContainer[Point]
    box: Box
    def __init__(self, text: _Optional[str] = ..., confidence: _Optional[float] = ..., corners: _Optional[_Iterable[_Union[Point, _Mapping]]] = ..., box: _Optional[_Union[Box, _Mapping]] = ...) -> None: ...

class ReadTextResponse(_message.Message):
    __slots__ = ("lines", "text", "image_size", "served_by")
    LINES_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    SERVED_BY_FIELD_NUMBER: _ClassVar[int]
    lines: _containers.RepeatedCompositeFieldContainer[TextLine]
    text: str
    image_size: ImageSize
    served_by: _common_pb2.ServedBy
    def __init__(self, lines: _Optional[_Iterable[_Union[TextLine, _Mapping]]] = ..., text: _Optional[str] = ..., image_size: _Optional[_Union[ImageSize, _Mapping]] = ..., served_by: _Optional[_Union[_common_pb2.ServedBy, _Mapping]] = ...) -> None: ...

class AnalyzeConfig(_message.Message):
    __slots__ = ("analyses", "models", "top_k", "min_confidence", "max_side", "max_results_per_second", "max_latency_ms")
    class ModelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ANALYSES_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    MIN_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    MAX_SIDE_FIELD_NUMBER: _ClassVar[int]
    MAX_RESULTS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    MAX_LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    analyses: _containers.RepeatedScalarFieldContainer[str]
    models: _containers.ScalarMap[str, str]
    top_k: int
    min_confidence: float
    max_side: int
    max_results_per_second: float
    max_latency_ms: int
    def __init__(self, analyses: _Optional[_Iterable[str]] = ..., models: _Optional[_Mapping[str, str]] = ..., top_k: _Optional[int] = ..., min_confidence: _Optional[float] = ..., max_side: _Optional[int] = ..., max_results_per_second: _Optional[float] = ..., max_latency_ms: _Optional[int] = ...) -> None: ...

class RawFrame(_message.Message):
    __slots__ = ("format", "width", "height", "data")
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    format: PixelFormat
    width: int
    height: int
    data: bytes
    def __init__(self, format: _Optional[_Union[PixelFormat, str]] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class VideoFrame(_message.Message):
    __slots__ = ("encoded", "raw", "capture_time_us", "sequence")
    ENCODED_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_TIME_US_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    encoded: bytes
    raw: RawFrame
    capture_time_us: int
    sequence: int
    def __init__(self, encoded: _Optional[bytes] = ..., raw: _Optional[_Union[RawFrame, _Mapping]] = ..., capture_time_us: _Optional[int] = ..., sequence: _Optional[int] = ...) -> None: ...

class StreamAnalyzeRequest(_message.Message):
    __slots__ = ("config", "frame")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    config: AnalyzeConfig
    frame: VideoFrame
    def __init__(self, config: _Optional[_Union[AnalyzeConfig, _Mapping]] = ..., frame: _Optional[_Union[VideoFrame, _Mapping]] = ...) -> None: ...

class StreamAnalyzeResponse(_message.Message):
    __slots__ = ("sequence", "capture_time_us", "dropped", "faces", "labels", "lines", "image_size", "waited_ms", "served_by")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_TIME_US_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    FACES_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    IMAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    WAITED_MS_FIELD_NUMBER: _ClassVar[int]
    SERVED_BY_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    capture_time_us: int
    dropped: int
    faces: _containers.RepeatedCompositeFieldContainer[Face]
    labels: _containers.RepeatedCompositeFieldContainer[Label]
    lines: _containers.RepeatedCompositeFieldContainer[TextLine]
    image_size: ImageSize
    waited_ms: float
    served_by: _common_pb2.ServedBy
    def __init__(self, sequence: _Optional[int] = ..., capture_time_us: _Optional[int] = ..., dropped: _Optional[int] = ..., faces: _Optional[_Iterable[_Union[Face, _Mapping]]] = ..., labels: _Optional[_Iterable[_Union[Label, _Mapping]]] = ..., lines: _Optional[_Iterable[_Union[TextLine, _Mapping]]] = ..., image_size: _Optional[_Union[ImageSize, _Mapping]] = ..., waited_ms: _Optional[float] = ..., served_by: _Optional[_Union[_common_pb2.ServedBy, _Mapping]] = ...) -> None: ...
