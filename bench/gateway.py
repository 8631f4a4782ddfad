"""HTTP door benchmark: what does the OpenAI-compatible door cost over calling gRPC directly?

One real `lanai node --insecure` (speech with tiny.en, language with the default SmolLM2), its
HTTP door on, started as a subprocess on 127.0.0.1 and routing to itself. This process is the
client of both doors: grpc.aio for gRPC, and for HTTP a minimal asyncio HTTP/1.1 client on one
kept-alive connection (so the numbers are the door's cost, not a client library's; a tool using
the `openai` SDK adds that SDK's own time on its side).

1. Chat: the same greedy request (temperature 0, seed 1, 24 tokens) as Language/GenerateStream
   and as POST /v1/chat/completions with `stream: true` (server-sent events), alternating
   ABBA after a warm-up. Time to first token (the first message / event that carries text) and
   total time (to the last message / `data: [DONE]`). Generation time varies from call to call
   by more than the door costs, so besides the two p50s and their difference, the door's cost
   is also given as the difference of the medians of (client wall time - the node's own numbers
   for the same call: its time to first token, and its queue + compute time), which takes the
   generation out. Target: HTTP adds <= 5 ms at p50.
2. Transcription: a ~10 s espeak-ng clip through Speech/Transcribe and through POST
   /v1/audio/transcriptions (multipart, response_format json), alternating. Ratio of the p50s
   (target <= 1.02) and their difference.
3. GET /v1/models: requests per second with 1 and 8 concurrent kept-alive connections for a few
   seconds each (the node caches the mesh's catalogue for 1 s, so this is the door itself:
   routing, key check, JSON). On a 2-core machine the node and this client share the cores.

Prints a markdown table per part and writes the raw numbers with the environment to JSON.

Run:  LANAI_HOME=/path/to/home python bench/gateway.py [--rounds 20] [--quick]
                                                     [--out bench/results/gateway.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

import benchlib  # noqa: E402 - bench/ sibling module
from benchlib import emit, node_process, table  # noqa: E402
from lanai.api.language.v1 import language_pb2, language_pb2_grpc
from lanai.api.speech.v1 import speech_pb2, speech_pb2_grpc

DISTRIBUTIONS = ("lanai", "grpcio", "starlette", "uvicorn", "faster-whisper", "xllamacpp", "llama-cpp-python")
CHAT_TARGET_MS = 5.0
TRANSCRIBE_TARGET = 1.02
PROMPT = [{"role": "user", "content": "Count from one to twenty, separated by commas."}]
MAX_TOKENS = 24
CLIP_TEXT = ("Every morning the office printer jams at nine. The quick brown fox jumps over the lazy dog. "
             "Our meeting notes stay on the machines in this building, and nobody outside can read them.")


# --- a minimal HTTP/1.1 client on one kept-alive connection -------------------------------------------------------

class Http:
    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> Http:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.writer is not None:
            self.writer.close()

    async def send(self, method: str, path: str, body: bytes = b"", kind: str = "") -> tuple[int, dict[str, str]]:
        assert self.reader is not None and self.writer is not None
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
        head += f"Content-Type: {kind}\r\n" if kind else ""
        self.writer.write(head.encode() + b"\r\n" + body)
        await self.writer.drain()
        status_line = await self.reader.readline()
        headers: dict[str, str] = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(status_line.split()[1]), headers

    async def body(self, headers: dict[str, str]) -> bytes:
        assert self.reader is not None
        if "content-length" in headers:
            return await self.reader.readexactly(int(headers["content-length"]))
        return b"".join([piece async for piece in self.chunks()])

    async def chunks(self) -> Any:
        assert self.reader is not None
        while True:
            size = int((await self.reader.readline()).split(b";")[0], 16)
            data = await self.reader.readexactly(size + 2)
            if size == 0:
                return
            yield data[:-2]


def multipart(fields: dict[str, str], audio: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="clip.wav"\r\n'
                 f"Content-Type: audio/wav\r\n\r\n".encode() + audio + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


# --- 1. chat -------------------------------------------------------------------------------------------------------

@dataclass
class ChatTiming:
    door: str
    ttft_ms: float
    total_ms: float
    node_ttft_ms: float
    """The node's own time to first token (usage.time_to_first_token_ms)."""
    node_ms: float
    """queue + compute the node reported for the whole call."""
    text: str


async def chat_grpc(stub: language_pb2_grpc.LanguageStub) -> ChatTiming:
    request = language_pb2.GenerateRequest(
        chat=language_pb2.Chat(messages=[language_pb2.ChatMessage(**m) for m in PROMPT]),
        sampling=language_pb2.SamplingOptions(max_tokens=MAX_TOKENS, temperature=0, seed=1))
    started, first, text, last = time.perf_counter(), 0.0, "", None
    async for message in stub.GenerateStream(request, timeout=120):
        if message.delta and not first:
            first = time.perf_counter()
        text += message.delta
        last = message
    done = time.perf_counter()
    assert last is not None
    return ChatTiming("grpc", (first - started) * 1000, (done - started) * 1000, last.usage.time_to_first_token_ms,
                      last.served_by.queue_ms + last.served_by.compute_ms, text)


