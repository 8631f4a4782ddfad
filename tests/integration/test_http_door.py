"""The HTTP door (issue 15) with the real `openai` SDK against a real routing node: speech
(tiny.en), language (SmolLM2 and MiniLM embeddings) and voice (espeak-ng), on loopback.
Junk and disconnects go through the standard library's http.client."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import openai
import pytest
import pytest_asyncio

from lanai.mesh.node import Node, NodeConfig
from lanai.mesh.presence import MeshConfig
from lanai.services.speech.config import SpeechConfig

from .conftest import INSECURE, has_keywords, wav_pcm

SENTENCE = "The quick brown fox jumps over the lazy dog."


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def door_node(lanai_home: Path) -> AsyncIterator[Node]:
    """`lanai up` in miniature: one node that routes (to itself), with the HTTP door on."""
    config = NodeConfig(home=lanai_home, services=("speech", "language", "voice"), host="127.0.0.1", port=0,
                        mesh_port=0, metrics_port=None, http_port=0, node_id="door-node", security=INSECURE,
                        mesh=MeshConfig(router=True, discovery="none"), max_message_bytes=2 * 1024 * 1024,
                        configs={"speech": SpeechConfig(models=("tiny.en",))})
    node = await Node.start(config)
    yield node
    await node.stop(grace_s=1)


@pytest.fixture
def client(door_node: Node) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"http://127.0.0.1:{door_node.http_port}/v1", api_key="unused", max_retries=0,
                         timeout=120)


async def sdk(work: Callable[[], Any]) -> Any:
    """The SDK's client is synchronous: run it off the loop the node serves on."""
    return await asyncio.to_thread(work)


def raw(node: Node, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
        ) -> tuple[int, dict[str, Any] | str]:
    connection = http.client.HTTPConnection("127.0.0.1", node.http_port, timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        text = response.read().decode()
        kind = response.getheader("content-type", "")
        return response.status, json.loads(text) if kind.startswith("application/json") else text
    finally:
        connection.close()


async def test_models_lists_every_service(door_node: Node, client: openai.OpenAI) -> None:
    models = {(m.id, m.service) for m in (await sdk(client.models.list)).data}  # type: ignore[attr-defined]
    assert {("tiny.en", "speech"), ("smollm2-135m", "language"), ("minilm-l6", "language"),
            ("en-us", "voice")} <= models


async def test_chat_whole_and_streamed(client: openai.OpenAI) -> None:
    messages = [{"role": "user", "content": "Count from one to five."}]
    reply = await sdk(lambda: client.chat.completions.create(model="smollm2-135m", messages=messages,  # type: ignore
                                                             max_tokens=12, temperature=0, seed=1))
    assert reply.choices[0].message.content and reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage.completion_tokens > 0 and reply.usage.prompt_tokens > 0

    def streamed() -> tuple[str, list[Any]]:
        chunks = list(client.chat.completions.create(model="default", messages=messages, max_tokens=12,  # type: ignore
                                                     temperature=0, seed=1, stream=True,
                                                     stream_options={"include_usage": True}))
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices), chunks
    text, chunks = await sdk(streamed)
    assert text == reply.choices[0].message.content  # greedy: the same answer, streamed
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == reply.usage.completion_tokens


async def test_completions(client: openai.OpenAI) -> None:
    reply = await sdk(lambda: client.completions.create(model="smollm2-135m", prompt="One, two, three,",
                                                        max_tokens=5, temperature=0))
    assert reply.choices[0].text and reply.usage.completion_tokens <= 5


async def test_embeddings_base64_and_float_agree(client: openai.OpenAI) -> None:
    texts = ["the cat sat on the mat", "a kitten rested on the rug"]
    packed = await sdk(lambda: client.embeddings.create(model="minilm-l6", input=texts))  # SDK default: base64
    floats = await sdk(lambda: client.embeddings.create(model="default", input=texts, encoding_format="float"))
    assert len(packed.data) == 2 and len(packed.data[0].embedding) == 384
    assert packed.data[1].embedding == pytest.approx(floats.data[1].embedding, abs=1e-6)
    assert packed.usage.prompt_tokens > 0


