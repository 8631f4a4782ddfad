"""Speech service benchmark: what does the gRPC node cost, and what can it serve?

Three measurements, each against a real node started as a subprocess on 127.0.0.1
(so the server and this client do not share a GIL):

1. Overhead: the same clips (~3 s, ~10 s, ~30 s, synthesised with espeak-ng) transcribed
   through `Speech/Transcribe` and by faster-whisper called in this process, with the same
   model, audio decoding (`decode_encoded`), beam size and CPU threads. Runs alternate and
   never overlap (the node is idle while the in-process model runs and the other way round),
   after a warm-up of each side. Reports the median and p90 wall time of each side and the
   ratio of the medians; the target is <= 1.05 on the 10 s clip. Node: 1 slot x N threads.
2. Streaming latency: `Speech/StreamTranscribe` fed in real time (100 ms PCM chunks, each
   sent when a microphone would have filled it) with sentences separated by silence. Per
   utterance: time from sending the chunk that holds the last speech sample to receiving the
   final result of that utterance (target <= 1 s), and time from the chunk that holds the
   first speech sample to the first partial. The node's end-of-utterance silence (500 ms by
   default) is part of that latency by design.
3. Throughput: requests per minute with 1, 2 and 4 concurrent clients sending the 10 s clip
   for a fixed time, on a node with 1 slot x 2 threads and one with 2 slots x 1 thread.

Prints one markdown table per section and writes every raw number, with the environment,
to JSON. Needs espeak-ng and sox on PATH and the model prepared in $LANAI_HOME.

Run:  LANAI_HOME=/path/to/home python bench/speech.py [--model tiny.en] [--repeat 5]
                                                   [--out bench/results/speech.json] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt

import benchlib  # noqa: E402 - bench/ sibling module
from benchlib import emit, node_process, short, table  # noqa: E402
from lanai.api.speech.v1 import speech_pb2, speech_pb2_grpc
from lanai.services import models as model_cache
from lanai.services.speech.audio import SAMPLE_RATE, decode_encoded

Pcm = npt.NDArray[np.int16]

RATIO_TARGET = 1.05
RATIO_TARGET_CLIP = "10s"
STREAM_TARGET_S = 1.0
CHUNK_S = 0.1
EOU_SILENCE_MS = 500
"""The node's default end-of-utterance silence, sent explicitly."""
BEAM_SIZE = 5
CPU_THREADS = 2
NODE_START_TIMEOUT_S = 180.0
REQUEST_TIMEOUT_S = 300.0
REST_S = 0.1
"""Pause between timed runs, so neither side starts while the other's threads still spin."""

SENTENCES = (
    "Please turn off the lights in the kitchen.",
    "The weather report says it will rain tomorrow afternoon.",
    "Our team meets every Monday morning to plan the week.",
    "She bought fresh bread and a bottle of milk at the market.",
    "The train to the city leaves from platform number four.",
    "A private inference cloud runs on the machines of one network.",
    "He forgot his umbrella at the office again.",
    "The museum opens at nine and closes at six in the evening.",
    "Remember to water the plants before you leave for the holiday.",
    "Three children were playing football in the park after school.",
    "The library will be closed on Sunday for repairs.",
    "We need to order more paper for the printer upstairs.",
    "The pilot announced that we would land in twenty minutes.",
    "My grandmother grows tomatoes and beans in her garden.",
    "The new bridge across the river took four years to build.",
    "Could you send me the report before the end of the day?",
)
STREAM_SENTENCES = (
    "The weather report says it will rain tomorrow afternoon.",
    "Our team meets every Monday morning to plan the week.",
    "The train to the city leaves from platform number four.",
    "My grandmother grows tomatoes and beans in her garden.",
)


# ---------------------------------------------------------------- clips


@dataclass(frozen=True)
class Clip:
    name: str
    duration_s: float
    speech_s: float
    """Seconds of speech in it; the rest is pauses and trailing silence."""
    text: str
    wav: bytes = field(repr=False)


@dataclass(frozen=True)
class StreamClip:
    pcm: bytes = field(repr=False)
    """16 kHz mono 16-bit little-endian samples."""
    spans: tuple[tuple[int, int], ...]
    """(first, end) sample of each utterance's speech."""
    texts: tuple[str, ...]

    @property
    def duration_s(self) -> float:
        return len(self.pcm) / 2 / SAMPLE_RATE


