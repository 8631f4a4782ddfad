"""The language engine in-process on the real SmolLM2: a failing generation step fails only the
requests it carried, and the engine keeps serving."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lanai.services import models
from lanai.services.language.config import LanguageConfig
from lanai.services.language.mlx_engine import MlxEngine as LanguageEngine
from lanai.services.language.types import Message, Sampling

from .conftest import LANGUAGE_MODEL

pytestmark = pytest.mark.asyncio(loop_scope="session")
GREEDY = Sampling(max_tokens=12, temperature=0.0)


@pytest.fixture(scope="module")
def engine(language_home: Path) -> Iterator[LanguageEngine]:
    started = LanguageEngine([models.resolve(language_home, LANGUAGE_MODEL, "language")], LanguageConfig(engine="mlx", slots=2))
    yield started
    started.close()


async def answer(engine: LanguageEngine, question: str) -> str:
    tokens = engine.encode(LANGUAGE_MODEL, [Message("user", question)])
    return "".join([chunk.text async for chunk in engine.generate(LANGUAGE_MODEL, tokens, GREEDY)])


async def test_a_failed_step_fails_its_requests_and_the_engine_recovers(engine: LanguageEngine) -> None:
    before = await answer(engine, "What is the capital of Japan?")
    assert "Tokyo" in before
    batch = engine._models[LANGUAGE_MODEL].batch  # noqa: SLF001 - inject one failure into the real batch

    def broken_step() -> None:
        raise MemoryError("simulated: the accelerator ran out of memory")

    batch.next = broken_step
    with pytest.raises(RuntimeError, match="generation failed on this node: simulated"):
        await answer(engine, "What is the capital of Japan?")
    assert engine._models[LANGUAGE_MODEL].batch is not batch  # noqa: SLF001 - a fresh batch replaced it
    assert await answer(engine, "What is the capital of Japan?") == before
