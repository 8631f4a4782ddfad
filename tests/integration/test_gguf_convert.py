"""lanai.services.language.gguf_convert on the real embedded GGUFs: the mlx conversion of each
architecture in the catalog (llama: SmolLM2; qwen2: Qwen2.5, the default) tokenizes as llama.cpp
does and answers as llama.cpp does; files it cannot convert are refused by name."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFWriter

from lanai.services import models
from lanai.services.language.config import LanguageConfig
from lanai.services.language.gguf_convert import convert
from lanai.services.language.llamacpp_engine import LlamaCppEngine
from lanai.services.language.mlx_engine import MlxEngine
from lanai.services.language.types import Message, Sampling

from .conftest import _prepare

CHAT_MODELS = ("smollm2-135m", "qwen2.5-coder-0.5b")
TEXTS = (
    "Hello world", "  leading spaces and\ttabs\n\nnewlines\r\n", "12345 numbers 3.14159 and 1,000,000",
    "I'm sure they've said we'll go, I'D SAY", "def f(x):\n    return x**2  # squared",
    "Ünïcödé café naïve 東京 日本語 😀👍", "https://example.com/a?b=c&d=e", "    \n  \n   x",
)
"""Raw prompts. Not here: control tokens written as text (mlx-lm matches them, llama.cpp's raw
prompts do not) and text that is not NFC (Qwen2's own tokenizer normalizes it, llama.cpp does not)."""


@pytest.fixture(scope="module", params=CHAT_MODELS)
def engines(request: pytest.FixtureRequest, lanai_home: Path) -> Iterator[tuple[str, LlamaCppEngine, MlxEngine]]:
    name = request.param
    _prepare(lanai_home, name, engines=("llama.cpp", "mlx"))
    resolved = models.resolve(lanai_home, name, "language", auto_prepare=False, engine="mlx")
    config = LanguageConfig(models=(name,), slots=1)
    llama, mlx = LlamaCppEngine([resolved], config), MlxEngine([resolved], config)
    yield name, llama, mlx
    llama.close()
    mlx.close()


def test_the_converted_tokenizer_splits_text_as_llama_cpp_does(engines: tuple[str, LlamaCppEngine, MlxEngine]) -> None:
    name, llama, mlx = engines
    for text in TEXTS:
        assert mlx.encode(name, text) == llama.encode(name, text), text
    chat = [Message("system", "Be brief."), Message("user", "Hi there!")]
    assert mlx.encode(name, chat) == llama.encode(name, chat)


def test_the_converted_model_answers_as_llama_cpp_does(engines: tuple[str, LlamaCppEngine, MlxEngine]) -> None:
    """Greedy, the float32 conversion and llama.cpp's quantized kernels agree on a short answer
    (longer ones drift apart: the GGUF's weights are quantized, the conversion's are not)."""
    name, llama, mlx = engines
    greedy = Sampling(max_tokens=8, temperature=0.0)

    async def answer(engine: LlamaCppEngine | MlxEngine) -> str:
        tokens = engine.encode(name, [Message("user", "What is the capital of France? Answer in one word.")])
        return "".join([chunk.text async for chunk in engine.generate(name, tokens, greedy)])

    from_llama, from_mlx = asyncio.run(answer(llama)), asyncio.run(answer(mlx))
    assert "Paris" in from_llama
    assert from_mlx == from_llama


def test_an_unsupported_architecture_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "other.gguf"
    writer = GGUFWriter(path, "gemma")
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ValueError, match="architecture 'gemma' is not supported; GGUF files of 'llama', 'qwen2'"):
        convert(path, tmp_path / "out", progress=lambda _: None)
