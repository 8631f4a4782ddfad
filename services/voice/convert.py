"""Between lanai.voice.v1 messages and the engine's types."""

from __future__ import annotations

import io
import wave

from lanai.api.voice.v1 import voice_pb2
from lanai.services.core.errors import InvalidInput
from lanai.services.voice.types import Audio, VoiceInfo

WAV, PCM = voice_pb2.AUDIO_ENCODING_WAV, voice_pb2.AUDIO_ENCODING_PCM_S16LE


def encoding(request: voice_pb2.SynthesizeRequest, *, stream: bool) -> int:
    """The encoding a request asks for (unspecified: WAV for a clip, PCM for a stream)."""
    chosen = request.encoding or (PCM if stream else WAV)
    if chosen not in (WAV, PCM):
        raise InvalidInput(f"unknown audio encoding {chosen}; use AUDIO_ENCODING_WAV or AUDIO_ENCODING_PCM_S16LE")
    if stream and chosen == WAV:
        raise InvalidInput("SynthesizeStream sends raw PCM chunks (AUDIO_ENCODING_PCM_S16LE); use Synthesize for "
                           "one WAV file")
    return chosen


def audio_format(encoded: int, sample_rate: int) -> voice_pb2.AudioFormat:
    return voice_pb2.AudioFormat(encoding=encoded, sample_rate=sample_rate, channels=1)  # type: ignore[arg-type]


def wav_bytes(audio: Audio) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(audio.sample_rate)
        out.writeframes(audio.pcm)
    return buffer.getvalue()


def voice_info(info: VoiceInfo, is_default: bool) -> voice_pb2.VoiceInfo:
    return voice_pb2.VoiceInfo(name=info.name, language=info.language, sample_rate=info.sample_rate,
                               engine=info.engine, is_default=is_default, description=info.description)
