"""`lanai transcribe FILE`: unary, or streamed as PCM with segments printed as they arrive."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from google.protobuf import json_format

from lanai.mesh import streamcall
from lanai.mesh.cli import connect
from lanai.mesh.cli.progress import ProgressLine
from lanai.api.speech.v1 import speech_pb2, speech_pb2_grpc
from lanai.services.core.errors import LanaiError
from lanai.services.speech.audio import SAMPLE_RATE, decode_encoded

STREAM_PATH = "/lanai.speech.v1.Speech/StreamTranscribe"

CHUNK_S = 0.1


def add_parser(commands: Any) -> None:
    p = commands.add_parser("transcribe", help="transcribe an audio file on a node",
                            description="Send an audio file to a node's Speech service and print the text.")
    p.add_argument("file", type=Path, help="audio file (WAV, FLAC, MP3, OGG, M4A, ...)")
    connect.add_flags(p, "node address host:port")
    p.add_argument("--stream", action="store_true",
                   help="stream the audio as PCM and print each segment as it is final")
    p.add_argument("--realtime", action="store_true", help="with --stream: send at the pace of speech")
    p.add_argument("--model", default="", help="model name (default: the node's default)")
    p.add_argument("--language", default="", help="ISO 639-1 code (default: detect)")
    p.add_argument("--translate", action="store_true", help="English text from any language")
    p.add_argument("--beam-size", type=int, default=0)
    p.add_argument("--word-timestamps", action="store_true")
    p.add_argument("--vad-filter", action="store_true", help="skip silence before decoding")
    p.add_argument("--prompt", default="", help="initial prompt: names, jargon, spelling")
    p.add_argument("--json", action="store_true", help="print the response(s) as JSON")
    p.add_argument("--timeout", type=float, default=None, help="deadline in seconds")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        data = args.file.read_bytes()
    except OSError as exc:
        print(f"lanai transcribe: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    options = speech_pb2.TranscriptionOptions(
        model=args.model, language=args.language, beam_size=args.beam_size, word_timestamps=args.word_timestamps,
        vad_filter=args.vad_filter, initial_prompt=args.prompt,
        task=speech_pb2.TASK_TRANSLATE if args.translate else speech_pb2.TASK_TRANSCRIBE)
    try:
        return asyncio.run((_stream if args.stream else _unary)(args, data, options))
    except grpc.aio.AioRpcError as exc:
        print(f"lanai transcribe: {exc.code().name}: {exc.details()}{connect.hint(exc)}", file=sys.stderr)
        return 1
    except LanaiError as exc:
        print(f"lanai transcribe: {exc}", file=sys.stderr)
        return 2


async def _unary(args: argparse.Namespace, data: bytes, options: speech_pb2.TranscriptionOptions) -> int:
    async with connect.aio_channel(args, _channel_options()) as channel:
        call = speech_pb2_grpc.SpeechStub(channel).Transcribe(
            speech_pb2.TranscribeRequest(audio=speech_pb2.Audio(encoded=data), options=options), timeout=args.timeout)
        ticker = asyncio.create_task(_elapsed(f"transcribing {args.file.name}"))
        try:
            response = await call
        finally:
            ticker.cancel()
    if args.json:
        print(json_format.MessageToJson(response))
        return 0
    for segment in response.segments:
        print(f"[{_clock(segment.start_s)} -> {_clock(segment.end_s)}] {segment.text.strip()}")
    served = response.served_by
    print(f"({response.audio_duration_s:.1f} s of {response.language} audio on {served.node_id} with {served.model}: "
          f"queued {served.queue_ms:.0f} ms, computed {served.compute_ms:.0f} ms)", file=sys.stderr)
    return 0


async def _stream(args: argparse.Namespace, data: bytes, options: speech_pb2.TranscriptionOptions) -> int:
    samples = decode_encoded(data, max_seconds=float("inf"))  # decoded here; the node gets 16 kHz PCM
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
    total_s = samples.size / SAMPLE_RATE
    chunk = int(CHUNK_S * SAMPLE_RATE) * 2
    config = speech_pb2.StreamConfig(format=speech_pb2.PcmFormat(sample_rate_hz=SAMPLE_RATE, sample_width_bytes=2,
                                                                 channels=1), options=options)
    progress = ProgressLine(total_s, "s", enabled=sys.stderr.isatty() and not args.json)

    async def requests() -> AsyncIterator[speech_pb2.StreamTranscribeRequest]:
        yield speech_pb2.StreamTranscribeRequest(config=config)
        started = time.monotonic()
        for offset in range(0, len(pcm), chunk):
            if args.realtime:
                await asyncio.sleep(max(0.0, started + offset / 2 / SAMPLE_RATE - time.monotonic()))
            yield speech_pb2.StreamTranscribeRequest(audio=pcm[offset:offset + chunk])
            progress.update(done=(offset + chunk) / 2 / SAMPLE_RATE)

    async def raw() -> AsyncIterator[bytes]:
        async for request in requests():
            yield request.SerializeToString()

    # Written by lanai.mesh.streamcall: a node that refuses the config while audio is still being
    # sent would otherwise show here as INTERNAL instead of its own status (grpc/grpc#36066).
    async with connect.aio_channel(args, _channel_options(), key_interceptors=False) as channel:
        call = streamcall.open_stream(channel, STREAM_PATH, server_streaming=True, requests=raw(), timeout=args.timeout,
                                      metadata=connect.key_pairs(args),
                                      response_deserializer=speech_pb2.StreamTranscribeResponse.FromString)
        async for response in call:
            if args.json:
                print(json_format.MessageToJson(response, indent=None), flush=True)
            elif response.is_final:
                progress.clear()
                for segment in response.segments:
                    print(f"[{_clock(segment.start_s)} -> {_clock(segment.end_s)}] {segment.text.strip()}",
                          flush=True)
            else:
                progress.update(text=response.text)
    progress.clear()
    return 0


async def _elapsed(label: str) -> None:
    if not sys.stderr.isatty():
        return
    started = time.monotonic()
    try:
        while True:
            sys.stderr.write(f"\r{label}... {time.monotonic() - started:.0f} s")
            sys.stderr.flush()
            await asyncio.sleep(0.5)
    finally:
        sys.stderr.write("\r\033[K")


def _channel_options() -> list[tuple[str, int]]:
    return [("grpc.max_send_message_length", 256 * 1024 * 1024),
            ("grpc.max_receive_message_length", 256 * 1024 * 1024)]


def _clock(seconds: float) -> str:
    minutes, secs = divmod(max(0.0, seconds), 60)
    return f"{int(minutes):02d}:{secs:05.2f}"