async def test_speech_then_transcription_in_every_format(client: openai.OpenAI) -> None:
    wav = (await sdk(lambda: client.audio.speech.create(model="tts-1", voice="alloy", input=SENTENCE,
                                                        response_format="wav"))).read()
    rate, pcm = wav_pcm(wav)
    assert rate > 0 and len(pcm) > rate  # over a second of speech

    def transcribe(fmt: str, **extra: Any) -> Any:
        return client.audio.transcriptions.create(model="whisper-1", file=("fox.wav", wav), response_format=fmt,
                                                  **extra)  # type: ignore[call-overload]
    assert has_keywords((await sdk(lambda: transcribe("json"))).text, ("quick", "brown", "fox"))
    assert has_keywords(await sdk(lambda: transcribe("text")), ("fox",))
    srt = await sdk(lambda: transcribe("srt"))
    assert srt.startswith("1\n00:00:0") and " --> " in srt and "fox" in srt.lower()
    vtt = await sdk(lambda: transcribe("vtt"))
    assert vtt.startswith("WEBVTT\n\n00:00:0") and "fox" in vtt.lower()
    verbose = await sdk(lambda: transcribe("verbose_json", timestamp_granularities=["word"]))
    assert verbose.language == "en" and verbose.duration == pytest.approx(len(pcm) / rate, abs=0.1)
    assert verbose.segments and any("fox" in w.word.lower() for w in verbose.words)
    assert all(w.start <= w.end for w in verbose.words)
    with pytest.raises(openai.BadRequestError) as english_only:  # /translations asks the node to translate
        await sdk(lambda: client.audio.translations.create(model="tiny.en", file=("fox.wav", wav)))
    assert "cannot translate" in english_only.value.message


async def test_pcm_is_24khz(client: openai.OpenAI) -> None:
    wav = (await sdk(lambda: client.audio.speech.create(model="tts-1", voice="en-us", input=SENTENCE,
                                                        response_format="wav"))).read()
    pcm = (await sdk(lambda: client.audio.speech.create(model="tts-1", voice="en-us", input=SENTENCE,
                                                        response_format="pcm"))).read()
    rate, samples = wav_pcm(wav)
    assert len(pcm) // 2 == pytest.approx(len(samples) * 24000 / rate, abs=2)


async def test_errors_have_openai_shape_and_status(door_node: Node, client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        await sdk(lambda: client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}]))
    assert "smollm2-135m" in missing.value.message and missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        await sdk(lambda: client.chat.completions.create(model="default", messages=[{"role": "user", "content": "x"}],
                                                         n=2))
    assert bad.value.param == "n"
    with pytest.raises(openai.BadRequestError) as high:
        await sdk(lambda: client.chat.completions.create(model="default", messages=[{"role": "user", "content": "x"}],
                                                         temperature=7))
    assert high.value.param == "temperature"
    with pytest.raises(openai.BadRequestError) as fmt:
        await sdk(lambda: client.audio.speech.create(model="tts-1", voice="alloy", input="hi", response_format="mp3"))
    assert "wav, pcm" in fmt.value.message
    with pytest.raises(openai.NotFoundError):
        await sdk(lambda: client.audio.speech.create(model="tts-1", voice="nobody", input="hi"))


