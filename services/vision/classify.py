"""Image classification with an ONNX classifier and its label list (EfficientNet-Lite0 by default)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from PIL import Image

from lanai.services.vision.types import Label

IMAGE_SIZE = 224
"""Side of the square input the network was trained and exported for."""
CROP_FRACTION = 224 / 256
"""Share of the shorter side kept by the centre crop: TF EfficientNet's eval transform (32 px crop padding)."""
RESAMPLE = Image.Resampling.BILINEAR
"""Pillow's antialiased bilinear scored a little better than bicubic on every test photo."""
MEAN = 127.0
STD = 128.0
"""Normalisation of 0-255 RGB the TF EfficientNet-Lite models were trained with, (x - 127) / 128 for
every channel; ImageNet's per-channel mean/std (what PyTorch ports usually assume) scored worse on
these weights: espresso 0.84 instead of 0.96 on scikit-image's coffee photo."""


def preprocess(rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """uint8 HxWx3 RGB of any size to the model's float32 [1, 3, 224, 224] input: the centre square
    of CROP_FRACTION of the shorter side scaled to 224 (Pillow crops and resizes in one pass, which
    equals resizing the shorter side to 256 and cropping 224, without the intermediate rounding)."""
    height, width = rgb.shape[:2]
    side = CROP_FRACTION * min(height, width)
    left, top = (width - side) / 2, (height - side) / 2
    image = Image.fromarray(rgb).resize((IMAGE_SIZE, IMAGE_SIZE), RESAMPLE, box=(left, top, left + side, top + side))
    pixels = (np.asarray(image, np.float32) - MEAN) / STD
    return np.ascontiguousarray(pixels.transpose(2, 0, 1)[None])


class Classifier:
    def __init__(self, folder: Path, options: ort.SessionOptions, providers: list[str]) -> None:
        self.session = ort.InferenceSession(str(folder / "model.onnx"), options, providers=providers)
        self.labels: list[str] = json.loads((folder / "labels.json").read_text())
        self._input = self.session.get_inputs()[0].name

    def classify(self, rgb: np.ndarray, top_k: int, min_score: float) -> list[Label]:
        logits = self.session.run(None, {self._input: preprocess(rgb)})[0][0].astype(np.float64)
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        best = np.argsort(-probs, kind="stable")[:top_k]
        return [Label(int(i), self.labels[i], float(probs[i])) for i in best if probs[i] >= min_score]
