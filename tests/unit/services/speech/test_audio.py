"""lanai.services.speech.audio: encoded files and raw PCM to 16 kHz mono float32."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from lanai.services.core.errors import InvalidInput
from lanai.services.speech.audio import SAMPLE_RATE, PcmFormat, PcmStreamConverter, check_pcm, decode_encoded, decode_pcm

from .synth import dominant_hz, encoded_bytes, packet_offsets, pcm_bytes, tone, wav_bytes


def _assert_tone(samples: np.ndarray, seconds: float, freq: float = 440.0, tolerance: int = 4) -> None:
    """16 kHz float32 of the expected length (to a few samples: the resampler's tail is flushed too)
    whose pitch survived resampling. Lossy codecs may trim their priming: give them a few ms."""
    assert samples.dtype == np.float32
    assert samples.ndim == 1
    assert abs(samples.size - seconds * SAMPLE_RATE) <= tolerance, samples.size
    assert abs(dominant_hz(samples) - freq) < 2.0


# --- decode_encoded ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100, 48000])
def test_wav_is_resampled_to_16k(rate: int) -> None:
    samples = decode_encoded(wav_bytes(tone(rate, 1.5), rate), max_seconds=60)
    _assert_tone(samples, 1.5)
    assert 0.45 < np.abs(samples).max() < 0.55  # amplitude kept


@pytest.mark.parametrize("width", [1, 2, 4])
def test_wav_sample_widths_match_raw_pcm_decoding(width: int) -> None:
    signal = tone(16000, 0.5)
    decoded = decode_encoded(wav_bytes(signal, 16000, width), max_seconds=60)
    np.testing.assert_allclose(decoded, signal, atol=1 / 2 ** (8 * width - 2))
    np.testing.assert_allclose(decoded, decode_pcm(pcm_bytes(signal, width), PcmFormat(16000, width), 60),
                               atol=1e-6)


def test_stereo_wav_with_opposite_channels_mixes_to_silence() -> None:
    signal = tone(16000, 1.0)
    samples = decode_encoded(wav_bytes(np.stack([signal, -signal], axis=1), 16000), max_seconds=60)
    assert abs(samples.size - SAMPLE_RATE) <= 16
    assert np.abs(samples).max() < 1e-3


def test_stereo_wav_mixdown_matches_raw_pcm_mixdown() -> None:
    signal = tone(16000, 1.0, amp=0.9)
    stereo = np.stack([signal, signal], axis=1)
    from_file = decode_encoded(wav_bytes(stereo, 16000), max_seconds=60)
    from_pcm = decode_pcm(pcm_bytes(stereo), PcmFormat(16000, 2, channels=2), max_seconds=60)
    assert np.abs(from_file).max() <= 1.0
    np.testing.assert_allclose(from_file, from_pcm, atol=1e-3)


def test_flac_is_decoded_and_resampled() -> None:
    _assert_tone(decode_encoded(encoded_bytes(tone(44100, 2.0), 44100, "flac", "flac"), max_seconds=60), 2.0)


def test_ogg_opus_is_decoded_and_resampled() -> None:
    _assert_tone(decode_encoded(encoded_bytes(tone(48000, 2.0), 48000, "ogg", "libopus"), max_seconds=60), 2.0,
                 tolerance=160)


def _sox(tmp_path: Path, name: str, *effects: str) -> bytes:
    sox = shutil.which("sox")
    if sox is None:
        pytest.skip("sox is not installed (apt-get install sox)")
    path = tmp_path / name
    subprocess.run([sox, "-n", "-r", "44100", "-c", "1", str(path), "synth", "2", "sine", "440", *effects],
                   check=True, capture_output=True, timeout=30)
    return path.read_bytes()


def test_ogg_vorbis_made_by_sox_is_decoded(tmp_path: Path) -> None:
    _assert_tone(decode_encoded(_sox(tmp_path, "tone.ogg"), max_seconds=60), 2.0, tolerance=160)


def test_empty_bytes_are_invalid() -> None:
    with pytest.raises(InvalidInput, match="empty"):
        decode_encoded(b"", max_seconds=60)


@pytest.mark.parametrize("data", [
    b"this is a text file, not audio at all\n" * 20,
    bytes(np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8)),
    b"RIFF",
    b"RIFF\x24\x00\x00\x00WAVEfmt ",
], ids=["text", "random", "riff-magic-only", "riff-header-only"])
def test_non_audio_bytes_are_invalid(data: bytes) -> None:
    with pytest.raises(InvalidInput):
        decode_encoded(data, max_seconds=60)


def test_file_without_audio_stream_is_invalid() -> None:
    import io

    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="matroska") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for _ in range(3):
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    with pytest.raises(InvalidInput, match="no audio stream"):
        decode_encoded(buf.getvalue(), max_seconds=60)


@pytest.mark.parametrize("cut", [1, 2, 101, 16000, 31999])
def test_truncated_wav_is_invalid(cut: int) -> None:
    whole = wav_bytes(tone(16000, 1.0), 16000)  # 32000 bytes of samples
    with pytest.raises(InvalidInput, match="truncated"):
        decode_encoded(whole[:-cut], max_seconds=60)


def _with_chunk_before_data(wav: bytes, chunk: bytes) -> bytes:
    at = wav.index(b"data")
    out = wav[:at] + chunk + wav[at:]
    return out[:4] + struct.pack("<I", len(out) - 8) + out[8:]


def test_truncation_is_found_behind_an_odd_sized_chunk() -> None:
    # RIFF pads odd-sized chunks with one byte; the data chunk comes after it.
    wav = _with_chunk_before_data(wav_bytes(tone(16000, 1.0), 16000), b"LIST" + struct.pack("<I", 5) + b"abcde\0")
    assert abs(decode_encoded(wav, max_seconds=60).size - SAMPLE_RATE) <= 16
    with pytest.raises(InvalidInput, match="truncated"):
        decode_encoded(wav[:-10], max_seconds=60)


@pytest.mark.parametrize("size", [0, 0xFFFFFFFF])
def test_wav_with_unknown_data_size_is_accepted(size: int) -> None:
    # Streaming writers leave the sizes as 0 or 0xFFFFFFFF: decode to the end of the bytes.
    wav = bytearray(wav_bytes(tone(16000, 1.0), 16000))
    at = wav.index(b"data")
    wav[at + 4:at + 8] = struct.pack("<I", size)
    wav[4:8] = struct.pack("<I", size)
    _assert_tone(decode_encoded(bytes(wav), max_seconds=60), 1.0)


def test_flac_cut_mid_frame_is_invalid() -> None:
    flac = encoded_bytes(tone(44100, 2.0), 44100, "flac", "flac")
    for fraction in (0.3, 0.6, 0.95):
        with pytest.raises(InvalidInput, match="truncated"):
            decode_encoded(flac[:int(len(flac) * fraction)], max_seconds=60)


def test_flac_cut_at_a_frame_boundary_is_invalid() -> None:
    # Cut cleanly between frames, FFmpeg decodes what is there without complaint: only the
    # declared length (STREAMINFO) against the decoded one can tell.
    flac = encoded_bytes(tone(44100, 2.0), 44100, "flac", "flac")
    offsets = packet_offsets(flac)
    assert len(offsets) > 4
    with pytest.raises(InvalidInput, match="truncated"):
        decode_encoded(flac[:offsets[len(offsets) // 2]], max_seconds=60)


def test_truncated_ogg_says_truncated(tmp_path: Path) -> None:
    ogg = _sox(tmp_path, "tone.ogg")
    with pytest.raises(InvalidInput, match="truncated"):
        decode_encoded(ogg[:int(len(ogg) * 0.9)], max_seconds=60)


def test_truncated_ogg_is_invalid(tmp_path: Path) -> None:
    ogg = _sox(tmp_path, "tone.ogg")
    with pytest.raises(InvalidInput):
        decode_encoded(ogg[:int(len(ogg) * 0.9)], max_seconds=60)


def test_longer_than_max_seconds_is_invalid() -> None:
    wav = wav_bytes(tone(16000, 3.0), 16000)
    with pytest.raises(InvalidInput, match="longer than"):
        decode_encoded(wav, max_seconds=2.0)
    assert decode_encoded(wav, max_seconds=3.0).size == 3 * SAMPLE_RATE  # the limit itself is allowed


def _flac_without_total_samples(seconds: float) -> bytes:
    """A FLAC file whose STREAMINFO leaves the total sample count unknown (0), as streaming encoders do."""
    flac = bytearray(encoded_bytes(tone(44100, seconds), 44100, "flac", "flac"))
    assert flac[:4] == b"fLaC" and flac[4] & 0x7F == 0  # STREAMINFO first: fields from byte 8
    packed = int.from_bytes(flac[18:26], "big")  # rate (20 bits), channels (3), bits (5), total samples (36)
    assert packed & (2 ** 36 - 1) == round(44100 * seconds)
    flac[18:26] = (packed & ~(2 ** 36 - 1)).to_bytes(8, "big")
    return bytes(flac)


def test_flac_of_unknown_length_is_decoded() -> None:
    _assert_tone(decode_encoded(_flac_without_total_samples(3.0), max_seconds=60), 3.0)


def test_too_long_without_declared_length_is_invalid() -> None:
    # Nothing in the header says how long it is: the decoded length must still be capped.
    with pytest.raises(InvalidInput, match="longer than"):
        decode_encoded(_flac_without_total_samples(3.0), max_seconds=2.0)


def test_too_long_wav_with_zero_data_size_is_invalid() -> None:
    wav = bytearray(wav_bytes(tone(16000, 3.0), 16000))
    at = wav.index(b"data")
    wav[at + 4:at + 8] = struct.pack("<I", 0)
    with pytest.raises(InvalidInput, match="longer than"):
        decode_encoded(bytes(wav), max_seconds=2.0)


def test_too_long_flac_is_invalid() -> None:
    with pytest.raises(InvalidInput, match="longer than"):
        decode_encoded(encoded_bytes(tone(44100, 3.0), 44100, "flac", "flac"), max_seconds=2.5)


# --- decode_pcm -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("width", "raw", "expected"), [
    (1, np.array([128, 192, 64, 0, 255], np.uint8), [0.0, 0.5, -0.5, -1.0, 127 / 128]),
    (2, np.array([0, 16384, -16384, -32768, 32767], "<i2"), [0.0, 0.5, -0.5, -1.0, 32767 / 32768]),
    (4, np.array([0, 2 ** 30, -2 ** 30, -2 ** 31, 2 ** 31 - 1], "<i4"), [0.0, 0.5, -0.5, -1.0, 1.0]),
])
def test_integer_pcm_scales_to_unit_range(width: int, raw: np.ndarray, expected: list[float]) -> None:
    samples = decode_pcm(raw.tobytes(), PcmFormat(16000, width), max_seconds=60)
    assert samples.dtype == np.float32
    np.testing.assert_allclose(samples, expected, atol=1e-6)


def test_float_pcm_is_taken_as_is() -> None:
    values = np.array([0.0, 0.25, -0.75, 1.0, -1.0], "<f4")
    samples = decode_pcm(values.tobytes(), PcmFormat(16000, 4, floating=True), max_seconds=60)
    np.testing.assert_array_equal(samples, values)


def test_float_and_int32_of_the_same_signal_agree() -> None:
    signal = tone(16000, 0.25)
    as_float = decode_pcm(pcm_bytes(signal, 4, floating=True), PcmFormat(16000, 4, floating=True), 60)
    as_int = decode_pcm(pcm_bytes(signal, 4), PcmFormat(16000, 4), 60)
    np.testing.assert_allclose(as_float, as_int, atol=1e-6)


@pytest.mark.parametrize("width", [1, 2, 4])
def test_stereo_pcm_with_opposite_channels_mixes_to_silence(width: int) -> None:
    signal = tone(16000, 0.5)
    samples = decode_pcm(pcm_bytes(np.stack([signal, -signal], axis=1), width), PcmFormat(16000, width, 2), 60)
    assert samples.size == signal.size
    assert np.abs(samples).max() < 2 / 2 ** (8 * width - 1)


def test_multichannel_pcm_is_the_mean_of_its_channels() -> None:
    left, right = tone(16000, 0.5, amp=0.8), tone(16000, 0.5, freq=1000, amp=0.4)
    four = np.stack([left, right, np.zeros_like(left), left], axis=1)
    samples = decode_pcm(pcm_bytes(four, 4, floating=True), PcmFormat(16000, 4, 4, floating=True), 60)
    np.testing.assert_allclose(samples, (2 * left + right) / 4, atol=1e-6)


@pytest.mark.parametrize("rate", [8000, 11025, 22050, 44100, 48000, 96000])
def test_pcm_is_resampled_to_16k(rate: int) -> None:
    samples = decode_pcm(pcm_bytes(tone(rate, 1.0)), PcmFormat(rate), max_seconds=60)
    assert abs(samples.size - SAMPLE_RATE) <= 16  # within 1 ms of one second
    assert abs(dominant_hz(samples) - 440) < 2.0
    assert 0.45 < np.abs(samples[100:-100]).max() < 0.55


def test_resampling_filters_what_16k_cannot_hold() -> None:
    # 10 kHz is above the 8 kHz Nyquist limit of the output: a resampler removes it, plain decimation would alias it.
    samples = decode_pcm(pcm_bytes(tone(44100, 1.0, freq=10000)), PcmFormat(44100), max_seconds=60)
    assert np.sqrt(np.mean(samples ** 2)) < 0.02  # the input's RMS is 0.35


@pytest.mark.parametrize(("fmt", "size"), [
    (PcmFormat(16000, 2), 3),
    (PcmFormat(16000, 2, 2), 6),
    (PcmFormat(16000, 4), 4002),
    (PcmFormat(16000, 4, 3, floating=True), 20),
])
def test_pcm_that_is_not_whole_frames_is_invalid(fmt: PcmFormat, size: int) -> None:
    with pytest.raises(InvalidInput, match="whole number"):
        decode_pcm(bytes(size), fmt, max_seconds=60)


@pytest.mark.parametrize("fmt", [
    PcmFormat(0), PcmFormat(7999), PcmFormat(192001), PcmFormat(-16000),
    PcmFormat(16000, 0), PcmFormat(16000, 3), PcmFormat(16000, 8),
    PcmFormat(16000, 2, floating=True), PcmFormat(16000, 1, floating=True),
    PcmFormat(16000, 2, 0), PcmFormat(16000, 2, 9), PcmFormat(16000, 2, -1),
], ids=repr)
def test_bad_pcm_format_is_invalid(fmt: PcmFormat) -> None:
    with pytest.raises(InvalidInput):
        decode_pcm(bytes(fmt.frame_bytes * 16 if fmt.frame_bytes > 0 else 64), fmt, max_seconds=60)
    with pytest.raises(InvalidInput):
        PcmStreamConverter(fmt)


@pytest.mark.parametrize("fmt", [PcmFormat(8000), PcmFormat(192000), PcmFormat(16000, 1, 8),
                                 PcmFormat(16000, 4, 1, floating=True)], ids=repr)
def test_edge_pcm_formats_are_valid(fmt: PcmFormat) -> None:
    fmt.validate()
    assert decode_pcm(bytes(fmt.frame_bytes * fmt.sample_rate_hz // 10), fmt, max_seconds=60).size > 0


def test_empty_pcm_is_invalid() -> None:
    with pytest.raises(InvalidInput, match="empty"):
        decode_pcm(b"", PcmFormat(16000), max_seconds=60)


def test_pcm_longer_than_max_seconds_is_invalid() -> None:
    two_seconds = bytes(2 * 8000 * 2)
    with pytest.raises(InvalidInput, match="longer than"):
        decode_pcm(two_seconds, PcmFormat(8000), max_seconds=1.5)
    with pytest.raises(InvalidInput, match="longer than"):
        check_pcm(two_seconds, PcmFormat(8000), max_seconds=1.5)
    assert decode_pcm(two_seconds, PcmFormat(8000), max_seconds=2.0).size == 2 * SAMPLE_RATE


# --- PcmStreamConverter -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [
    PcmFormat(16000), PcmFormat(16000, 2, 2), PcmFormat(8000), PcmFormat(44100, 2, 2),
    PcmFormat(48000, 4, 1, floating=True), PcmFormat(22050, 1, 3), PcmFormat(11025, 4, 2),
], ids=repr)
@pytest.mark.parametrize("seed", [0, 1])
def test_stream_chunks_give_the_samples_of_the_whole(fmt: PcmFormat, seed: int) -> None:
    rng = np.random.default_rng(seed)
    signal = np.stack([tone(fmt.sample_rate_hz, 1.3, freq=300 + 200 * c, amp=0.3) for c in range(fmt.channels)],
                      axis=1)
    data = pcm_bytes(signal, fmt.sample_width_bytes, fmt.floating)
    whole = decode_pcm(data, fmt, max_seconds=60)

    converter, parts, at = PcmStreamConverter(fmt), [], 0
    while at < len(data):
        size = int(rng.choice([0, 1, fmt.frame_bytes + 1, int(rng.integers(1, 5000))]))
        parts.append(converter.feed(data[at:at + size]))
        at += size
    parts.append(converter.flush())
    assert all(p.dtype == np.float32 for p in parts)
    streamed = np.concatenate(parts)
    assert abs(streamed.size - whole.size) <= 2
    n = min(streamed.size, whole.size)
    np.testing.assert_allclose(streamed[:n], whole[:n], atol=1e-5)


def test_stream_converter_holds_split_frames_until_complete() -> None:
    converter = PcmStreamConverter(PcmFormat(16000, 2, 2))
    frame = np.array([16384, -16384], "<i2").tobytes()  # left 0.5, right -0.5
    frame2 = np.array([16384, 16384], "<i2").tobytes()  # both 0.5
    assert converter.feed(frame[:3]).size == 0
    np.testing.assert_allclose(converter.feed(frame[3:] + frame2[:1]), [0.0])
    np.testing.assert_allclose(converter.feed(frame2[1:]), [0.5])
    assert converter.feed(frame[:1]).size == 0
    assert converter.flush().size == 0  # a trailing partial frame is dropped


def test_stream_converter_flush_returns_the_resampler_tail() -> None:
    fmt = PcmFormat(44100)
    data = pcm_bytes(tone(44100, 0.5))
    converter = PcmStreamConverter(fmt)
    head = converter.feed(data)
    tail = converter.flush()
    assert tail.size > 0  # the resampler's filter delay is only released at the end
    assert head.size + tail.size == decode_pcm(data, fmt, max_seconds=60).size
