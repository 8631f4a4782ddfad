"""The vision engine: one onnxruntime session set per model, created once, and the three tasks
(classification, faces, OCR) as plain functions of a decoded picture. No protobuf here."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort

from lanai.services.core.onnx import providers
from lanai.services.core.errors import InvalidInput, ModelNotFound, quote
from lanai.services.models import MANIFEST, ResolvedModel
from lanai.services.vision.classify import Classifier
from lanai.services.vision.config import VisionConfig
from lanai.services.vision.image import Picture
from lanai.services.vision.mtcnn import FaceDetector
from lanai.services.vision.ocr import FILES as OCR_FILES, TextReader
from lanai.services.vision.types import TASKS, Face, Label, TextLine

log = logging.getLogger(__name__)
ACCELERATED = ("CUDAExecutionProvider", "CoreMLExecutionProvider")
DEFAULT_MIN_CONFIDENCE = {"classify": 0.0, "faces": 0.9, "ocr": 0.5}
"""What a request's min_confidence 0 means, per task."""


@dataclass(frozen=True)
class LoadedModel:
    name: str
    task: str
    source: str
    devices: tuple[str, ...]
    """onnxruntime execution providers its sessions run on."""


def task_of(folder: Path) -> str:
    """The task a model directory serves: from its manifest (embedded models), else from its files."""
    try:
        task = json.loads((folder / MANIFEST).read_text()).get("task", "")
        if task in TASKS:
            return str(task)
    except (OSError, ValueError):
        pass
    if (folder / "model.onnx").is_file() and (folder / "labels.json").is_file():
        return "classify"
    if all((folder / f"{net}.onnx").is_file() for net in ("pnet", "rnet", "onet")):
        return "faces"
    if all((folder / name).is_file() for name in OCR_FILES):
        return "ocr"
    raise ModelNotFound(f"{folder} is not a vision model: expected model.onnx + labels.json (classify), "
                        f"pnet/rnet/onet.onnx (faces) or {'/'.join(OCR_FILES)} (ocr)")


class VisionEngine:
    def __init__(self, models: Sequence[ResolvedModel], config: VisionConfig) -> None:
        if not models:
            raise ValueError("the vision service needs at least one model")
        self.config = config
        self.threads = config.cpu_threads or max(1, (os.cpu_count() or 1) // config.slots)
        options = ort.SessionOptions()
        # Concurrency comes from the slots: each request gets `threads` cores, so N slots never
        # oversubscribe the machine (onnxruntime's default is one thread per core per session).
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # Idle intra-op threads would busy-wait for more work, taking cores from the other slots
        # and services (measured: faces 72-76 ms with 2 spinning threads, 42-49 ms without).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        wanted = providers(config.device, "vision", ACCELERATED)
        self._classifiers: dict[str, Classifier] = {}
        self._detectors: dict[str, FaceDetector] = {}
        self._readers: dict[str, TextReader] = {}
        self.models: list[LoadedModel] = []
        self.defaults: dict[str, str] = {}
        for model in models:
            if any(m.name == model.name for m in self.models):
                raise ValueError(f"vision model {model.name!r} is listed twice")
            task = task_of(model.path)
            if task == "classify":
                classifier = Classifier(model.path, options, wanted)
                self._classifiers[model.name] = classifier
                devices = tuple(classifier.session.get_providers())
            elif task == "faces":
                detector = FaceDetector(model.path / "pnet.onnx", model.path / "rnet.onnx", model.path / "onet.onnx",
                                        session_options=options, providers=wanted)
                self._detectors[model.name] = detector
                devices = tuple(wanted)
            else:
                use_cuda = "CUDAExecutionProvider" in wanted
                self._readers[model.name] = TextReader(model.path, self.threads, use_cuda)
                devices = ("CUDAExecutionProvider", "CPUExecutionProvider") if use_cuda else ("CPUExecutionProvider",)
            self.models.append(LoadedModel(model.name, task, model.source, devices))
            self.defaults.setdefault(task, model.name)
            log.info("vision: loaded %s (%s) on %s, %d thread(s) per slot", model.name, task, devices[0], self.threads)

    def resolve(self, task: str, name: str) -> str:
        """The model a request for `task` runs on: the named one, or the task's default."""
        if not name:
            if task not in self.defaults:
                raise ModelNotFound(f"this node serves no {task} model; it has: "
                                    f"{', '.join(f'{m.name} ({m.task})' for m in self.models)}")
            return self.defaults[task]
        model = next((m for m in self.models if m.name == name), None)
        if model is None:
            raise ModelNotFound(f"vision model {quote(name)} is not served here; this node has: "
                                f"{', '.join(f'{m.name} ({m.task})' for m in self.models)}")
        if model.task != task:
            raise InvalidInput(f"model {quote(name)} is a {model.task} model and cannot do {task}; "
                               f"use a {task} model ({self.defaults.get(task, 'none here')}) or leave model empty")
        return name

    def classify(self, picture: Picture, model: str, top_k: int, min_confidence: float) -> list[Label]:
        return self._classifiers[model].classify(picture.rgb, top_k, _threshold("classify", min_confidence))

    def faces(self, picture: Picture, model: str, min_confidence: float) -> list[Face]:
        found = self._detectors[model].detect(picture.rgb)
        k, threshold = picture.scale, _threshold("faces", min_confidence)
        return [Face((f.box[0] * k, f.box[1] * k, f.box[2] * k, f.box[3] * k), f.confidence,
                     tuple((x * k, y * k) for x, y in f.landmarks))
                for f in found if f.confidence >= threshold]

    def read_text(self, picture: Picture, model: str, min_confidence: float) -> list[TextLine]:
        k = picture.scale
        return [TextLine(line.text, line.confidence, tuple((x * k, y * k) for x, y in line.corners))
                for line in self._readers[model].read(picture.rgb, _threshold("ocr", min_confidence))]


def _threshold(task: str, requested: float) -> float:
    return requested or DEFAULT_MIN_CONFIDENCE[task]
