"""Audio in: encoded files through PyAV, raw PCM by its declared format, all to 16 kHz mono float32."""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from lanai.services.core.errors import InvalidInput

SAMPLE_RATE = 16000
"""Whisper's input rate; everything is resampled to it."""

Samples = npt.NDArray[np.float32]

_INT_DTYPES: dict[int, np.dtype[Any]] = {1: np.dtype(np.uint8), 2: np.dtype("<i2"), 4: np.dtype("<i4")}


@dataclass(frozen=True)
class PcmFormat:
    """The declared layout of raw PCM bytes (interleaved frames)."""

    sample_rate_hz: int
    """Samples per second per channel."""
    sample_width_bytes: int = 2
    """1 (unsigned), 2 or 4 (signed little-endian), or 4 with `floating`."""
    channels: int = 1
    """Interleaved channels, mixed down to mono."""
    floating: bool = False
    """IEEE float32 samples instead of integers."""

    @property
    def frame_bytes(self) -> int:
        return self.sample_width_bytes * self.channels

    def validate(self) -> None:
        if not 8000 <= self.sample_rate_hz <= 192000:
            raise InvalidInput(f"PCM sample_rate_hz {self.sample_rate_hz} is out of range; "
                               "declare the real rate, 8000 to 192000 (16000 needs no resampling)")
        if self.sample_width_bytes not in _INT_DTYPES:
            raise InvalidInput(f"PCM sample_width_bytes {self.sample_width_bytes} is not supported; use 1, 2 or 4")
        if self.floating and self.sample_width_bytes != 4:
            raise InvalidInput("float PCM must have sample_width_bytes 4 (float32)")
        if not 1 <= self.channels <= 8:
            raise InvalidInput(f"PCM channels {self.channels} is out of range; use 1 to 8")


def check_pcm(data: bytes, fmt: PcmFormat, max_seconds: float) -> None:
    """Check raw PCM against its declaration and the length limit (cheap: no decoding)."""
    fmt.validate()
    if not data:
        raise InvalidInput("the audio is empty: send at least one PCM frame")
    if len(data) % fmt.frame_bytes:
        raise InvalidInput(
            f"the PCM data ({len(data)} bytes) does not match its declared format: it is not a whole number "
            f"of {fmt.frame_bytes}-byte frames ({fmt.channels} channel(s) x {fmt.sample_width_bytes} bytes); "
            "check sample_width_bytes and channels")
    _check_length(len(data) / fmt.frame_bytes / fmt.sample_rate_hz, max_seconds)


def decode_pcm(data: bytes, fmt: PcmFormat, max_seconds: float) -> Samples:
    """Raw PCM bytes to 16 kHz mono float32, checking the data against its declaration."""
    check_pcm(data, fmt, max_seconds)
    return _resample(_to_mono_float(data, fmt), fmt.sample_rate_hz, final=True, resampler=None)


def decode_encoded(data: bytes, max_seconds: float) -> Samples:
    """An encoded file (any container and codec FFmpeg knows) to 16 kHz mono float32."""
    if not data:
        raise InvalidInput("the audio is empty: send the bytes of an audio file, or raw PCM with its format")
    _check_riff(data)
    try:
        container = av.open(io.BytesIO(data), mode="r", metadata_errors="ignore")
    except EOFError:  # PyAV's EOFError is also an FFmpegError: the data stops inside the headers
        raise InvalidInput("the audio is truncated or corrupt: it ends before its headers do; "
                           "send the complete file") from None
    except (av.FFmpegError, ValueError) as exc:
        raise InvalidInput("the audio could not be read: it is not a file format FFmpeg decodes "
                           f"({exc.__class__.__name__}); send WAV, FLAC, MP3, OGG or M4A, "
                           "or raw PCM with its format") from None
    with container:
        if not container.streams.audio:
            raise InvalidInput("the file has no audio stream; send an audio file")
        stream = container.streams.audio[0]
        declared = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else None
        if declared is not None:
            _check_length(declared, max_seconds)
        # Keep the channel layout and average in numpy, as for raw PCM (FFmpeg's mono matrix
        # scales each channel by 0.707 and can push full-scale stereo past +-1).
        resampler = av.AudioResampler(format="fltp", rate=SAMPLE_RATE)
        chunks: list[Samples] = []
        decoded = 0
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(_floats(out))
                    decoded += out.samples
                _check_length(decoded / SAMPLE_RATE, max_seconds)
            chunks.extend(_floats(out) for out in resampler.resample(None))
        except av.FFmpegError as exc:
            raise InvalidInput(f"the audio is corrupt or truncated after {decoded / SAMPLE_RATE:.2f} s "
                               f"({exc.__class__.__name__}); send the complete file") from None
    samples = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
    if samples.size == 0:
        raise InvalidInput("the audio is empty: the file decodes to no samples")
    got = samples.size / SAMPLE_RATE
    if declared is not None and declared - got > max(0.25, 0.02 * declared):
        raise InvalidInput(f"the audio is truncated: its header declares {declared:.2f} s but only {got:.2f} s "
                           "could be decoded; send the complete file")
    return samples