class Voice:
    """espeak-ng speech as 16 kHz mono int16, silence trimmed, one synthesis per sentence."""

    def __init__(self, workdir: Path) -> None:
        self._dir = workdir
        self._cache: dict[str, Pcm] = {}

    def say(self, text: str) -> Pcm:
        if text not in self._cache:
            raw, out = self._dir / "espeak.wav", self._dir / "16k.wav"
            subprocess.run(["espeak-ng", "-w", str(raw), text], check=True, capture_output=True, timeout=60)
            subprocess.run(["sox", str(raw), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(out)],
                           check=True, capture_output=True, timeout=60)
            self._cache[text] = _trim(_read_wav(out.read_bytes()))
        return self._cache[text]


def _read_wav(data: bytes) -> Pcm:
    with wave.open(io.BytesIO(data)) as w:
        assert w.getframerate() == SAMPLE_RATE and w.getsampwidth() == 2 and w.getnchannels() == 1
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.int16)


def _to_wav(samples: Pcm) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(samples.astype("<i2").tobytes())
    return buf.getvalue()


def _trim(samples: Pcm, threshold: int = 100, margin_s: float = 0.02) -> Pcm:
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > threshold)
    if loud.size == 0:
        raise RuntimeError("espeak-ng produced silence")
    margin = int(margin_s * SAMPLE_RATE)
    return samples[max(0, loud[0] - margin):loud[-1] + 1 + margin]


def _silence(seconds: float) -> Pcm:
    return np.zeros(int(round(seconds * SAMPLE_RATE)), np.int16)


def make_clip(voice: Voice, name: str, target_s: float, start: int, gap_s: float = 0.3) -> Clip:
    """Sentences (from `start` in SENTENCES, skipping any that do not fit) joined by short
    pauses, padded with silence to exactly `target_s`."""
    parts: list[Pcm] = []
    texts: list[str] = []
    used = speech = 0.0
    for i in range(len(SENTENCES)):
        text = SENTENCES[(start + i) % len(SENTENCES)]
        pcm = voice.say(text)
        seconds = pcm.size / SAMPLE_RATE + (gap_s if parts else 0.0)
        if used + seconds > target_s - 0.2:
            continue
        if parts:
            parts.append(_silence(gap_s))
        parts.append(pcm)
        texts.append(text)
        used, speech = used + seconds, speech + pcm.size / SAMPLE_RATE
    if not parts:
        raise RuntimeError(f"no sentence fits in {target_s} s")
    samples = np.concatenate(parts)
    samples = np.concatenate([samples, _silence(target_s - samples.size / SAMPLE_RATE)])
    return Clip(name, samples.size / SAMPLE_RATE, round(speech, 3), " ".join(texts), _to_wav(samples))


def make_stream_clip(voice: Voice, sentences: Sequence[str], lead_s: float = 0.5, gap_s: float = 1.2,
                     tail_s: float = 2.0) -> StreamClip:
    parts: list[Pcm] = [_silence(lead_s)]
    spans: list[tuple[int, int]] = []
    position = parts[0].size
    for i, text in enumerate(sentences):
        if i:
            parts.append(_silence(gap_s))
            position += parts[-1].size
        pcm = voice.say(text)
        spans.append((position, position + pcm.size))
        parts.append(pcm)
        position += pcm.size
    parts.append(_silence(tail_s))
    return StreamClip(np.concatenate(parts).astype("<i2").tobytes(), tuple(spans), tuple(sentences))


# ---------------------------------------------------------------- the node


@dataclass(frozen=True)
class NodeSpec:
    slots: int
    threads: int

    @property
    def label(self) -> str:
        return f"{self.slots} slot(s) x {self.threads} thread(s)"


@contextlib.asynccontextmanager
async def running_node(home: Path, model: str, spec: NodeSpec, log_path: Path) -> AsyncIterator[str]:
    """A `lanai node` subprocess on 127.0.0.1; yields its address, SIGTERMs it on exit."""
    args = ["--services", "speech", "--host", "127.0.0.1", "--port", "0", "--metrics-port", "-1",
            "--home", str(home), "--node-id", "bench", "--speech-models", model,
            "--speech-slots", str(spec.slots), "--speech-threads", str(spec.threads),
            "--speech-queue", "64", "--grace", "1", "--discovery", "none", "--no-router"]
    async with node_process(args, log_path, start_timeout_s=NODE_START_TIMEOUT_S) as (port, _):
        yield f"127.0.0.1:{port}"


