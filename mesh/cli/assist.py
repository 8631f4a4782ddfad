"""`lanai assist`: a voice assistant on the mesh. Speech in (StreamTranscribe), an answer
(GenerateStream, with the conversation so far), speech out (SynthesizeStream, sentence by
sentence as the answer's text arrives); the router places each call on its own, so the ears,
the brain and the voice may be three machines. New speech while an answer plays stops it."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from lanai.api.language.v1 import language_pb2, language_pb2_grpc
from lanai.api.speech.v1 import speech_pb2
from lanai.api.voice.v1 import voice_pb2, voice_pb2_grpc
from lanai.mesh import streamcall
from lanai.mesh.cli import connect, devices
from lanai.mesh.cli.say import SpeakerSink, WavSink
from lanai.services.core.errors import LanaiError
from lanai.services.speech.audio import SAMPLE_RATE, decode_encoded
from lanai.services.voice.text import SentenceSplitter

STREAM_PATH = "/lanai.speech.v1.Speech/StreamTranscribe"
CHUNK_S = 0.1
SYSTEM = "You are a helpful voice assistant. Answer in one or two short sentences, in plain words."
TRAILING_SILENCE_S = 1.0
"""Silence sent after a file's audio, so its last utterance ends before the stream does."""


def add_parser(commands: Any) -> None:
    p = commands.add_parser("assist", help="a voice assistant: speech in, an answer, speech out",
                            description="Talk to the mesh: each utterance is transcribed, answered by the language "
                                        "service and spoken by the voice service, each call placed on its own.")
    connect.add_flags(p)
    p.add_argument("--input", default="mic", metavar="FILE|mic",
                   help="an audio file (sent at the pace of speech) or mic for the default microphone (default mic)")
    p.add_argument("--output", default="speaker", metavar="FILE|speaker",
                   help="a WAV file to write the answers to, or speaker (default speaker)")
    p.add_argument("--system", default=SYSTEM, help="the assistant's instructions (a system message)")
    p.add_argument("--speech-model", default="", help="speech model (default: the mesh's default)")
    p.add_argument("--language-model", default="", help="language model (default: the mesh's default)")
    p.add_argument("--voice", default="", help="voice (default: the mesh's default; see `lanai voices`)")
    p.add_argument("--max-tokens", type=int, default=96, help="longest answer in tokens (default 96)")
    p.add_argument("--silence-ms", type=int, default=600,
                   help="silence that ends an utterance, milliseconds (default 600)")
    p.add_argument("--partial-ms", type=int, default=1000,
                   help="speech between partial transcripts, milliseconds: they only serve to notice barge-in, and "
                        "each costs a decode the answer waits behind (default 1000)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(Assistant(args).run())
    except grpc.aio.AioRpcError as exc:
        print(f"lanai assist: {exc.code().name}: {exc.details()}{connect.hint(exc)}", file=sys.stderr)
        return 1
    except (LanaiError, OSError) as exc:
        print(f"lanai assist: {exc}", file=sys.stderr)
        return 2


@dataclass
class Turn:
    number: int
    question: str
    speech_ended: float
    """Wall time (monotonic) the user's speech ended: the stream's start plus the utterance's end."""
    transcribed: float
    first_token: float = 0.0
    first_audio: float = 0.0
    answer: list[str] = field(default_factory=list)
    audio_s: float = 0.0
    nodes: dict[str, str] = field(default_factory=dict)
    """Which node served each call: speech, language, voice."""
    interrupted: bool = False

    def timing_line(self) -> str:
        def since(at: float) -> str:
            return f"{at - self.speech_ended:.2f} s" if at else "-"
        where = ", ".join(f"{k} on {v}" for k, v in self.nodes.items())
        cut = " (interrupted)" if self.interrupted else ""
        return (f"turn {self.number}: end of speech -> final transcript {since(self.transcribed)} -> first token "
                f"{since(self.first_token)} -> first audio {since(self.first_audio)}{cut} [{where}]")


class Assistant:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.conversation = [language_pb2.ChatMessage(role="system", content=args.system)]
        self.sink: WavSink | SpeakerSink | None = None
        self.playing_until = 0.0
        self.answering: asyncio.Task[None] | None = None
        self.turns: list[Turn] = []
        self.started = 0.0

    async def run(self) -> int:
        args = self.args
        async with connect.aio_channel(args, key_interceptors=False) as channel:
            self.language = language_pb2_grpc.LanguageStub(channel)
            self.voice = voice_pb2_grpc.VoiceStub(channel)
            self.key = connect.key_pairs(args)
            call = streamcall.open_stream(
                channel, STREAM_PATH, server_streaming=True, requests=self._audio(), timeout=None,
                metadata=self.key, response_deserializer=speech_pb2.StreamTranscribeResponse.FromString)
            try:
                async for response in call:
                    await self._heard(response)
                if self.answering is not None:
                    await self.answering
            finally:
                if self.answering is not None:
                    self.answering.cancel()
                if self.sink is not None:
                    self.sink.close()
        if not self.turns:
            print("lanai assist: no speech was heard", file=sys.stderr)
            return 1
        return 0

    async def _audio(self) -> AsyncIterator[bytes]:
        config = speech_pb2.StreamConfig(
            format=speech_pb2.PcmFormat(sample_rate_hz=SAMPLE_RATE, sample_width_bytes=2, channels=1),
            options=speech_pb2.TranscriptionOptions(model=self.args.speech_model),
            end_of_utterance_silence_ms=self.args.silence_ms, partial_interval_ms=self.args.partial_ms)
        yield speech_pb2.StreamTranscribeRequest(config=config).SerializeToString()
        chunk = int(CHUNK_S * SAMPLE_RATE) * 2
        self.started = time.monotonic()
        if self.args.input == "mic":
            mic = devices.microphone(SAMPLE_RATE)
            assert mic.stdout is not None
            print("listening (Ctrl-C to stop)", file=sys.stderr)
            try:
                while piece := await asyncio.to_thread(mic.stdout.read, chunk):
                    yield speech_pb2.StreamTranscribeRequest(audio=piece).SerializeToString()
            finally:
                mic.kill()
            return
        samples = decode_encoded(Path(self.args.input).read_bytes(), max_seconds=float("inf"))
        samples = np.concatenate([samples, np.zeros(int(TRAILING_SILENCE_S * SAMPLE_RATE), np.float32)])
        pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
        for offset in range(0, len(pcm), chunk):  # at the pace of speech, as a microphone would
            await asyncio.sleep(max(0.0, self.started + offset / 2 / SAMPLE_RATE - time.monotonic()))
            yield speech_pb2.StreamTranscribeRequest(audio=pcm[offset:offset + chunk]).SerializeToString()
        # keep the stream open while the last answer is produced: its end would cut the answer's turn short
        while self.answering is None or not self.answering.done():
            await asyncio.sleep(0.05)
            if self.answering is None and time.monotonic() > self.started + len(pcm) / 2 / SAMPLE_RATE + 5:
                return

    def _busy(self) -> bool:
        return (self.answering is not None and not self.answering.done()) or time.monotonic() < self.playing_until

    async def _heard(self, response: speech_pb2.StreamTranscribeResponse) -> None:
        words = response.text.strip()
        if words and self._busy():
            await self._barge_in()
        if not (response.is_final and words):
            return
        ended = self.started + (response.segments[-1].end_s if response.segments else response.end_s)
        turn = Turn(len(self.turns) + 1, words, ended, time.monotonic())
        turn.nodes["speech"] = response.served_by.node_id
        self.turns.append(turn)
        print(f"you: {words}", flush=True)
        self.answering = asyncio.create_task(self._answer(turn))

    async def _barge_in(self) -> None:
        """The user speaks over the answer: stop generating, synthesising and playing it."""
        if self.turns:
            self.turns[-1].interrupted = True  # before the cancel: the turn prints its line as it ends
        if self.answering is not None and not self.answering.done():
            self.answering.cancel()
            try:
                await self.answering
            except asyncio.CancelledError:
                pass
        if isinstance(self.sink, SpeakerSink) and time.monotonic() < self.playing_until:
            self.sink.stop()
            self.sink = None
        self.playing_until = 0.0

    async def _answer(self, turn: Turn) -> None:
        sentences: asyncio.Queue[str | None] = asyncio.Queue()
        speaking = asyncio.create_task(self._speak(turn, sentences))
        splitter = SentenceSplitter()
        request = language_pb2.GenerateRequest(
            model=self.args.language_model,
            chat=language_pb2.Chat(messages=[*self.conversation, language_pb2.ChatMessage(role="user",
                                                                                        content=turn.question)]),
            sampling=language_pb2.SamplingOptions(max_tokens=self.args.max_tokens, temperature=0.3))
        try:
            async for chunk in self.language.GenerateStream(request, metadata=self.key):
                if chunk.HasField("served_by"):
                    turn.nodes["language"] = chunk.served_by.node_id
                if chunk.delta:
                    turn.first_token = turn.first_token or time.monotonic()
                    turn.answer.append(chunk.delta)
                    for sentence in splitter.feed(chunk.delta):
                        sentences.put_nowait(sentence)
            for sentence in splitter.flush():
                sentences.put_nowait(sentence)
            sentences.put_nowait(None)
            await speaking
            # The turn lasts until its answer has been heard: speech over the rest of it is a barge-in
            # (a file sink "plays" at the same pace, so the turn reads the same in a file as aloud).
            await asyncio.sleep(max(0.0, self.playing_until - time.monotonic()))
        finally:
            speaking.cancel()
            answer = "".join(turn.answer).strip()
            self.conversation += [language_pb2.ChatMessage(role="user", content=turn.question),
                                  language_pb2.ChatMessage(role="assistant", content=answer)]
            print(f"assistant: {answer}", flush=True)
            print(turn.timing_line(), file=sys.stderr, flush=True)

    async def _speak(self, turn: Turn, sentences: asyncio.Queue[str | None]) -> None:
        while (sentence := await sentences.get()) is not None:
            request = voice_pb2.SynthesizeRequest(text=sentence, model=self.args.voice,
                                                  encoding=voice_pb2.AUDIO_ENCODING_PCM_S16LE)
            rate = 0
            async for message in self.voice.SynthesizeStream(request, metadata=self.key):
                rate = message.format.sample_rate or rate
                if self.sink is None:
                    self.sink = SpeakerSink(rate) if self.args.output == "speaker" else WavSink(
                        Path(self.args.output), rate)
                if not turn.first_audio:
                    turn.first_audio = time.monotonic()
                    self.playing_until = turn.first_audio
                self.sink.write(message.audio)
                seconds = len(message.audio) / 2 / rate
                turn.audio_s += seconds
                self.playing_until = max(self.playing_until, time.monotonic()) + seconds
                if message.HasField("served_by"):
                    turn.nodes["voice"] = message.served_by.node_id