class PcmStreamConverter:
    """Turns PCM chunks of a stream into 16 kHz mono float32, carrying split frames
    and resampler state across chunks."""

    def __init__(self, fmt: PcmFormat) -> None:
        fmt.validate()
        self.fmt = fmt
        self._rest = b""
        self._resampler = (None if fmt.sample_rate_hz == SAMPLE_RATE else
                           av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE))

    def feed(self, chunk: bytes) -> Samples:
        data = self._rest + chunk
        whole = len(data) - len(data) % self.fmt.frame_bytes
        self._rest = data[whole:]
        if not whole:
            return np.zeros(0, np.float32)
        return _resample(_to_mono_float(data[:whole], self.fmt), self.fmt.sample_rate_hz, False, self._resampler)

    def flush(self) -> Samples:
        """Whatever the resampler still holds; a trailing partial frame is dropped."""
        self._rest = b""
        if self._resampler is None:
            return np.zeros(0, np.float32)
        return _resample(np.zeros(0, np.float32), self.fmt.sample_rate_hz, True, self._resampler)


def _check_length(seconds: float, max_seconds: float) -> None:
    if seconds > max_seconds:
        raise InvalidInput(f"the audio is longer than this node's limit of {max_seconds:g} s; split it, "
                           "or stream it with StreamTranscribe")


def _check_riff(data: bytes) -> None:
    """WAV files state their data size; FFmpeg quietly decodes a cut-off file, so compare."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return
    offset = 12
    while offset + 8 <= len(data):
        chunk_id, size = struct.unpack_from("<4sI", data, offset)
        if chunk_id == b"data":
            present = len(data) - offset - 8
            # 0 and 0xFFFFFFFF mark a size left unknown by streaming writers.
            if size not in (0, 0xFFFFFFFF) and present < size:
                raise InvalidInput(f"the WAV file is truncated: its header declares {size} bytes of audio but only "
                                   f"{present} are present; send the complete file")
            return
        offset += 8 + size + (size & 1)


def _to_mono_float(data: bytes, fmt: PcmFormat) -> Samples:
    if fmt.floating:
        raw = np.frombuffer(data, dtype="<f4").astype(np.float32)
    else:
        ints = np.frombuffer(data, dtype=_INT_DTYPES[fmt.sample_width_bytes])
        if fmt.sample_width_bytes == 1:
            raw = (ints.astype(np.float32) - 128.0) / 128.0
        else:
            raw = ints.astype(np.float32) / float(2 ** (8 * fmt.sample_width_bytes - 1))
    if fmt.channels > 1:
        raw = raw.reshape(-1, fmt.channels).mean(axis=1, dtype=np.float32)
    return raw


def _resample(samples: Samples, rate: int, final: bool, resampler: av.AudioResampler | None) -> Samples:
    if rate == SAMPLE_RATE:
        return samples
    resampler = resampler or av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    out: list[Samples] = []
    if samples.size:
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = rate
        out.extend(_floats(f) for f in resampler.resample(frame))
    if final:
        out.extend(_floats(f) for f in resampler.resample(None))
    return np.concatenate(out).astype(np.float32, copy=False) if out else np.zeros(0, np.float32)


def _floats(frame: av.AudioFrame) -> Samples:
    """A resampled float frame as flat mono float32: planar channels are averaged."""
    planes = np.asarray(frame.to_ndarray(), dtype=np.float32)
    return planes.mean(axis=0, dtype=np.float32) if planes.ndim == 2 and planes.shape[0] > 1 else planes.reshape(-1)
