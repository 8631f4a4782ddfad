"""Language/Embed on a real node with the real all-MiniLM-L6-v2 (int8 ONNX): related sentences
are closer than unrelated ones, a text embeds the same alone or in a batch, limits are refused
with INVALID_ARGUMENT, and the call is routed like every other."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import pytest_asyncio

from lanai.api.language.v1 import language_pb2, language_pb2_grpc
from lanai.mesh.node import Node, NodeConfig
from lanai.mesh.presence import LONE
from lanai.services.language.config import LanguageConfig

from .conftest import EMBEDDING_MODEL, INSECURE, LANGUAGE_MODEL
from .processes import up, wait_for_nodes
from .test_mesh import lone_pair

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def embed_node(language_home: Path) -> AsyncIterator[Node]:
    config = NodeConfig(home=language_home, services=("language",), host="127.0.0.1", port=0,
                        metrics_host="127.0.0.1", metrics_port=None, node_id="embed-node",
                        security=INSECURE, mesh=LONE,
                        configs={"language": LanguageConfig(models=(LANGUAGE_MODEL,), slots=2, max_embed_texts=64)})
    node = await Node.start(config)
    yield node
    await node.stop(grace_s=1)


@pytest_asyncio.fixture(loop_scope="session")
async def language(embed_node: Node) -> AsyncIterator[language_pb2_grpc.LanguageStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{embed_node.port}") as channel:
        yield language_pb2_grpc.LanguageStub(channel)


def vectors(reply: language_pb2.EmbedResponse) -> np.ndarray:
    return np.array([e.values for e in reply.embeddings], dtype=np.float32)


async def test_related_sentences_are_closer_than_unrelated_ones(language: language_pb2_grpc.LanguageStub) -> None:
    texts = ["A man is playing a guitar.", "Someone plays an instrument.", "The stock market fell sharply today.",
             "Shares dropped on Wall Street."]
    reply = await language.Embed(language_pb2.EmbedRequest(texts=texts))
    v = vectors(reply)
    assert v.shape == (4, 384) and reply.dimensions == 384 and reply.normalized and reply.max_tokens == 256
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    cosine = v @ v.T
    assert cosine[0, 1] > 0.5 and cosine[2, 3] > 0.5, cosine  # same meaning, different words
    assert cosine[0, 2] < 0.2 and cosine[1, 3] < 0.2, cosine  # music vs markets
    assert reply.prompt_tokens > 4 * 3
    assert reply.served_by.node_id == "embed-node" and reply.served_by.model == EMBEDDING_MODEL


async def test_a_text_embeds_the_same_alone_and_in_a_batch(language: language_pb2_grpc.LanguageStub) -> None:
    short, long = "Hello.", "A much longer sentence that needs many more word pieces than the short one does."
    alone = vectors(await language.Embed(language_pb2.EmbedRequest(texts=[short])))[0]
    batch = vectors(await language.Embed(language_pb2.EmbedRequest(texts=[long, short, long])))
    assert np.allclose(alone, batch[1], atol=1e-4)  # padding beside a longer text changes nothing
    assert np.allclose(batch[0], batch[2], atol=1e-6)


BAD = [
    ("no texts", language_pb2.EmbedRequest(), grpc.StatusCode.INVALID_ARGUMENT, "texts is empty"),
    ("too many texts", language_pb2.EmbedRequest(texts=["hi"] * 65), grpc.StatusCode.INVALID_ARGUMENT,
     "65 texts in one call; at most 64"),
    ("text over the limit", language_pb2.EmbedRequest(texts=["short", "word " * 400]),
     grpc.StatusCode.INVALID_ARGUMENT, "text 1 is 402 tokens; this model embeds at most 256"),
    ("unknown model", language_pb2.EmbedRequest(texts=["hi"], model="ada-002"), grpc.StatusCode.NOT_FOUND,
     "'ada-002' is not served here"),
    ("a generation model", language_pb2.EmbedRequest(texts=["hi"], model="smollm2-135m"),
     grpc.StatusCode.NOT_FOUND, "embedding model 'smollm2-135m' is not served here"),
]


@pytest.mark.parametrize(("request_", "code", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
async def test_bad_input_gets_its_status(language: language_pb2_grpc.LanguageStub, request_: language_pb2.EmbedRequest,
                                         code: grpc.StatusCode, message: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await language.Embed(request_)
    assert caught.value.code() == code and message in (caught.value.details() or ""), caught.value.details()
    assert len((await language.Embed(language_pb2.EmbedRequest(texts=["still up"]))).embeddings) == 1


async def test_embed_through_a_router(language_home: Path) -> None:
    flags = ("--no-router", "--discovery", "none", "--services", "language", "--language-slots", "1")
    async with lone_pair(language_home, ("embed-a", "embed-b"), node_flags=flags) as pair:
        await wait_for_nodes(pair.router.address, lambda nodes: up(nodes, "embed-a", "embed-b"))
        async with grpc.aio.insecure_channel(pair.router.address) as channel:
            stub = language_pb2_grpc.LanguageStub(channel)
            replies = [await stub.Embed(language_pb2.EmbedRequest(texts=["one", "two"]), timeout=60) for _ in range(6)]
            assert {r.served_by.node_id for r in replies} <= {"embed-a", "embed-b"}
            assert all(len(r.embeddings) == 2 for r in replies)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.Embed(language_pb2.EmbedRequest(), timeout=60)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
