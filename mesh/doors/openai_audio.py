"""OpenAI's audio endpoints: /v1/audio/transcriptions and /translations over the speech
service, /v1/audio/speech over the voice service."""

from __future__ import annotations

import numpy as np
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from lanai.api.speech.v1 import speech_pb2
from lanai.api.voice.v1 import voice_pb2
from lanai.mesh.doors import subtitles
from lanai.mesh.doors.http import Door, endpoint
from lanai.mesh.doors.params import BadParam, Params
from lanai.mesh.doors.upstream import MeshModel
from lanai.services.core.errors import InvalidInput, ModelNotFound, quote

SPEECH_ALIASES = ("whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe", "gpt-4o-transcribe-diarize")
"""OpenAI's transcription model names, which tools send by default: the mesh's default model."""
VOICE_MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")
OPENAI_VOICES = ("alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse",
                 "marin", "cedar")
"""OpenAI's voice names: lanai answers them with the mesh's default voice."""
PCM_RATE = 24_000
"""OpenAI's `pcm` is 24 kHz 16-bit mono little-endian; lanai's voices are resampled to it."""
SPEECH_FORMATS = ("wav", "pcm")
MAX_SPEECH_CHARS = 4096


def routes(door: Door) -> list[Route]:
    return [
        Route("/v1/audio/transcriptions", endpoint(door, "/v1/audio/transcriptions",
                                                   lambda r: transcribe(door, r, "transcribe")), methods=["POST"]),
        Route("/v1/audio/translations", endpoint(door, "/v1/audio/translations",
                                                 lambda r: transcribe(door, r, "translate")), methods=["POST"]),
        Route("/v1/audio/speech", endpoint(door, "/v1/audio/speech", lambda r: speech(door, r)), methods=["POST"]),
    ]


async def _served(door: Door, service: str, name: str, aliases: tuple[str, ...]) -> str:
    """"" (the default) for an OpenAI name or "default", else a model the mesh serves (404 if not)."""
    if name in ("", "default", *aliases):
        return ""
    if await door.upstream.find(service, name) is None:
        known = sorted({m.name for m in await door.upstream.models() if m.service == service})
        raise ModelNotFound(f"no node of this mesh serves the {service} model {quote(name)}; models: "
                            f"{', '.join(known) or 'none now'} (or {aliases[0]} / 'default' for the default)")
    return name


async def transcribe(door: Door, request: Request, task: str) -> Response:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "multipart/form-data":
        raise InvalidInput(f"send the audio as multipart/form-data with a 'file' part, not {kind or 'nothing'}")
    async with request.form(max_files=1, max_fields=32) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise BadParam("file", "'file' is required: the audio file (any format ffmpeg reads) as a file part")
        audio = await upload.read()
        if not audio:
            raise BadParam("file", "the uploaded file is empty")
        params = Params({k: v for k, v in form.multi_items() if isinstance(v, str)}, form=True)
        granularities = [v for v in form.getlist("timestamp_granularities[]") if isinstance(v, str)]
    fmt = params.text("response_format", "json", choices=subtitles.FORMATS)
    for granularity in granularities:
        if granularity not in ("word", "segment"):
            raise BadParam("timestamp_granularities", f"{quote(granularity)} is not a granularity; use word, segment")
    words = "word" in granularities
    if words and fmt != "verbose_json":
        raise BadParam("timestamp_granularities", "word timestamps come only with response_format=verbose_json")
    params.number("temperature", 0, 1)  # checked, then left to the node's own temperature fallback
    options = speech_pb2.TranscriptionOptions(
        model=await _served(door, "speech", params.text("model"), SPEECH_ALIASES),
        language=params.text("language") if task == "transcribe" else "",
        task=speech_pb2.TASK_TRANSLATE if task == "translate" else speech_pb2.TASK_TRANSCRIBE,
        initial_prompt=params.text("prompt"), word_timestamps=words)
    reply = await door.mesh_call(request, door.upstream.speech().Transcribe(
        speech_pb2.TranscribeRequest(audio=speech_pb2.Audio(encoded=audio), options=options)))
    headers = {"X-Lanai-Node": reply.served_by.node_id, "X-Lanai-Model": reply.served_by.model}
    if fmt == "text":
        return PlainTextResponse(reply.text.strip() + "\n", headers=headers)
    if fmt == "srt":
        return PlainTextResponse(subtitles.srt(reply), headers=headers)
    if fmt == "vtt":
        return PlainTextResponse(subtitles.vtt(reply), media_type="text/vtt", headers=headers)
    if fmt == "verbose_json":
        return JSONResponse(subtitles.verbose(reply, task, words), headers=headers)
    return JSONResponse({"text": reply.text.strip(), "usage": {"type": "duration",
                                                               "seconds": round(reply.audio_duration_s, 3)}},
                        headers=headers)


