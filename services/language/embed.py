"""Sentence embeddings with an ONNX encoder (all-MiniLM-L6-v2): `tokenizers` cuts the word
pieces, onnxruntime runs the encoder, the vectors are the mean over each text's real tokens
(the model card's pooling), scaled to unit length. Texts longer than the model's limit are
refused, not truncated: a silently shortened document would be found for the wrong reasons."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lanai.services.core.errors import InvalidInput, ModelNotFound, quote
from lanai.services.language.config import LanguageConfig
from lanai.services.models import ResolvedModel

log = logging.getLogger(__name__)
MAX_TOKENS = 256
"""all-MiniLM-L6-v2 was trained on at most 256 word pieces (its max_seq_length)."""
BATCH = 32
"""Texts per encoder run: sorted by length first, so each run pads little."""


@dataclass(frozen=True)
class EmbeddingModel:
    name: str
    source: str
    devices: tuple[str, ...]
    dimensions: int
    max_tokens: int


@dataclass(frozen=True)
class Embeddings:
    vectors: np.ndarray
    """float32, one row per text, unit length."""
    tokens: int
    """Tokens in all the texts, special tokens included."""


class _Encoder:
    def __init__(self, resolved: ResolvedModel, threads: int) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        folder = resolved.path
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_truncation()  # the file pads and truncates to 128: we pad per batch, refuse over the limit
        self.tokenizer.no_padding()
        self.max_tokens = MAX_TOKENS
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.dimensions = int(self.session.get_outputs()[0].shape[-1])

    def encode(self, texts: Sequence[str]) -> Embeddings:
        encodings = self.tokenizer.encode_batch(list(texts))
        for index, encoding in enumerate(encodings):
            if len(encoding.ids) > self.max_tokens:
                raise InvalidInput(f"text {index} is {len(encoding.ids)} tokens; this model embeds at most "
                                   f"{self.max_tokens} a text (texts are refused, not truncated): split it")
        out = np.empty((len(texts), self.dimensions), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        for start in range(0, len(order), BATCH):
            rows = order[start:start + BATCH]
            out[rows] = self._run([encodings[i] for i in rows])
        return Embeddings(out, sum(len(e.ids) for e in encodings))

    def _run(self, encodings: Sequence[Any]) -> np.ndarray:
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, e in enumerate(encodings):
            ids[row, :len(e.ids)] = e.ids
            mask[row, :len(e.ids)] = 1
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        hidden: np.ndarray = self.session.run(None, feed)[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        unit: np.ndarray = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return unit


class Embedder:
    """The node's embedding models, each an onnxruntime session (thread-safe: calls may run at once)."""

    def __init__(self, models: Sequence[ResolvedModel], config: LanguageConfig) -> None:
        threads = config.threads or os.cpu_count() or 1
        self.config = config
        self._encoders: dict[str, _Encoder] = {}
        for resolved in models:
            if resolved.name in self._encoders:
                raise ValueError(f"embedding model {resolved.name!r} is listed twice")
            self._encoders[resolved.name] = _Encoder(resolved, threads)
            log.info("language: loaded embedding model %s from %s", resolved.name, resolved.path)
        self.default_model = models[0].name if models else ""
        self.models = [EmbeddingModel(r.name, r.source, ("CPUExecutionProvider",), self._encoders[r.name].dimensions,
                                      self._encoders[r.name].max_tokens) for r in models]

    def resolve(self, name: str) -> str:
        if not self._encoders:
            raise ModelNotFound("this node serves no embedding model; start it with --language-embedding-models "
                                "minilm-l6, or call another node")
        if not name:
            return self.default_model
        if name not in self._encoders:
            raise ModelNotFound(f"embedding model {quote(name)} is not served here; this node has: "
                                f"{', '.join(self._encoders)}")
        return name

    def check(self, texts: Sequence[str]) -> None:
        """Refuse a batch before any work: empty, or too many texts."""
        if not texts:
            raise InvalidInput("texts is empty: send 1 or more texts to embed")
        if len(texts) > self.config.max_embed_texts:
            raise InvalidInput(f"{len(texts)} texts in one call; at most {self.config.max_embed_texts}: "
                               "split them over several calls")

    def embed(self, model: str, texts: Sequence[str]) -> Embeddings:
        """Blocking (run it off the event loop)."""
        self.check(texts)
        return self._encoders[model].encode(texts)

    def info(self, model: str) -> EmbeddingModel:
        return next(m for m in self.models if m.name == model)

