"""Synthetic audio for the speech unit tests: tones, WAV bytes, and files encoded in memory."""

from __future__ import annotations

import io
import wave

import av
import numpy as np
import numpy.typing as npt

Float = npt.NDArray[np.float64]


def tone(rate: int, seconds: float, freq: float = 440.0, amp: float = 0.5) -> Float:
    """A sine wave, float64 in [-amp, amp]."""
    t = np.arange(int(round(rate * seconds))) / rate
    return amp * np.sin(2 * np.pi * freq * t)


def pcm_bytes(samples: Float, width: int = 2, floating: bool = False) -> bytes:
    """Float samples in [-1, 1] (shape (n,) or (n, channels)) as interleaved PCM bytes."""
    flat = np.asarray(samples, np.float64).reshape(-1)
    if floating:
        return flat.astype("<f4").tobytes()
    if width == 1:
        return np.clip(np.round(flat * 127 + 128), 0, 255).astype(np.uint8).tobytes()
    scale = 2 ** (8 * width - 1) - 1
    return np.round(np.clip(flat, -1, 1) * scale).astype(f"<i{width}").tobytes()


def wav_bytes(samples: Float, rate: int, width: int = 2) -> bytes:
    """A WAV file (integer PCM) written with the stdlib `wave` module."""
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(width)
        out.setframerate(rate)
        out.writeframes(pcm_bytes(samples, width))
    return buf.getvalue()


def encoded_bytes(samples: Float, rate: int, container: str, codec: str) -> bytes:
    """Mono 16-bit samples encoded in memory with PyAV (e.g. "flac"/"flac", "ogg"/"libopus")."""
    buf = io.BytesIO()
    with av.open(buf, "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(
            np.frombuffer(pcm_bytes(samples), "<i2").reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def packet_offsets(data: bytes) -> list[int]:
    """Byte offsets in `data` where the audio packets of its first audio stream begin."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        return [p.pos for p in container.demux(stream) if p.size and p.pos is not None and p.pos >= 0]


def dominant_hz(samples: npt.NDArray[np.float32], rate: int = 16000) -> float:
    """The frequency of the strongest spectral peak."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.argmax(spectrum) * rate / samples.size)
