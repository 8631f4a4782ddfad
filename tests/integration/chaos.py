"""Mixed load on a loopback mesh while its nodes are killed, restarted, cut off and healed: the
harness of tests/integration/test_chaos.py (one minute) and bench/chaos.py (five).

Three `lanai node --no-router` processes on 127.0.0.2-4 serve speech, vision and language; a
`lanai router` is given them as peers. Clients call through the router: unary Transcribe,
Classify, Generate, and live streams (a real-time StreamTranscribe of a four-utterance clip, a
GenerateStream). Each fault period: kill the node serving a live stream, restart it on the same port,
freeze the one serving the other stream (SIGSTOP: its connections stay open and silent, as with
a pulled cable), thaw it."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import os
import signal
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc

from lanai.api.language.v1 import language_pb2, language_pb2_grpc
from lanai.api.speech.v1 import speech_pb2, speech_pb2_grpc
from lanai.api.vision.v1 import vision_pb2, vision_pb2_grpc

from .meeting import KEYWORDS
from .processes import LanaiProcess, free_port, start, up, wait_for_nodes

NODE_FLAGS = ("--insecure", "--no-router", "--discovery", "none", "--services", "speech,vision,language",
              "--speech-models", "tiny.en", "--metrics-port", "-1", "--grace", "5")
UNARY_KINDS = ("transcribe", "classify", "generate")
STREAM_KINDS = ("live transcription", "token stream")
CALL_TIMEOUT_S = 120.0


@dataclasses.dataclass
class Outcome:
    kind: str
    error: str = ""
    moved_after_s: float | None = None
    """Streams that changed node: seconds from the last answer of the lost node to the first of the next."""


@dataclasses.dataclass
class Report:
    outcomes: list[Outcome]
    faults: list[tuple[float, str]]
    memory: dict[str, tuple[int, int]]
    """process -> (resident KiB at start, at end), for processes alive at both."""

    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.error]

    def counts(self) -> dict[str, tuple[int, int]]:
        """kind -> (ok, failed)."""
        table: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for o in self.outcomes:
            table[o.kind][1 if o.error else 0] += 1
        return {k: (v[0], v[1]) for k, v in sorted(table.items())}

    def moves(self) -> list[float]:
        return sorted(o.moved_after_s for o in self.outcomes if o.moved_after_s is not None)


class NodeChanges:
    """Follows which node answers one stream: `moved_after_s` is the gap from the lost node's
    last answer to the next node's first (the latest move, if several); `serving` maps the
    stream's kind to its current node, for the faults to aim at."""

    def __init__(self, kind: str, serving: dict[str, str]) -> None:
        self.kind, self.serving = kind, serving
        self.moved_after_s: float | None = None
        self._node, self._at = "", 0.0

    def answered(self, node: str) -> None:
        now = time.monotonic()
        if self._node and node and node != self._node:
            self.moved_after_s = now - self._at
        self._node, self._at = node or self._node, now
        self.serving[self.kind] = self._node


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class Chaos:
    def __init__(self, home: Path, *, wav: bytes, meeting_pcm: bytes, image: bytes) -> None:
        self.home, self.wav, self.meeting, self.image = home, wav, meeting_pcm, image
        self.hosts = [f"127.0.0.{i}" for i in (2, 3, 4)]
        self.ports = [free_port(h) for h in self.hosts]
        self.nodes: list[LanaiProcess | None] = [None, None, None]
        self.router: LanaiProcess | None = None
        self.frozen: set[int] = set()
        self.serving: dict[str, str] = {}
        """stream kind -> the node that sent its latest answer: faults aim at live streams."""
        self.outcomes: list[Outcome] = []
        self.faults: list[tuple[float, str]] = []
        self._started = 0.0

    async def start(self) -> None:
        self.nodes = list(await asyncio.gather(*(self._node(i) for i in range(3))))
        peers = ",".join(f"{h}:{p}" for h, p in zip(self.hosts, self.ports))
        self.router = await start("router", "--insecure", "--host", "127.0.0.1", "--port", "0", "--metrics-port",
                                  "-1", "--node-id", "chaos-router", "--peers", peers, home=self.home)
        await wait_for_nodes(self.router.address, lambda nodes: up(nodes, "chaos-0", "chaos-1", "chaos-2"),
                             timeout=120)

    async def _node(self, i: int) -> LanaiProcess:
        return await start("node", *NODE_FLAGS, "--host", self.hosts[i], "--port", str(self.ports[i]),
                           "--node-id", f"chaos-{i}", home=self.home)

    def processes(self) -> dict[str, LanaiProcess]:
        named = {f"chaos-{i}": p for i, p in enumerate(self.nodes) if p is not None}
        if self.router is not None:
            named["router"] = self.router
        return named

    async def close(self) -> None:
        for i in list(self.frozen):
            self._signal(i, signal.SIGCONT)
        for process in self.processes().values():
            await process.kill()

    def _signal(self, i: int, sig: int) -> None:
        process = self.nodes[i]
        if process is not None and process.proc.returncode is None:
            os.kill(process.proc.pid, sig)

    def _fault(self, what: str) -> None:
        self.faults.append((time.monotonic() - self._started, what))

    async def run(self, seconds: float, period_s: float, *, unary_clients: int = 2) -> Report:
        """Load for `seconds`, a kill/restart/freeze/thaw cycle every `period_s`."""
        self._started = time.monotonic()
        memory_at_start = {name: rss_kib(p.proc.pid) for name, p in self.processes().items()}
        pids_at_start = {name: p.proc.pid for name, p in self.processes().items()}
        assert self.router is not None
        deadline = self._started + seconds
        async with grpc.aio.insecure_channel(self.router.address, options=[
                ("grpc.max_send_message_length", 64 << 20)]) as channel:
            workers = [self._unary_loop(channel, deadline, n) for n in range(unary_clients)]
            workers += [self._stream_loop(channel, deadline), self._token_loop(channel, deadline)]
            await asyncio.gather(*workers, self._faults(deadline, period_s))
        memory = {name: (memory_at_start[name], rss_kib(p.proc.pid)) for name, p in self.processes().items()
                  if pids_at_start.get(name) == p.proc.pid and p.proc.returncode is None}
        return Report(self.outcomes, self.faults, memory)

    async def _faults(self, deadline: float, period_s: float) -> None:
        cycle = 0
        while time.monotonic() + period_s <= deadline + 1:
            await asyncio.sleep(period_s * 0.1)
            target = STREAM_KINDS[(cycle + 1) % 2]
            for _ in range(50):  # the first cycle: give the stream time for its first answer
                if target in self.serving:
                    break
                await asyncio.sleep(0.1)
            victim = self._serving(target, cycle % 3)
            process = self.nodes[victim]
            if process is not None:
                await process.kill()
                self._fault(f"kill chaos-{victim}")
            await asyncio.sleep(period_s * 0.15)
            self.nodes[victim] = await self._node(victim)
            self._fault(f"restart chaos-{victim}")
            await asyncio.sleep(max(0.0, period_s * 0.25))
            frozen = self._serving(STREAM_KINDS[cycle % 2], (victim + 1) % 3)
            self._signal(frozen, signal.SIGSTOP)
            self.frozen.add(frozen)
            self._fault(f"freeze chaos-{frozen}")
            await asyncio.sleep(period_s * 0.2)
            self._signal(frozen, signal.SIGCONT)
            self.frozen.discard(frozen)
            self._fault(f"thaw chaos-{frozen}")
            await asyncio.sleep(max(0.0, period_s * 0.3))
            cycle += 1

    def _serving(self, kind: str, otherwise: int) -> int:
        """The index of the node serving the latest `kind` stream, else `otherwise`."""
        node = self.serving.get(kind, "")
        return int(node.removeprefix("chaos-")) if node.startswith("chaos-") else otherwise

    async def _record(self, kind: str, call: Callable[[], Awaitable[float | None]]) -> None:
        try:
            moved = await call()
            self.outcomes.append(Outcome(kind, moved_after_s=moved))
        except grpc.aio.AioRpcError as exc:
            self.outcomes.append(Outcome(kind, f"{exc.code().name}: {exc.details()}"))
        except Exception as exc:  # noqa: BLE001 - a wrong answer is a failed call too
            self.outcomes.append(Outcome(kind, f"{type(exc).__name__}: {exc}"))

    async def _unary_loop(self, channel: grpc.aio.Channel, deadline: float, n: int) -> None:
        speech = speech_pb2_grpc.SpeechStub(channel)
        vision = vision_pb2_grpc.VisionStub(channel)
        language = language_pb2_grpc.LanguageStub(channel)
        turn = n
        while time.monotonic() < deadline:
            kind = UNARY_KINDS[turn % len(UNARY_KINDS)]
            turn += 1
            if kind == "transcribe":
                async def call() -> None:
                    reply = await speech.Transcribe(speech_pb2.TranscribeRequest(audio=speech_pb2.Audio(
                        encoded=self.wav)), timeout=CALL_TIMEOUT_S)
                    if "lazy" not in reply.text.lower():
                        raise AssertionError(f"transcript without its words: {reply.text!r}")
            elif kind == "classify":
                async def call() -> None:
                    reply = await vision.Classify(vision_pb2.ClassifyRequest(image=vision_pb2.Image(
                        encoded=self.image)), timeout=CALL_TIMEOUT_S)
                    if not reply.labels:
                        raise AssertionError("no labels")
            else:
                async def call() -> None:
                    reply = await language.Generate(language_pb2.GenerateRequest(
                        prompt="The capital of France is", sampling=language_pb2.SamplingOptions(
                            max_tokens=8, temperature=0.0)), timeout=CALL_TIMEOUT_S)
                    if not reply.usage.completion_tokens:
                        raise AssertionError("no tokens")
            await self._record(kind, call)  # type: ignore[arg-type]

    async def _stream_loop(self, channel: grpc.aio.Channel, deadline: float) -> None:
        stub = speech_pb2_grpc.SpeechStub(channel)
        while time.monotonic() < deadline:
            await self._record("live transcription", lambda: self._live(stub))

    async def _live(self, stub: speech_pb2_grpc.SpeechStub) -> float | None:
        async def requests() -> Any:
            yield speech_pb2.StreamTranscribeRequest(config=speech_pb2.StreamConfig(
                format=speech_pb2.PcmFormat(sample_rate_hz=16000)))
            step = 3200
            for offset in range(0, len(self.meeting), step):
                await asyncio.sleep(0.1)
                yield speech_pb2.StreamTranscribeRequest(audio=self.meeting[offset:offset + step])

        finals, changes = [], NodeChanges("live transcription", self.serving)
        async for response in stub.StreamTranscribe(requests(), timeout=CALL_TIMEOUT_S):
            changes.answered(response.served_by.node_id)
            if response.is_final:
                finals.append(response)
        ids = [f.utterance_id for f in finals]
        if ids != sorted(set(ids)):
            raise AssertionError(f"utterance ids out of order or repeated: {ids}")
        text = " ".join(f.text for f in finals).lower()
        for word in KEYWORDS:
            if text.count(word) != 1:
                raise AssertionError(f"{word!r} not once in the transcript: {text!r}")
        return changes.moved_after_s

    async def _token_loop(self, channel: grpc.aio.Channel, deadline: float) -> None:
        stub = language_pb2_grpc.LanguageStub(channel)
        while time.monotonic() < deadline:
            await self._record("token stream", lambda: self._tokens(stub))

    async def _tokens(self, stub: language_pb2_grpc.LanguageStub) -> float | None:
        request = language_pb2.GenerateRequest(
            chat=language_pb2.Chat(messages=[language_pb2.ChatMessage(role="user", content="Tell me about the sea.")]),
            sampling=language_pb2.SamplingOptions(max_tokens=128, temperature=0.0))
        changes, finished = NodeChanges("token stream", self.serving), False
        async for response in stub.GenerateStream(request, timeout=CALL_TIMEOUT_S):
            changes.answered(response.served_by.node_id)
            finished = finished or response.finish_reason != language_pb2.FINISH_REASON_UNSPECIFIED
        if not finished:
            raise AssertionError("the token stream ended without a finish reason")
        return changes.moved_after_s


def photo() -> bytes:
    """A photo the classifier knows (scikit-image's coffee cup), as JPEG."""
    from PIL import Image
    from skimage import data as photos

    out = io.BytesIO()
    Image.fromarray(photos.coffee()).save(out, "JPEG")
    return out.getvalue()