JUNK = [
    ("POST", "/v1/chat/completions", b"{not json", {"Content-Type": "application/json"}, 400, "not valid JSON"),
    ("POST", "/v1/chat/completions", b"[1, 2]", {"Content-Type": "application/json"}, 400, "JSON object"),
    ("POST", "/v1/chat/completions", b"model=x", {"Content-Type": "text/plain"}, 400, "application/json"),
    ("POST", "/v1/chat/completions", b'{"model": "default", "messages": "hi"}', {"Content-Type": "application/json"},
     400, "non-empty list"),
    ("POST", "/v1/chat/completions", json.dumps({"model": "default", "messages": [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}).encode(),
     {"Content-Type": "application/json"}, 400, "text only"),
    ("POST", "/v1/embeddings", b'{"model": "default", "input": [[1, 2, 3]]}', {"Content-Type": "application/json"},
     400, "token arrays"),
    ("POST", "/v1/audio/transcriptions", b'{"file": "x"}', {"Content-Type": "application/json"}, 400,
     "multipart/form-data"),
    ("POST", "/v1/audio/transcriptions", b"--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n--b--\r\n",
     {"Content-Type": "multipart/form-data; boundary=b"}, 400, "'file' is required"),
    ("POST", "/v1/audio/transcriptions", b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.wav\""
     b"\r\n\r\nnot audio at all\r\n--b--\r\n", {"Content-Type": "multipart/form-data; boundary=b"}, 400, ""),
    ("POST", "/v1/audio/speech", b'{"input": "   ", "voice": "alloy"}', {"Content-Type": "application/json"}, 400, ""),
]


@pytest.mark.parametrize("method,path,body,headers,status,says", JUNK)
async def test_junk_gets_4xx_and_the_node_stays_up(door_node: Node, method: str, path: str, body: bytes,
                                                   headers: dict[str, str], status: int, says: str) -> None:
    code, answer = await asyncio.to_thread(raw, door_node, method, path, body, headers)
    assert code == status, answer
    assert isinstance(answer, dict) and answer["error"]["type"] == "invalid_request_error"
    assert says in answer["error"]["message"]
    code, _ = await asyncio.to_thread(raw, door_node, "GET", "/v1/models")
    assert code == 200


async def test_oversized_body_is_refused_before_it_is_read(door_node: Node) -> None:
    big = b"x" * (3 * 1024 * 1024)  # the node takes 2 MiB messages
    code, answer = await asyncio.to_thread(raw, door_node, "POST", "/v1/audio/transcriptions", big,
                                           {"Content-Type": "multipart/form-data; boundary=b"})
    assert code == 413 and isinstance(answer, dict) and "limit of 2097152 bytes" in answer["error"]["message"]


async def language_in_flight(node: Node) -> int:
    _, answer = await asyncio.to_thread(raw, node, "GET", "/lanai/v1/nodes")
    assert isinstance(answer, dict)
    return sum(int(s.get("in_flight", 0)) for n in answer["nodes"] for s in n.get("last_load", {}).get("services", [])
               if s["service"] == "language")


async def test_a_client_that_leaves_mid_stream_frees_the_slot(door_node: Node) -> None:
    body = json.dumps({"model": "default", "messages": [{"role": "user", "content": "Write a long story."}],
                       "max_tokens": 2000, "stream": True, "temperature": 0.8}).encode()

    connection = http.client.HTTPConnection("127.0.0.1", door_node.http_port, timeout=60)

    def start() -> bytes:
        connection.request("POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"})
        return connection.getresponse().read(6)
    assert (await asyncio.to_thread(start)).startswith(b"data: ")
    for _ in range(25):  # the router's view of the node: its load reports come every 0.5 s
        if await language_in_flight(door_node) >= 1:
            break
        await asyncio.sleep(0.2)
    assert await language_in_flight(door_node) >= 1
    connection.sock.shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]  # gone without a word, mid-generation
    connection.close()
    for _ in range(50):  # the generation of up to 2000 tokens stops within seconds, not minutes
        await asyncio.sleep(0.2)
        if await language_in_flight(door_node) == 0:
            break
    assert await language_in_flight(door_node) == 0


async def test_console_page_and_nodes(door_node: Node) -> None:
    code, page = await asyncio.to_thread(raw, door_node, "GET", "/")
    assert code == 200 and isinstance(page, str) and "/console.js" in page
    code, script = await asyncio.to_thread(raw, door_node, "GET", "/console.js")
    assert code == 200 and "/v1/chat/completions" in str(script)
    code, nodes = await asyncio.to_thread(raw, door_node, "GET", "/lanai/v1/nodes")
    assert code == 200 and isinstance(nodes, dict) and nodes["nodes"][0]["node_id"] == "door-node"
