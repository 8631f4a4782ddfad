"""A Piper voice (a VITS model exported to ONNX, with its .onnx.json) run on onnxruntime. The
phonemes come from the espeak-ng program (services/voice/espeak.py); piper-tts itself and
piper-phonemize are GPL-3.0 and never imported."""

from __future__ import annotations

import json
import logging
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from lanai.services.core.errors import ModelNotPrepared
from lanai.services.voice import espeak
from lanai.services.voice.espeak import bcp47
from lanai.services.voice.types import Audio, VoiceInfo

log = logging.getLogger(__name__)
BOS, EOS, PAD = "^", "$", "_"
"""Piper's symbols for the start and end of an utterance and the padding after every phoneme."""
SENTENCE_GAP_S = 0.2
"""Silence between two sentences that one `synthesize` call was given."""


class PiperVoice:
    """One Piper voice. `synthesize` may run from several threads at once (one onnxruntime
    session, which is safe to share)."""

    def __init__(self, name: str, model_path: Path, config_path: Path, *, threads: int = 0,
                 providers: Sequence[str] = ("CPUExecutionProvider",), program: str | None = None,
                 source: str = "path") -> None:
        try:
            config = json.loads(Path(config_path).read_text(encoding="utf-8"))
            self.sample_rate = int(config["audio"]["sample_rate"])
            self.espeak_voice = str(config["espeak"]["voice"])
            self.ids: dict[str, list[int]] = {k: [int(i) for i in v] for k, v in config["phoneme_id_map"].items()}
            inference = config.get("inference", {})
            self.noise_scale = float(inference.get("noise_scale", 0.667))
            self.length_scale = float(inference.get("length_scale", 1.0))
            self.noise_w = float(inference.get("noise_w", 0.8))
            code = config.get("language", {}).get("code", self.espeak_voice)
            num_speakers = int(config.get("num_speakers", 1))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ModelNotPrepared(f"Piper voice {name!r}: {config_path} is not a readable Piper voice config ({exc}); "
                                   "it must be the .onnx.json that came with the .onnx") from None
        missing = [s for s in (BOS, EOS, PAD) if s not in self.ids]
        if missing:
            raise ModelNotPrepared(f"Piper voice {name!r}: {config_path} maps no id to {', '.join(missing)}; "
                                   "only espeak-phoneme Piper voices are supported")
        self.program = program or espeak.find_program()
        options = ort.SessionOptions()
        if threads > 0:
            options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        # Slots run sessions side by side: idle threads spinning for work would take their cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(model_path), options, providers=list(providers))
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable files
            raise ModelNotPrepared(f"Piper voice {name!r}: {model_path} could not be loaded ({exc}); "
                                   "reinstall or re-download the voice") from None
        self._inputs = {i.name for i in self.session.get_inputs()}
        self._unknown: set[str] = set()
        language = bcp47(str(code))
        speakers = f", {num_speakers} speakers" if num_speakers > 1 else ""
        quality = config.get("audio", {}).get("quality", "")
        self.info = VoiceInfo(name, "piper", language, self.sample_rate, source,
                              f"Piper {config.get('dataset', name)} voice ({language}, {quality} quality{speakers}) "
                              "on onnxruntime")

    @property
    def device(self) -> str:
        return "cuda" if self.session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"

    def synthesize(self, text: str, rate: float = 1.0) -> Audio:
        """Speech for `text` at `rate` times the normal speed: one model run per sentence."""
        parts = [self._speak(p, rate) for p in espeak.phonemize(text, self.espeak_voice, self.program)]
        gap = np.zeros(int(SENTENCE_GAP_S * self.sample_rate), np.int16)
        joined = [piece for part in parts for piece in (part, gap)][:-1]
        pcm = np.concatenate(joined) if joined else np.zeros(0, np.int16)
        return Audio(pcm.astype("<i2").tobytes(), self.sample_rate)

    def phoneme_ids(self, phonemes: str) -> list[int]:
        """Ids the way Piper voices were trained: "^", then each phoneme's id(s) followed by the
        pad "_" (one pad right after "^" too), then "$". Code points are NFD (the map holds
        combining marks on their own); a phoneme the voice lacks is skipped."""
        pad = self.ids[PAD]
        ids = [*self.ids[BOS], *pad]
        for phoneme in unicodedata.normalize("NFD", phonemes):
            known = self.ids.get(phoneme)
            if known is None:
                if phoneme not in self._unknown:
                    self._unknown.add(phoneme)
                    log.debug("Piper voice %s has no phoneme %r (U+%04X); skipped", self.info.name, phoneme,
                              ord(phoneme))
                continue
            ids.extend(known)
            ids.extend(pad)
        ids.extend(self.ids[EOS])
        return ids

    def _speak(self, phonemes: str, rate: float) -> np.ndarray[Any, np.dtype[np.int16]]:
        ids = self.phoneme_ids(phonemes)
        feeds: dict[str, np.ndarray[Any, Any]] = {
            "input": np.array([ids], dtype=np.int64),
            "input_lengths": np.array([len(ids)], dtype=np.int64),
            "scales": np.array([self.noise_scale, self.length_scale / rate, self.noise_w], dtype=np.float32),
        }
        if "sid" in self._inputs:
            feeds["sid"] = np.array([0], dtype=np.int64)  # the first speaker of a multi-speaker voice
        audio = np.asarray(self.session.run(None, feeds)[0], dtype=np.float32).reshape(-1)
        return (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16)