async def chat_http(http: Http) -> ChatTiming:
    body = json.dumps({"model": "default", "messages": PROMPT, "max_tokens": MAX_TOKENS, "temperature": 0, "seed": 1,
                       "stream": True, "stream_options": {"include_usage": True}}).encode()
    started, first, text, buffer = time.perf_counter(), 0.0, "", ""
    usage: dict[str, Any] = {}
    served: dict[str, Any] = {}
    status, headers = await http.send("POST", "/v1/chat/completions", body, "application/json")
    assert status == 200, (status, await http.body(headers))
    async for piece in http.chunks():
        buffer += piece.decode()
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            data = block.removeprefix("data: ")
            if data == "[DONE]":
                continue
            event = json.loads(data)
            for choice in event.get("choices", []):
                delta = choice.get("delta", {}).get("content") or ""
                if delta and not first:
                    first = time.perf_counter()
                text += delta
            usage = event.get("usage") or usage
            served = event.get("served_by") or served
    done = time.perf_counter()
    return ChatTiming("http", (first - started) * 1000, (done - started) * 1000, usage["time_to_first_token_ms"],
                      served.get("queue_ms", 0) + served.get("compute_ms", 0), text)


def p50(values: list[float]) -> float:
    return statistics.median(values)


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1] if len(values) >= 2 else values[0]


async def bench_chat(grpc_port: int, http_port: int, rounds: int) -> dict[str, Any]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel, Http(http_port) as http:
        stub = language_pb2_grpc.LanguageStub(channel)
        for _ in range(3):  # warm-up: the model's first calls, both doors' connections
            await chat_grpc(stub)
            await chat_http(http)
        runs: list[ChatTiming] = []
        for i in range(rounds):
            order = (chat_grpc(stub), chat_http(http)) if i % 2 == 0 else (chat_http(http), chat_grpc(stub))
            for work in order:
                runs.append(await work)
            if (i + 1) % 5 == 0:
                emit(f"  chat round {i + 1}/{rounds}")
    by = {door: [r for r in runs if r.door == door] for door in ("grpc", "http")}
    texts = {r.text for r in runs}
    out: dict[str, Any] = {"runs": [r.__dict__ for r in runs], "same_text_every_call": len(texts) == 1}
    for door, rs in by.items():
        out[door] = {"ttft_p50_ms": p50([r.ttft_ms for r in rs]), "ttft_p90_ms": p90([r.ttft_ms for r in rs]),
                     "total_p50_ms": p50([r.total_ms for r in rs]), "total_p90_ms": p90([r.total_ms for r in rs]),
                     "ttft_over_node_p50_ms": p50([r.ttft_ms - r.node_ttft_ms for r in rs]),
                     "total_over_node_p50_ms": p50([r.total_ms - r.node_ms for r in rs])}
    g, h = out["grpc"], out["http"]
    out["adds_ttft_ms"] = h["ttft_over_node_p50_ms"] - g["ttft_over_node_p50_ms"]
    out["adds_total_ms"] = h["total_over_node_p50_ms"] - g["total_over_node_p50_ms"]
    return out


# --- 2. transcription ----------------------------------------------------------------------------------------------

async def bench_transcribe(grpc_port: int, http_port: int, clip: bytes, rounds: int) -> dict[str, Any]:
    body, kind = multipart({"model": "whisper-1", "response_format": "json"}, clip)
    times: dict[str, list[float]] = {"grpc": [], "http": []}
    texts: set[str] = set()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel, Http(http_port) as http:
        stub = speech_pb2_grpc.SpeechStub(channel)

        async def by_grpc() -> None:
            started = time.perf_counter()
            reply = await stub.Transcribe(speech_pb2.TranscribeRequest(audio=speech_pb2.Audio(encoded=clip)),
                                          timeout=300)
            times["grpc"].append((time.perf_counter() - started) * 1000)
            texts.add(reply.text.strip())

        async def by_http() -> None:
            started = time.perf_counter()
            status, headers = await http.send("POST", "/v1/audio/transcriptions", body, kind)
            answer = json.loads(await http.body(headers))
            assert status == 200, answer
            times["http"].append((time.perf_counter() - started) * 1000)
            texts.add(answer["text"])

        await by_grpc()
        await by_http()
        times = {"grpc": [], "http": []}
        for i in range(rounds):
            for work in ((by_grpc, by_http) if i % 2 == 0 else (by_http, by_grpc)):
                await work()
    g, h = p50(times["grpc"]), p50(times["http"])
    return {"grpc_ms": times["grpc"], "http_ms": times["http"], "grpc_p50_ms": g, "http_p50_ms": h,
            "ratio": h / g, "adds_ms": h - g, "same_text_every_call": len(texts) == 1}