async def speech(door: Door, request: Request) -> Response:
    params = await door.json_params(request)
    text = params.text("input", required=True)
    if len(text) > MAX_SPEECH_CHARS:
        raise BadParam("input", f"'input' has {len(text)} characters; send at most {MAX_SPEECH_CHARS} per request")
    fmt = params.text("response_format", "wav")
    if fmt not in SPEECH_FORMATS:
        raise BadParam("response_format", f"response_format {quote(fmt)} is not supported; use one of: "
                                          f"{', '.join(SPEECH_FORMATS)} (wav when left out)")
    params.only("stream_format", "audio", why="only whole audio is sent (stream_format=audio)")
    rate = params.number("speed", 0.25, 4.0) or 1.0
    voice = await _voice(door, params)
    reply = await door.mesh_call(request, door.upstream.voice().Synthesize(voice_pb2.SynthesizeRequest(
        text=text, model=voice, rate=rate,
        encoding=voice_pb2.AUDIO_ENCODING_WAV if fmt == "wav" else voice_pb2.AUDIO_ENCODING_PCM_S16LE)))
    headers = {"X-Lanai-Node": reply.served_by.node_id, "X-Lanai-Voice": reply.served_by.model}
    if fmt == "wav":
        return Response(reply.audio, media_type="audio/wav", headers=headers)
    pcm = resample(reply.audio, reply.format.sample_rate, PCM_RATE)
    return Response(pcm, media_type="audio/pcm", headers={**headers, "X-Sample-Rate": str(PCM_RATE)})


async def _voice(door: Door, params: Params) -> str:
    """The lanai voice asked for: `voice` when it names one the mesh serves, else `model` when it
    does; OpenAI's names (alloy, tts-1, ...) and nothing mean the default voice."""
    voice, model = params.text("voice"), params.text("model")
    voices: list[MeshModel] = [m for m in await door.upstream.models() if m.service == "voice"]
    for name in (voice, model):
        if name and await door.upstream.find("voice", name) is not None:
            return name
    if voice and voice not in (*OPENAI_VOICES, "default"):
        raise ModelNotFound(f"no node of this mesh has the voice {quote(voice)}; voices: "
                            f"{', '.join(m.name for m in voices) or 'none now'} (OpenAI's names mean the default)")
    if model and model not in (*VOICE_MODELS, "default"):
        raise ModelNotFound(f"{quote(model)} is not a voice of this mesh; use tts-1 (the default voice) or one of: "
                            f"{', '.join(m.name for m in voices) or 'none now'}")
    return ""


def resample(pcm: bytes, source_hz: int, target_hz: int) -> bytes:
    """16-bit mono PCM at another rate (linear interpolation: speech, not music)."""
    if source_hz == target_hz or not pcm or source_hz <= 0:
        return pcm
    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.float32)
    count = int(round(len(samples) * target_hz / source_hz))
    positions = np.arange(count, dtype=np.float64) * (source_hz / target_hz)
    out = np.interp(positions, np.arange(len(samples)), samples)
    return np.clip(np.round(out), -32768, 32767).astype("<i2").tobytes()
