"""OCR with PP-OCRv4 (detection, orientation, recognition), run by rapidocr's pipeline on
the model files in our cache, with onnxruntime threads sized like every other session."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from lanai.services.vision.types import TextLine

FILES = ("det.onnx", "rec.onnx", "cls.onnx")


class TextReader:
    def __init__(self, folder: Path, threads: int, use_cuda: bool) -> None:
        from rapidocr_onnxruntime import RapidOCR  # imports OpenCV: only when OCR is served

        self._ocr: Any = RapidOCR(
            det_model_path=str(folder / "det.onnx"), rec_model_path=str(folder / "rec.onnx"),
            cls_model_path=str(folder / "cls.onnx"), intra_op_num_threads=threads, inter_op_num_threads=1,
            det_use_cuda=use_cuda, cls_use_cuda=use_cuda, rec_use_cuda=use_cuda,
            text_score=0.0)  # every line is returned; the request's min_confidence filters
        logging.getLogger("RapidOCR").setLevel(logging.WARNING)

    def read(self, rgb: np.ndarray, min_score: float) -> list[TextLine]:
        found, _ = self._ocr(np.ascontiguousarray(rgb[:, :, ::-1]))  # rapidocr takes OpenCV's BGR order
        # rapidocr returns lines in reading order (top to bottom, then left to right)
        return [TextLine(str(text), float(score), tuple((float(x), float(y)) for x, y in corners))
                for corners, text, score in (found or []) if float(score) >= min_score and str(text).strip()]