# --- 3. GET /v1/models ---------------------------------------------------------------------------------------------

async def bench_models(http_port: int, concurrency: int, seconds: float) -> dict[str, Any]:
    count = 0
    stop = time.perf_counter() + seconds

    async def loop() -> None:
        nonlocal count
        async with Http(http_port) as http:
            while time.perf_counter() < stop:
                status, headers = await http.send("GET", "/v1/models")
                await http.body(headers)
                assert status == 200
                count += 1
    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {"concurrency": concurrency, "requests": count, "seconds": elapsed, "per_second": count / elapsed}


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=20, help="alternating pairs per measurement (default 20)")
    parser.add_argument("--quick", action="store_true", help="a few rounds only (a smoke run)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/gateway.json"))
    args = parser.parse_args()
    rounds = 4 if args.quick else args.rounds
    folder = Path(tempfile.mkdtemp(prefix="lanai-gateway-"))
    clip_path = folder / "clip.wav"
    subprocess.run(["espeak-ng", "-w", str(clip_path), CLIP_TEXT], check=True, timeout=60)
    clip = clip_path.read_bytes()
    results: dict[str, Any] = {"environment": benchlib.environment(DISTRIBUTIONS), "rounds": rounds,
                               "clip_seconds": (len(clip) - 44) / 2 / 22050}
    ready: list[str] = []
    node_args = ["--services", "speech,language", "--speech-models", "tiny.en", "--host", "127.0.0.1", "--port", "0",
                 "--metrics-port", "-1", "--http-port", "0", "--discovery", "none", "--node-id", "gateway-bench"]
    async with node_process(node_args, folder / "node.log", ready_line=ready) as (grpc_port, _):
        http_port = int(ready[0].split("http_port=")[1].split()[0])
        emit(f"node ready: gRPC {grpc_port}, HTTP {http_port}; clip {results['clip_seconds']:.1f} s; {rounds} rounds")
        results["chat"] = await bench_chat(grpc_port, http_port, rounds)
        results["transcribe"] = await bench_transcribe(grpc_port, http_port, clip, max(2, rounds // 2))
        results["models"] = [await bench_models(http_port, c, 2.0 if args.quick else 5.0) for c in (1, 8)]

    c, t = results["chat"], results["transcribe"]
    emit("\n## Chat (SmolLM2 greedy, 24 tokens, streamed)\n")
    emit(table(["door", "TTFT p50 ms", "TTFT p90 ms", "total p50 ms", "total p90 ms", "TTFT - node's p50",
                "total - node's p50"],
               [[d, f"{c[d]['ttft_p50_ms']:.1f}", f"{c[d]['ttft_p90_ms']:.1f}", f"{c[d]['total_p50_ms']:.1f}",
                 f"{c[d]['total_p90_ms']:.1f}", f"{c[d]['ttft_over_node_p50_ms']:.1f}",
                 f"{c[d]['total_over_node_p50_ms']:.1f}"] for d in ("grpc", "http")]))
    emit(f"\nHTTP adds {c['adds_ttft_ms']:.2f} ms to TTFT and {c['adds_total_ms']:.2f} ms in total (p50 of wall - "
         f"node's own time; target <= {CHAT_TARGET_MS:g} ms: "
         f"{'met' if max(c['adds_ttft_ms'], c['adds_total_ms']) <= CHAT_TARGET_MS else 'NOT met'}); "
         f"raw p50 differences: TTFT {c['http']['ttft_p50_ms'] - c['grpc']['ttft_p50_ms']:.2f} ms, total "
         f"{c['http']['total_p50_ms'] - c['grpc']['total_p50_ms']:.2f} ms; same text every call: "
         f"{c['same_text_every_call']}")
    emit(f"\n## Transcription ({results['clip_seconds']:.1f} s clip, tiny.en)\n")
    emit(table(["door", "p50 ms", "p90 ms"], [["grpc", f"{t['grpc_p50_ms']:.0f}", f"{p90(t['grpc_ms']):.0f}"],
                                              ["http", f"{t['http_p50_ms']:.0f}", f"{p90(t['http_ms']):.0f}"]]))
    emit(f"\nHTTP / gRPC p50: {t['ratio']:.3f} (target <= {TRANSCRIBE_TARGET}: "
         f"{'met' if t['ratio'] <= TRANSCRIBE_TARGET else 'NOT met'}), {t['adds_ms']:+.1f} ms")
    emit("\n## GET /v1/models\n")
    emit(table(["connections", "requests", "req/s"],
               [[m["concurrency"], m["requests"], f"{m['per_second']:.0f}"] for m in results["models"]]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    emit(f"\nraw numbers: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
