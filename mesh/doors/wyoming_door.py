"""The Wyoming door (--wyoming-port): Home Assistant's voice protocol, so an Assist pipeline uses
the mesh's ears and voice. `describe` lists the mesh's speech models and voices; `transcribe`
streams the audio to a node as it arrives (a routed StreamTranscribe: the node transcribes while
the person speaks, and the router moves the stream if that node goes), sending each finished
stretch as a transcript-chunk; `synthesize`, also streamed text, speaks through the voice
service a sentence at a time.

Wyoming has no keys or TLS, so the door accepts connections only from the networks in its
allow-list (by default the premises' private networks, or loopback alone on a node that
requires API keys) and is off unless asked for."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
from wyoming.asr import Transcript, TranscriptChunk, TranscriptStart, TranscriptStop
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Eventable, async_write_event
from wyoming.info import AsrModel, AsrProgram, Attribution, Info, TtsProgram, TtsVoice
from wyoming.ping import Pong
from wyoming.tts import SynthesizeStopped

from lanai.api.speech.v1 import speech_pb2
from lanai.api.voice.v1 import voice_pb2
from lanai.mesh import __version__, metrics, streamcall
from lanai.mesh.doors.upstream import MeshModel, Upstream
from lanai.mesh.doors.wyoming_wire import MAX_HEADER_BYTES, ProtocolError, count_of, mapping_of, read_event, text_of
from lanai.mesh.premises import Premises
from lanai.mesh.status import status_for
from lanai.services.core.errors import ModelNotFound, Overloaded, PermissionDenied, quote
from lanai.services.voice.text import SentenceSplitter

log = logging.getLogger(__name__)
QUEUED_CHUNKS = 16
"""Audio chunks waiting for the mesh; past this the door stops reading the socket (back-pressure)."""
MAX_PAYLOAD_BYTES = 256 * 1024
"""Largest payload of one event (Home Assistant's audio chunks are 2 KiB): with QUEUED_CHUNKS, what
one connection can make the door hold."""
MAX_SESSIONS = 64
"""Connections served at once; more are answered with resource_exhausted."""
WRITE_TIMEOUT_S = 30.0
"""A client that reads nothing for this long is dropped (it would hold a node's slot)."""
SPEECH_ATTRIBUTION = Attribution(name="OpenAI Whisper via faster-whisper", url="https://github.com/SYSTRAN/faster-whisper")
VOICE_ATTRIBUTION = {"piper": Attribution(name="Piper", url="https://github.com/rhasspy/piper"),
                     "espeak-ng": Attribution(name="eSpeak NG", url="https://github.com/espeak-ng/espeak-ng")}
PROGRAM = "lanai"
"""The one asr and tts program the door lists; its models are the mesh's."""
LANAI = Attribution(name="lanai", url="")  # no public home page yet; Wyoming requires the field
SAMPLE_WIDTH = 2  # the voice service sends 16-bit mono PCM
STREAM_PATH = "/lanai.speech.v1.Speech/StreamTranscribe"
REQUEST_OF = {"connect": "connect", "describe": "describe", "transcribe": "transcribe", "audio-start": "transcribe",
              "audio-chunk": "transcribe", "audio-stop": "transcribe", "synthesize": "synthesize",
              "synthesize-start": "synthesize", "synthesize-chunk": "synthesize", "synthesize-stop": "synthesize"}
"""The request an event belongs to, for lanai_wyoming_requests_total."""
IDLE_S = 300.0
"""A connection that sends nothing for this long is closed (Home Assistant opens one per request)."""
LINGER_S = 2.0


class WyomingServer:
    def __init__(self, upstream: Upstream, host: str, port: int, *, allow: Premises, max_payload: int) -> None:
        self.upstream, self.allow, self.max_payload = upstream, allow, max_payload
        self._host, self._port = host, port
        self._server: asyncio.Server | None = None
        self._sessions: dict[asyncio.Task[None], Session] = {}

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self._host, self._port, limit=MAX_HEADER_BYTES)

    async def stop(self) -> None:
        """Stop listening and end the open connections, each with an `unavailable` error (their
        mesh calls are cancelled: a Wyoming client retries a request, it cannot resume one)."""
        if self._server is not None:
            self._server.close()
        await asyncio.gather(*(s.say_goodbye() for s in self._sessions.values()), return_exceptions=True)
        for task in list(self._sessions):
            task.cancel()
        await asyncio.gather(*self._sessions, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        session = Session(self, reader, writer)
        self._sessions[task] = session
        try:
            await session.run(full=len(self._sessions) > MAX_SESSIONS)
        except asyncio.CancelledError:
            pass  # the door is closing; a task of start_server that ends cancelled is logged as an error
        finally:
            self._sessions.pop(task, None)


class Session:
    """One client connection: events in, one request at a time, replies out."""

    def __init__(self, server: WyomingServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server, self.reader, self.writer = server, reader, writer
        self.upstream = server.upstream
        self._lock = asyncio.Lock()
        self._asked: tuple[str, str] = ("", "")
        """(model, language) of the last `transcribe`, for the audio that follows."""
        self._utterance: Utterance | None = None
        self._speaking: Speaking | None = None
        self._stuck = False

    async def run(self, *, full: bool = False) -> None:
        peer = self.writer.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) else ""
        current = "connect"  # the event being handled, to count a failure against its request
        try:
            if not self.server.allow.allows(address):
                log.warning("wyoming: refused a connection from %s (not in --wyoming-allow)", address or "unknown")
                raise PermissionDenied(f"this Wyoming door does not accept connections from {address}; the node's "
                                       "operator can add its network with --wyoming-allow")
            if full:
                raise Overloaded(f"this Wyoming door serves {MAX_SESSIONS} connections at once; retry shortly")
            while True:
                current = ""
                event = await asyncio.wait_for(read_event(self.reader, self.server.max_payload), IDLE_S)
                if event is None:
                    break
                current = event.type
                await self.handle(event.type, event.data, event.payload or b"")
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.TimeoutError):
            pass  # the client went away (or sat idle, or stopped reading); its call is cancelled below
        except Exception as error:  # noqa: BLE001 - every failure is answered, then the connection ends
            self._end_requests()  # nothing more of the failed request reaches the client after its error
            code = await self.fail(error)
            metrics.WYOMING_REQUESTS.labels(REQUEST_OF.get(current, "other"), code.name.lower()).inc()
            await self._linger()
        finally:
            self._end_requests()
            if self._stuck:  # unread data would keep a plain close waiting
                self.writer.transport.abort()
            else:
                self.writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(LINGER_S):
                    await self.writer.wait_closed()

    def _end_requests(self) -> None:
        if self._utterance is not None:
            self._utterance.cancel()
            self._utterance = None

    async def say_goodbye(self) -> None:
        """The node is shutting down: tell the client (a request in flight ends with this)."""
        self._end_requests()
        with contextlib.suppress(Exception):
            await self.write(Error(text="the node is shutting down; connect again (to another node's door) and "
                                        "retry", code="unavailable"))

    async def _linger(self) -> None:
        """Close our side, then read what the client still sends for a moment: closing a socket
        with unread input resets it, and the reset can destroy the error before it is read."""
        with contextlib.suppress(Exception):
            self.writer.write_eof()
            async with asyncio.timeout(LINGER_S):
                while await self.reader.read(64 * 1024):
                    pass

    async def write(self, message: Eventable) -> None:
        async with self._lock:  # transcript chunks come from the reading task
            try:
                async with asyncio.timeout(WRITE_TIMEOUT_S):
                    await async_write_event(message.event(), self.writer)
            except TimeoutError:
                self._stuck = True
                raise

    async def fail(self, error: BaseException) -> grpc.StatusCode:
        """Answer with an error event (its code: the gRPC status name); returns the status."""
        if isinstance(error, grpc.aio.AioRpcError):
            code, message = error.code(), error.details() or error.code().name
        else:
            code, message = status_for(error)
        if code is grpc.StatusCode.INTERNAL:
            log.error("wyoming: a request failed", exc_info=error)
        else:
            log.info("wyoming: %s: %s", code.name, message)
        with contextlib.suppress(Exception):
            await self.write(Error(text=message, code=code.name.lower()))
        return code

    async def handle(self, kind: str, data: dict[str, Any], payload: bytes) -> None:
        if kind == "describe":
            await self.describe()
            metrics.WYOMING_REQUESTS.labels("describe", "ok").inc()
        elif kind == "ping":
            await self.write(Pong(text=text_of(data, "text", kind) or None))
        elif kind == "transcribe":
            language = text_of(data, "language", kind).replace("_", "-").split("-")[0].lower()
            self._asked = (text_of(data, "name", kind), language)
        elif kind == "audio-start":
            if self._utterance is not None:
                raise ProtocolError("audio-start came while a transcription was open; send audio-stop first")
            model, language = self._asked
            self._utterance = Utterance(self, *_format(data, kind), await self._speech_model(model), language)
            await self.write(TranscriptStart(language=self._asked[1] or None))
        elif kind == "audio-chunk":
            if self._utterance is None:
                raise ProtocolError("audio-chunk came before audio-start; send transcribe, audio-start, then the "
                                    "audio")
            await self._utterance.feed(_format(data, kind), payload)
        elif kind == "audio-stop":
            if self._utterance is None:
                raise ProtocolError("audio-stop came without audio-start")
            await self._utterance.finish()
            self._utterance = None
            metrics.WYOMING_REQUESTS.labels("transcribe", "ok").inc()
            self._asked = ("", "")
        elif kind == "synthesize":
            if self._speaking is None:  # while text streams in, this copy is only for old servers
                await Speaking(self, _voice_of(data, kind)).say(text_of(data, "text", kind, required=True))
                metrics.WYOMING_REQUESTS.labels("synthesize", "ok").inc()
        elif kind == "synthesize-start":
            self._speaking = Speaking(self, _voice_of(data, kind))
        elif kind == "synthesize-chunk":
            if self._speaking is None:
                raise ProtocolError("synthesize-chunk came before synthesize-start")
            await self._speaking.feed(text_of(data, "text", kind, required=True))
        elif kind == "synthesize-stop":
            if self._speaking is None:
                raise ProtocolError("synthesize-stop came without synthesize-start")
            speaking, self._speaking = self._speaking, None
            await speaking.finish()
            await self.write(SynthesizeStopped())
            metrics.WYOMING_REQUESTS.labels("synthesize", "ok").inc()
        else:
            log.debug("wyoming: ignored a %s event", kind)  # the protocol says to drop what a server does not know

    async def _speech_model(self, name: str) -> str:
        """"" (the mesh's default) for no name or the program's, else a model the mesh serves."""
        if name in ("", PROGRAM):
            return ""
        if await self.upstream.find("speech", name) is None:
            known = sorted({m.name for m in await self.upstream.models() if m.service == "speech"})
            raise ModelNotFound(f"no node of this mesh serves the speech model {quote(name)}; models: "
                                f"{', '.join(known) or 'none now'}")
        return name

    async def describe(self) -> None:
        models = await self.upstream.models()
        speech = [m for m in models if m.service == "speech"]
        voices = [m for m in models if m.service == "voice"]
        programs = f"{len({n for m in models for n in m.nodes})} node(s) of a lanai mesh"
        await self.write(Info(
            asr=[AsrProgram(name=PROGRAM, attribution=LANAI, installed=True, version=__version__,
                            description=f"speech to text on {programs}",
                            models=[AsrModel(name=m.name, attribution=SPEECH_ATTRIBUTION, installed=True,
                                             description=_served(m), version=None, languages=list(m.languages))
                                    for m in _default_first(speech)],
                            supports_transcript_streaming=True)] if speech else [],
            tts=[TtsProgram(name=PROGRAM, attribution=LANAI, installed=True, version=__version__,
                            description=f"text to speech on {programs}",
                            voices=[TtsVoice(name=m.name, attribution=VOICE_ATTRIBUTION.get(m.engine, LANAI),
                                             installed=True, description=_served(m), version=None,
                                             languages=list(m.languages))
                                    for m in _default_first(voices)],
                            supports_synthesize_streaming=True)] if voices else []))


def _format(data: dict[str, Any], kind: str) -> tuple[int, int, int]:
    return count_of(data, "rate", kind), count_of(data, "width", kind), count_of(data, "channels", kind)


def _voice_of(data: dict[str, Any], kind: str) -> tuple[str, str]:
    voice = mapping_of(data, "voice", kind)
    return text_of(voice, "name", "voice"), text_of(voice, "language", "voice")


def _default_first(models: list[MeshModel]) -> list[MeshModel]:
    """Home Assistant offers the first model or voice unless told otherwise."""
    return sorted(models, key=lambda m: (not m.is_default, m.name))


def _served(model: MeshModel) -> str:
    return f"{model.engine or model.service} on {', '.join(model.nodes)}"


@dataclass
class Utterance:
    """One transcription: a StreamTranscribe call fed as chunks arrive, its finished stretches
    sent back as transcript-chunk, the whole text as transcript at audio-stop."""

    session: Session
    rate: int
    width: int
    channels: int
    model: str
    language: str

    def __post_init__(self) -> None:
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUED_CHUNKS)
        config = speech_pb2.StreamConfig(
            format=speech_pb2.PcmFormat(sample_rate_hz=self.rate, sample_width_bytes=self.width,
                                        channels=self.channels),  # positive: checked by count_of
            options=speech_pb2.TranscriptionOptions(model=self.model, language=self.language),
            disable_partials=True)  # transcript-chunk cannot be taken back: send finals only
        # Written by streamcall, so a node that refuses the config while audio still arrives shows
        # its own status, not INTERNAL (grpc/grpc#36066).
        self._call = streamcall.open_stream(self.session.upstream.channel, STREAM_PATH, server_streaming=True,
                                            requests=self._requests(config), timeout=None, metadata=[],
                                            response_deserializer=speech_pb2.StreamTranscribeResponse.FromString)
        self._texts: list[str] = []
        self._detected = ""
        self._reading = asyncio.ensure_future(self._read())

    async def _requests(self, config: speech_pb2.StreamConfig) -> AsyncIterator[bytes]:
        yield speech_pb2.StreamTranscribeRequest(config=config).SerializeToString()
        while (chunk := await self._queue.get()) is not None:
            yield speech_pb2.StreamTranscribeRequest(audio=chunk).SerializeToString()

    async def _read(self) -> None:
        async for reply in self._call:
            text = reply.text.strip()
            if reply.is_final and text:
                await self.session.write(TranscriptChunk(text=(" " if self._texts else "") + text))
                self._texts.append(text)
                self._detected = reply.language or self._detected

    async def feed(self, layout: tuple[int, int, int], audio: bytes) -> None:
        if layout != (self.rate, self.width, self.channels):
            raise ProtocolError(f"an audio-chunk is {layout[0]} Hz, {layout[1]} bytes, {layout[2]} channel(s), but "
                                f"audio-start said {self.rate} Hz, {self.width} bytes, {self.channels} channel(s)")
        if audio:
            await self._put(audio)

    async def finish(self) -> None:
        await self._put(None)  # half-close: the node finalises what it holds
        await self._reading
        text = " ".join(self._texts)
        await self.session.write(Transcript(text=text, language=self._detected or self.language or None))
        await self.session.write(TranscriptStop())

    async def _put(self, item: bytes | None) -> None:
        """Queue for the call, waiting while the queue is full; a call that already ended raises its error."""
        put = asyncio.ensure_future(self._queue.put(item))
        try:
            await asyncio.wait({put, self._reading}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not put.done():
                put.cancel()
        if not put.done() or put.cancelled():
            self._reading.result()  # the call failed (or ended early): raise why
            raise ProtocolError("the transcription ended before its audio did")

    def cancel(self) -> None:
        self._call.cancel()
        self._reading.cancel()


class Speaking:
    """One synthesis: whole text, or text streamed in (synthesize-start/chunk/stop) spoken a
    sentence at a time as the sentences complete. Every sentence of it uses the same voice."""

    def __init__(self, session: Session, voice: tuple[str, str]) -> None:
        self.session = session
        self._name, self._language = voice
        self._voice: str | None = None
        self._splitter = SentenceSplitter()

    async def say(self, text: str) -> None:
        call = self.session.upstream.voice().SynthesizeStream(voice_pb2.SynthesizeRequest(
            text=text, model=await self._resolve(), encoding=voice_pb2.AUDIO_ENCODING_PCM_S16LE))
        try:
            await self._forward(call)
        finally:
            call.cancel()  # a no-op once the call ended; frees the node's slot if the client went away

    async def _forward(self, call: Any) -> None:
        rate, started = 0, False
        async for part in call:
            if part.HasField("format"):
                rate = part.format.sample_rate
                await self.session.write(AudioStart(rate=rate, width=SAMPLE_WIDTH, channels=1))
                started = True
            if part.audio and started:
                await self.session.write(AudioChunk(rate=rate, width=SAMPLE_WIDTH, channels=1, audio=part.audio))
            if part.served_by.model:
                self._voice = part.served_by.model  # the rest of the answer keeps this voice
        if started:
            await self.session.write(AudioStop())

    async def feed(self, text: str) -> None:
        done = self._splitter.feed(text)
        if done:
            await self.say(" ".join(done))

    async def finish(self) -> None:
        rest = self._splitter.flush()
        if rest:
            await self.say(" ".join(rest))

    async def _resolve(self) -> str:
        """The lanai voice: the one named, else the default one speaking the language asked for."""
        if self._voice is not None:
            return self._voice
        voices = [m for m in await self.session.upstream.models() if m.service == "voice"]
        if self._name:
            if await self.session.upstream.find("voice", self._name) is None:
                raise ModelNotFound(f"no node of this mesh has the voice {quote(self._name)}; voices: "
                                    f"{', '.join(m.name for m in voices) or 'none now'}")
            self._voice = self._name
        elif self._language:
            wanted = self._language.replace("_", "-").lower()
            speaking = [m for m in _default_first(voices)
                        if any(lang.lower() == wanted or lang.lower().split("-")[0] == wanted for lang in m.languages)]
            if not speaking:
                raise ModelNotFound(f"no voice of this mesh speaks {quote(self._language)}; voices: "
                                    + ", ".join(f"{m.name} ({'/'.join(m.languages)})" for m in voices))
            self._voice = speaking[0].name
        else:
            self._voice = ""
        return self._voice
