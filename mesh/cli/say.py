"""`lanai say TEXT` and `lanai voices`: call a node's (or router's) Voice service."""

from __future__ import annotations

import argparse
import sys
import time
import wave
from pathlib import Path
from typing import Any

import grpc

from lanai.api.voice.v1 import voice_pb2, voice_pb2_grpc
from lanai.mesh.cli import connect, devices
from lanai.services.core.errors import LanaiError


def add_parsers(commands: Any) -> None:
    p = commands.add_parser("say", help="speak a text on a node (text to speech)",
                            description="Send a text to a node's Voice service; write a WAV or play it.")
    p.add_argument("text", help="what to say ('-' reads standard input)")
    connect.add_flags(p)
    p.add_argument("--voice", default="", help="voice name (default: the node's default; see `lanai voices`)")
    p.add_argument("--rate", type=float, default=1.0, help="speaking rate, 0.25 to 4 (default 1)")
    p.add_argument("--output", default="speaker", metavar="FILE|speaker",
                   help="a WAV file to write, or speaker to play it (default speaker)")
    p.add_argument("--timeout", type=float, default=120.0, help="deadline in seconds (default 120)")
    p.set_defaults(run=run_say)
    v = commands.add_parser("voices", help="list the voices a node or the mesh serves")
    connect.add_flags(v)
    v.set_defaults(run=run_voices)


def run_say(args: argparse.Namespace) -> int:
    text = sys.stdin.read() if args.text == "-" else args.text
    request = voice_pb2.SynthesizeRequest(text=text, model=args.voice, rate=args.rate,
                                          encoding=voice_pb2.AUDIO_ENCODING_PCM_S16LE)
    started = time.perf_counter()
    first_s, audio_s, rate = 0.0, 0.0, 1
    sink: Any = None
    served = None
    with connect.channel(args) as channel:
        try:
            for message in voice_pb2_grpc.VoiceStub(channel).SynthesizeStream(request, timeout=args.timeout):
                if sink is None:
                    first_s = time.perf_counter() - started
                    sink = _sink(args.output, message.format.sample_rate)
                    rate = message.format.sample_rate
                sink.write(message.audio)
                audio_s += len(message.audio) / 2 / rate
                if message.HasField("served_by"):
                    served = message.served_by
        except grpc.RpcError as exc:
            print(f"lanai say: {exc.code().name}: {exc.details()}{connect.hint(exc)}", file=sys.stderr)
            return 1
        except LanaiError as exc:
            print(f"lanai say: {exc}", file=sys.stderr)
            return 2
        finally:
            if sink is not None:
                sink.close()
    if served is not None:
        print(f"({audio_s:.1f} s of audio from {served.node_id} with {served.model}: first audio after "
              f"{first_s * 1000:.0f} ms, synthesis {served.compute_ms:.0f} ms)", file=sys.stderr)
    return 0


def run_voices(args: argparse.Namespace) -> int:
    with connect.channel(args) as channel:
        try:
            reply = voice_pb2_grpc.VoiceStub(channel).ListVoices(voice_pb2.ListVoicesRequest(), timeout=30)
        except grpc.RpcError as exc:
            print(f"lanai voices: {exc.code().name}: {exc.details()}{connect.hint(exc)}", file=sys.stderr)
            return 1
    for voice in reply.voices:
        mark = " (default)" if voice.is_default else ""
        print(f"{voice.name}{mark}  {voice.language}  {voice.engine}  {voice.sample_rate} Hz  {voice.description}")
    return 0


class WavSink:
    """PCM written to a WAV file as it arrives."""

    def __init__(self, path: Path, sample_rate: int) -> None:
        self._file = wave.open(str(path), "wb")
        self._file.setnchannels(1)
        self._file.setsampwidth(2)
        self._file.setframerate(sample_rate)

    def write(self, pcm: bytes) -> None:
        self._file.writeframes(pcm)

    def close(self) -> None:
        self._file.close()


class SpeakerSink:
    """PCM played on the speakers as it arrives."""

    def __init__(self, sample_rate: int) -> None:
        self._process = devices.player(sample_rate)

    def write(self, pcm: bytes) -> None:
        assert self._process.stdin is not None
        self._process.stdin.write(pcm)
        self._process.stdin.flush()

    def stop(self) -> None:
        """Stop playing now (barge-in): what is buffered is dropped."""
        self._process.kill()
        self._process.wait()

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        self._process.wait()


def _sink(output: str, sample_rate: int) -> WavSink | SpeakerSink:
    return SpeakerSink(sample_rate) if output == "speaker" else WavSink(Path(output), sample_rate)