def _channel(address: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(address, options=[("grpc.max_receive_message_length", 64 << 20),
                                                      ("grpc.max_send_message_length", 64 << 20)])


def _transcribe_request(clip: Clip) -> speech_pb2.TranscribeRequest:
    """The node serves one model, its default: the request names none."""
    return speech_pb2.TranscribeRequest(audio=speech_pb2.Audio(encoded=clip.wav),
                                        options=speech_pb2.TranscriptionOptions(beam_size=BEAM_SIZE))


# ---------------------------------------------------------------- 1. overhead


@dataclass
class RatioResult:
    clip: str
    audio_s: float
    service_s: list[float]
    in_process_s: list[float]
    server_compute_s: list[float]
    """compute_ms the node reported for each service run (decode + transcribe in its slot)."""
    server_queue_s: list[float]
    service_text: str
    in_process_text: str
    ratio: float = 0.0
    target: float | None = None
    passed: bool | None = None


class InProcess:
    """faster-whisper in this process, configured and called as the node's engine does."""

    def __init__(self, model_dir: Path, threads: int) -> None:
        from faster_whisper import WhisperModel

        self._model = WhisperModel(str(model_dir), device="cpu", compute_type="int8", cpu_threads=threads,
                                   num_workers=1, local_files_only=True)
        self._language = None if self._model.model.is_multilingual else "en"

    def transcribe(self, wav: bytes) -> str:
        samples = decode_encoded(wav, max_seconds=1e9)
        segments, _ = self._model.transcribe(samples, language=self._language, beam_size=BEAM_SIZE)
        return "".join(s.text for s in segments).strip()  # the generator does the decoding


async def measure_ratio(stub: speech_pb2_grpc.SpeechAsyncStub, local: InProcess, clip: Clip,
                        repeat: int) -> RatioResult:
    request = _transcribe_request(clip)

    async def service() -> tuple[float, speech_pb2.TranscribeResponse]:
        started = time.perf_counter()
        response = await stub.Transcribe(request, timeout=REQUEST_TIMEOUT_S)
        return time.perf_counter() - started, response

    def in_process() -> tuple[float, str]:
        started = time.perf_counter()
        text = local.transcribe(clip.wav)
        return time.perf_counter() - started, text

    _, warm = await service()  # warm-up of both sides, and the texts to compare
    await asyncio.sleep(REST_S)
    _, local_text = in_process()
    result = RatioResult(clip.name, clip.duration_s, [], [], [], [], warm.text, local_text)
    for i in range(repeat):
        for side in (("service", "local") if i % 2 == 0 else ("local", "service")):  # ABBA: cancels drift
            await asyncio.sleep(REST_S)
            if side == "service":
                seconds, response = await service()
                result.service_s.append(seconds)
                result.server_compute_s.append(response.served_by.compute_ms / 1000)
                result.server_queue_s.append(response.served_by.queue_ms / 1000)
            else:
                result.in_process_s.append(in_process()[0])
    result.ratio = statistics.median(result.service_s) / statistics.median(result.in_process_s)
    if clip.name == RATIO_TARGET_CLIP:
        result.target, result.passed = RATIO_TARGET, result.ratio <= RATIO_TARGET
    return result


# ---------------------------------------------------------------- 2. streaming


@dataclass
class StreamEvent:
    arrived_s: float
    """Seconds after the first audio chunk was sent."""
    utterance_id: int
    is_final: bool
    end_of_utterance: bool
    start_s: float
    end_s: float
    text: str
    queue_ms: float
    compute_ms: float


@dataclass
class UtteranceLatency:
    index: int
    speech_start_s: float
    speech_end_s: float
    expected: str
    final_text: str | None
    finals: int
    first_partial_after_onset_s: float | None
    """First partial, after sending the chunk holding the first speech sample."""
    final_after_last_speech_chunk_s: float | None
    """Final result, after sending the chunk holding the last speech sample (the target's measure)."""
    final_after_speech_end_s: float | None
    """Final result, after the moment speech ended in real time (adds <= one chunk of buffering)."""
    final_queue_ms: float | None
    final_compute_ms: float | None
    silence_partial_ms: float
    """Compute of partials begun after the final's audio ended (in the trailing silence). The
    session awaits a partial before it reads more audio, so this is an upper bound on how much
    such partials delayed the final (not counted in the final's queue_ms)."""
    final_before_half_close: bool


@dataclass
class StreamRun:
    node: str
    clip_s: float
    chunk_s: float
    end_of_utterance_silence_ms: int
    utterances: list[UtteranceLatency]
    events: list[StreamEvent]
    half_closed_s: float
    target_s: float = STREAM_TARGET_S
    passed: bool | None = None


class PacedSender:
    """Yields the stream's requests: config, then PCM chunks at real-time pace. Chunk i
    (audio [i, i+1) x CHUNK_S) is sent CHUNK_S after it began, as a microphone would."""

    def __init__(self, pcm: bytes, config: speech_pb2.StreamConfig) -> None:
        self._pcm, self._config = pcm, config
        self.chunk_bytes = int(CHUNK_S * SAMPLE_RATE) * 2
        self.t0 = 0.0
        self.sent: list[float] = []
        self.closed = 0.0

    async def requests(self) -> AsyncIterator[speech_pb2.StreamTranscribeRequest]:
        yield speech_pb2.StreamTranscribeRequest(config=self._config)
        self.t0 = time.perf_counter()
        for i, offset in enumerate(range(0, len(self._pcm), self.chunk_bytes)):
            await asyncio.sleep(max(0.0, self.t0 + (i + 1) * CHUNK_S - time.perf_counter()))
            self.sent.append(time.perf_counter() - self.t0)
            yield speech_pb2.StreamTranscribeRequest(audio=self._pcm[offset:offset + self.chunk_bytes])
        self.closed = time.perf_counter() - self.t0

    def sent_with(self, sample: int) -> float:
        """When the chunk holding `sample` was sent, in seconds after t0."""
        return self.sent[sample * 2 // self.chunk_bytes]


async def measure_stream(stub: speech_pb2_grpc.SpeechAsyncStub, clip: StreamClip, node: str,
                         partials: bool = True) -> StreamRun:
    config = speech_pb2.StreamConfig(
        format=speech_pb2.PcmFormat(sample_rate_hz=SAMPLE_RATE, sample_width_bytes=2, channels=1),
        end_of_utterance_silence_ms=EOU_SILENCE_MS, disable_partials=not partials)
    sender = PacedSender(clip.pcm, config)
    events: list[StreamEvent] = []
    call = stub.StreamTranscribe(sender.requests(), timeout=clip.duration_s + 120)
    async for response in call:
        events.append(StreamEvent(time.perf_counter() - sender.t0, response.utterance_id, response.is_final,
                                  response.end_of_utterance, response.start_s, response.end_s, response.text,
                                  response.served_by.queue_ms, response.served_by.compute_ms))
    utterances = [_utterance_latency(i, span, text, events, sender, clip.spans)
                  for i, (span, text) in enumerate(zip(clip.spans, clip.texts))]
    latencies = [u.final_after_last_speech_chunk_s for u in utterances]
    passed = None if None in latencies else max(x for x in latencies if x is not None) <= STREAM_TARGET_S
    return StreamRun(node, clip.duration_s, CHUNK_S, EOU_SILENCE_MS, utterances, events, sender.closed,
                     passed=passed)


def _utterance_latency(index: int, span: tuple[int, int], expected: str, events: list[StreamEvent],
                       sender: PacedSender, spans: Sequence[tuple[int, int]]) -> UtteranceLatency:
    def mine(event: StreamEvent) -> bool:  # the known utterance this result overlaps most
        overlaps = [min(event.end_s, e / SAMPLE_RATE) - max(event.start_s, s / SAMPLE_RATE) for s, e in spans]
        return int(np.argmax(overlaps)) == index and max(overlaps) > 0

    start, end = span
    partials = [e for e in events if not e.is_final and mine(e)]
    finals = [e for e in events if e.is_final and mine(e)]
    last = finals[-1] if finals else None
    onset = sender.sent_with(start)
    return UtteranceLatency(
        index, start / SAMPLE_RATE, end / SAMPLE_RATE, expected,
        " ".join(f.text for f in finals) if finals else None, len(finals),
        partials[0].arrived_s - onset if partials else None,
        last.arrived_s - sender.sent_with(end - 1) if last else None,
        last.arrived_s - end / SAMPLE_RATE if last else None,
        last.queue_ms if last else None, last.compute_ms if last else None,
        sum(p.compute_ms for p in partials if last and p.end_s > last.end_s and p.arrived_s < last.arrived_s),
        bool(last and last.arrived_s < sender.closed))


# ---------------------------------------------------------------- 3. throughput


@dataclass
class ThroughputResult:
    node: str
    clip: str
    clients: int
    window_s: float
    ok: int
    errors: dict[str, int]
    elapsed_s: float
    """From the start until the last request finished (clients stop starting new ones after window_s)."""
    requests_per_minute: float
    audio_s_per_s: float
    latencies_s: list[float]


async def measure_throughput(stub: speech_pb2_grpc.SpeechAsyncStub, clip: Clip, node: str,
                             clients: int, window_s: float) -> ThroughputResult:
    request = _transcribe_request(clip)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    started = time.perf_counter()
    deadline = started + window_s

    async def client() -> None:
        while time.perf_counter() < deadline:
            sent = time.perf_counter()
            try:
                await stub.Transcribe(request, timeout=REQUEST_TIMEOUT_S)
            except grpc.aio.AioRpcError as exc:
                errors[exc.code().name] = errors.get(exc.code().name, 0) + 1
                await asyncio.sleep(0.05)
                continue
            latencies.append(time.perf_counter() - sent)

    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    return ThroughputResult(node, clip.name, clients, window_s, len(latencies), errors, elapsed,
                            len(latencies) * 60 / elapsed, len(latencies) * clip.duration_s / elapsed, latencies)


# ---------------------------------------------------------------- reporting


def _p90(values: Sequence[float]) -> float:
    return float(np.percentile(np.asarray(values, np.float64), 90))


def _opt(value: float | None, fmt: str = "{:.2f}") -> str:
    return "-" if value is None else fmt.format(value)


def _verdict(passed: bool | None) -> str:
    return "-" if passed is None else ("PASS" if passed else "FAIL")


def clips_table(clips: Sequence[Clip]) -> str:
    return table(["clip", "duration s", "speech s", "text"],
                 [[c.name, f"{c.duration_s:.2f}", f"{c.speech_s:.2f}", short(c.text, 60)] for c in clips])


def ratio_table(results: Sequence[RatioResult]) -> str:
    rows = [[r.clip, f"{r.audio_s:.1f}", len(r.service_s),
             f"{statistics.median(r.service_s):.3f}", f"{_p90(r.service_s):.3f}",
             f"{statistics.median(r.in_process_s):.3f}", f"{_p90(r.in_process_s):.3f}",
             f"{statistics.median(r.server_compute_s):.3f}", f"{_overhead_ms(r):.1f}", f"{r.ratio:.3f}",
             _opt(r.target, "<= {:.2f}"), _verdict(r.passed), "yes" if r.service_text == r.in_process_text else "NO"]
            for r in results]
    return table(["clip", "audio s", "runs", "service median s", "service p90 s", "in-process median s",
                  "in-process p90 s", "node compute median s", "node overhead ms", "ratio", "target", "verdict",
                  "same text"], rows)


def _overhead_ms(r: RatioResult) -> float:
    """Median of (client wall time - node compute) over the service runs: gRPC, protobuf,
    admission and the event loops; the rest of any difference is the decode itself."""
    return 1000 * statistics.median(s - c for s, c in zip(r.service_s, r.server_compute_s))


def stream_table(run: StreamRun) -> str:
    rows = [[u.index, f"{u.speech_end_s - u.speech_start_s:.2f}", _opt(u.first_partial_after_onset_s),
             _opt(u.final_after_last_speech_chunk_s), _opt(u.final_after_speech_end_s),
             _opt(u.final_queue_ms, "{:.0f}"), _opt(u.final_compute_ms, "{:.0f}"), f"{u.silence_partial_ms:.0f}",
             u.finals,
             short(u.final_text or "(none)", 48)] for u in run.utterances]
    return table(["utt", "speech s", "first partial s", "final after last chunk s", "final after speech end s",
                  "final queue ms", "final compute ms", "silence partial ms", "finals", "final text"], rows)


def stream_summary(run: StreamRun) -> str:
    lat = [u.final_after_last_speech_chunk_s for u in run.utterances if u.final_after_last_speech_chunk_s is not None]
    first = [u.first_partial_after_onset_s for u in run.utterances if u.first_partial_after_onset_s is not None]
    compute = [u.final_compute_ms for u in run.utterances if u.final_compute_ms is not None]
    blocked = [u for u in run.utterances if u.silence_partial_ms > 0]
    if not lat:
        return "no final results arrived"
    return (f"end of utterance -> final: median {statistics.median(lat):.2f} s, max {max(lat):.2f} s "
            f"(target <= {run.target_s:.1f} s: {_verdict(run.passed)}); onset -> first partial: "
            f"median {_opt(statistics.median(first) if first else None)} s; "
            f"{len(lat)}/{len(run.utterances)} utterances finalised.\n"
            f"The final waits for {EOU_SILENCE_MS} ms of silence (plus <= {CHUNK_S * 1000:.0f} ms of chunking), "
            f"then decodes (median {statistics.median(compute):.0f} ms); {len(blocked)}/{len(run.utterances)} "
            "utterances also had a partial decoded in their trailing silence before the final.")


def throughput_table(results: Sequence[ThroughputResult]) -> str:
    rows = [[r.node, r.clip, r.clients, r.ok, sum(r.errors.values()), f"{r.elapsed_s:.1f}",
             f"{r.requests_per_minute:.1f}", f"{r.audio_s_per_s:.1f}",
             _opt(statistics.median(r.latencies_s) if r.latencies_s else None),
             _opt(_p90(r.latencies_s) if r.latencies_s else None)] for r in results]
    return table(["node", "clip", "clients", "ok", "errors", "elapsed s", "requests/min", "audio s per s",
                  "latency median s", "latency p90 s"], rows)


def environment(model: str, model_dir: Path) -> dict[str, Any]:
    return benchlib.environment(
        ("lanai", "faster-whisper", "ctranslate2", "grpcio", "numpy", "av", "onnxruntime", "protobuf"),
        model=model, model_dir=str(model_dir), compute_type="int8", beam_size=BEAM_SIZE, cpu_threads=CPU_THREADS)


# ---------------------------------------------------------------- main


@dataclass(frozen=True)
class Plan:
    model: str
    repeat: int
    clip_seconds: tuple[tuple[str, float], ...]
    ratio_node: NodeSpec
    stream_sentences: tuple[str, ...]
    stream_nodes: tuple[NodeSpec, ...]
    throughput_clip: str
    throughput_window_s: float
    throughput_clients: tuple[int, ...]
    throughput_nodes: tuple[NodeSpec, ...]

    @property
    def nodes(self) -> list[NodeSpec]:
        """Each node configuration once, in order (one node runs at a time)."""
        return list(dict.fromkeys((self.ratio_node, *self.stream_nodes, *self.throughput_nodes)))


def plan_from(args: argparse.Namespace) -> Plan:
    one_by_two, two_by_one = NodeSpec(1, CPU_THREADS), NodeSpec(2, 1)
    if args.quick:
        return Plan(args.model, args.repeat or 2, (("3s", 3.0), ("10s", 10.0)), one_by_two, STREAM_SENTENCES[:2],
                    (one_by_two,), "10s", args.throughput_seconds or 6.0, (1, 2, 4), (one_by_two, two_by_one))
    return Plan(args.model, args.repeat or 5, (("3s", 3.0), ("10s", 10.0), ("30s", 30.0)), one_by_two,
                STREAM_SENTENCES, (one_by_two, two_by_one), "10s", args.throughput_seconds or 15.0, (1, 2, 4),
                (one_by_two, two_by_one))


@dataclass
class Bench:
    """Inputs made once, results gathered node by node."""

    plan: Plan
    model_dir: Path
    clips: dict[str, Clip]
    stream_clip: StreamClip
    ratio: list[RatioResult] = field(default_factory=list)
    streaming: list[StreamRun] = field(default_factory=list)
    throughput: list[ThroughputResult] = field(default_factory=list)

    async def on_node(self, stub: speech_pb2_grpc.SpeechAsyncStub, spec: NodeSpec) -> None:
        plan = self.plan
        await stub.Transcribe(_transcribe_request(self.clips[plan.throughput_clip]), timeout=REQUEST_TIMEOUT_S)
        if spec == plan.ratio_node:
            await self.measure_ratio(stub, spec)
        if spec in plan.stream_nodes:
            run = await measure_stream(stub, self.stream_clip, spec.label)
            self.streaming.append(run)
            emit(f"\n## Streaming in real time, {CHUNK_S * 1000:.0f} ms chunks, end of utterance after "
                 f"{EOU_SILENCE_MS} ms silence (node {spec.label}, {self.stream_clip.duration_s:.1f} s clip)\n")
            emit(stream_table(run))
            emit("\n" + stream_summary(run))
        if spec in plan.throughput_nodes:
            clip = self.clips[plan.throughput_clip]
            levels = [await measure_throughput(stub, clip, spec.label, n, plan.throughput_window_s)
                      for n in plan.throughput_clients]
            self.throughput.extend(levels)
            emit(f"\n## Throughput, {plan.throughput_window_s:.0f} s per level, {clip.name} clip, "
                 f"beam {BEAM_SIZE} (node {spec.label})\n")
            emit(throughput_table(levels))

    async def measure_ratio(self, stub: speech_pb2_grpc.SpeechAsyncStub, spec: NodeSpec) -> None:
        local = InProcess(self.model_dir, CPU_THREADS)
        for clip in self.clips.values():
            self.ratio.append(await measure_ratio(stub, local, clip, self.plan.repeat))
        emit(f"\n## Transcribe through the node vs faster-whisper in-process, beam {BEAM_SIZE} "
             f"(node {spec.label}; in-process {CPU_THREADS} threads)\n")
        emit(ratio_table(self.ratio))


async def run(plan: Plan, home: Path, out: Path) -> None:
    model_dir = model_cache.resolve(home, plan.model, "speech", auto_prepare=False).path
    env = environment(plan.model, model_dir)
    with tempfile.TemporaryDirectory(prefix="lanai-bench-") as tmp:
        workdir = Path(tmp)
        voice = Voice(workdir)
        clips = {name: make_clip(voice, name, seconds, start=3 * i)
                 for i, (name, seconds) in enumerate(plan.clip_seconds)}
        bench = Bench(plan, model_dir, clips, make_stream_clip(voice, plan.stream_sentences))
        emit(f"# lanai speech benchmark: {plan.model}, {env['cpu_count']} CPU(s), {env['date']}\n\n"
             "## Clips (espeak-ng, 16 kHz mono WAV)\n")
        emit(clips_table(list(clips.values())))
        for spec in plan.nodes:
            log_path = workdir / f"node-{spec.slots}x{spec.threads}.log"
            async with running_node(home, plan.model, spec, log_path) as address, _channel(address) as channel:
                await asyncio.wait_for(channel.channel_ready(), 30)
                await bench.on_node(speech_pb2_grpc.SpeechStub(channel), spec)
    stream_clip = bench.stream_clip
    report = {
        "environment": env, "plan": asdict(plan),
        "clips": [{k: v for k, v in asdict(c).items() if k != "wav"} for c in clips.values()],
        "stream_clip": {"duration_s": stream_clip.duration_s, "texts": stream_clip.texts,
                        "speech_spans_s": [(s / SAMPLE_RATE, e / SAMPLE_RATE) for s, e in stream_clip.spans]},
        "ratio": bench.ratio, "streaming": bench.streaming, "throughput": bench.throughput,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=_json_default) + "\n")
    emit(f"\nraw numbers: {out}")


def _json_default(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--model", default="tiny.en", help="speech model name or directory (default tiny.en)")
    p.add_argument("--repeat", type=int, default=0, help="timed runs per side and clip (default 5; --quick 2)")
    p.add_argument("--throughput-seconds", type=float, default=0.0,
                   help="seconds per concurrency level (default 15; --quick 6)")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "speech.json",
                   help="JSON file for the raw numbers (default bench/results/speech.json)")
    p.add_argument("--quick", action="store_true", help="fewer clips, runs and seconds: a smoke test")
    args = p.parse_args(argv)
    if args.repeat < 0 or args.throughput_seconds < 0:
        p.error("--repeat and --throughput-seconds must not be negative (0: the default)")
    home = model_cache.default_home()
    try:
        asyncio.run(run(plan_from(args), home, args.out))
    except (RuntimeError, OSError, subprocess.SubprocessError, grpc.aio.AioRpcError) as exc:
        print(f"bench/speech.py: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
