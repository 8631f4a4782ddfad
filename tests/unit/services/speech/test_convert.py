"""lanai.services.speech.convert: protobuf <-> speech domain values."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from lanai.api.common.v1 import common_pb2
from lanai.api.speech.v1 import speech_pb2
from lanai.services.core.admission import Timing
from lanai.services.core.errors import InvalidInput
from lanai.services.speech import convert
from lanai.services.speech.audio import PcmFormat
from lanai.services.speech.streaming import StreamResult
from lanai.services.speech.types import Segment, TranscribeOptions, Transcript, Word
from lanai.services.speech.vad import SegmenterConfig
from lanai.services.core.wire import served_by

# --- options ----------------------------------------------------------------------------------------------------


def test_options_copy_every_field() -> None:
    pb = speech_pb2.TranscriptionOptions(model="tiny.en", language="de", task=speech_pb2.TASK_TRANSLATE, beam_size=3,
                                         word_timestamps=True, vad_filter=True, initial_prompt="Lanai, gRPC")
    assert convert.options(pb) == TranscribeOptions(model="tiny.en", language="de", translate=True, beam_size=3,
                                                    word_timestamps=True, vad_filter=True,
                                                    initial_prompt="Lanai, gRPC")


def test_empty_options_are_the_defaults() -> None:
    assert convert.options(speech_pb2.TranscriptionOptions()) == TranscribeOptions()


@pytest.mark.parametrize(("task", "translate"), [
    (speech_pb2.TASK_UNSPECIFIED, False), (speech_pb2.TASK_TRANSCRIBE, False), (speech_pb2.TASK_TRANSLATE, True)])
def test_task(task: int, translate: bool) -> None:
    assert convert.options(speech_pb2.TranscriptionOptions(task=task)).translate is translate


@pytest.mark.parametrize("task", [3, 99, -1])
def test_unknown_task_is_invalid(task: int) -> None:
    pb = speech_pb2.TranscriptionOptions()
    pb.task = task  # proto3 enums are open: a newer client can send numbers this server does not know
    with pytest.raises(InvalidInput, match="task"):
        convert.options(pb)


# --- pcm_format -------------------------------------------------------------------------------------------------


def test_pcm_format_defaults_width_and_channels() -> None:
    assert convert.pcm_format(speech_pb2.PcmFormat(sample_rate_hz=16000)) == PcmFormat(16000, 2, 1, False)


@pytest.mark.parametrize(("pb", "expected"), [
    (speech_pb2.PcmFormat(sample_rate_hz=8000, sample_width_bytes=1, channels=2,
                          encoding=speech_pb2.PCM_ENCODING_INTEGER), PcmFormat(8000, 1, 2, False)),
    (speech_pb2.PcmFormat(sample_rate_hz=48000, sample_width_bytes=4, channels=8,
                          encoding=speech_pb2.PCM_ENCODING_FLOAT), PcmFormat(48000, 4, 8, True)),
    (speech_pb2.PcmFormat(sample_rate_hz=44100, sample_width_bytes=4), PcmFormat(44100, 4, 1, False)),
])
def test_pcm_format(pb: speech_pb2.PcmFormat, expected: PcmFormat) -> None:
    assert convert.pcm_format(pb) == expected


@pytest.mark.parametrize(("fields", "match"), [
    ({}, "sample_rate_hz"),
    ({"sample_rate_hz": 0, "sample_width_bytes": 2}, "sample_rate_hz"),
    ({"sample_rate_hz": 7999}, "sample_rate_hz"),
    ({"sample_rate_hz": 192001}, "sample_rate_hz"),
    ({"sample_rate_hz": 16000, "sample_width_bytes": 3}, "sample_width_bytes"),
    ({"sample_rate_hz": 16000, "sample_width_bytes": 8}, "sample_width_bytes"),
    ({"sample_rate_hz": 16000, "channels": 9}, "channels"),
    ({"sample_rate_hz": 16000, "encoding": speech_pb2.PCM_ENCODING_FLOAT}, "float"),  # width 0 means 2
    ({"sample_rate_hz": 16000, "sample_width_bytes": 2, "encoding": speech_pb2.PCM_ENCODING_FLOAT}, "float"),
])
def test_bad_pcm_format_is_invalid(fields: dict[str, int], match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        convert.pcm_format(speech_pb2.PcmFormat(**fields))


@pytest.mark.parametrize("encoding", [3, 42])
def test_unknown_pcm_encoding_is_invalid(encoding: int) -> None:
    pb = speech_pb2.PcmFormat(sample_rate_hz=16000)
    pb.encoding = encoding
    with pytest.raises(InvalidInput, match="encoding"):
        convert.pcm_format(pb)


# --- stream config ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("silence_ms", "expected"), [(0, 500), (100, 100), (750, 750), (5000, 5000)])
def test_segmenter(silence_ms: int, expected: int) -> None:
    config = convert.segmenter(speech_pb2.StreamConfig(end_of_utterance_silence_ms=silence_ms))
    assert config == SegmenterConfig(silence_ms=expected)


@pytest.mark.parametrize("silence_ms", [1, 99, 5001, 2 ** 32 - 1])
def test_segmenter_out_of_range_is_invalid(silence_ms: int) -> None:
    with pytest.raises(InvalidInput, match="end_of_utterance_silence_ms"):
        convert.segmenter(speech_pb2.StreamConfig(end_of_utterance_silence_ms=silence_ms))


@pytest.mark.parametrize(("interval_ms", "seconds"), [(0, 0.5), (100, 0.1), (1250, 1.25), (10000, 10.0)])
def test_partial_interval(interval_ms: int, seconds: float) -> None:
    assert convert.partial_interval_s(speech_pb2.StreamConfig(partial_interval_ms=interval_ms)) == seconds


@pytest.mark.parametrize("interval_ms", [1, 99, 10001, 2 ** 32 - 1])
def test_partial_interval_out_of_range_is_invalid(interval_ms: int) -> None:
    with pytest.raises(InvalidInput, match="partial_interval_ms"):
        convert.partial_interval_s(speech_pb2.StreamConfig(partial_interval_ms=interval_ms))


# --- responses --------------------------------------------------------------------------------------------------

# Values exactly representable as float32, so the wire's floats compare equal.
SEGMENTS = (
    Segment(0, 0.0, 1.5, " Hello", (Word(0.0, 0.5, " Hel", 0.75), Word(0.5, 1.5, "lo", 0.5)),
            avg_logprob=-0.25, no_speech_prob=0.125),
    Segment(1, 1.5, 3.25, " world. ", (), avg_logprob=-0.5, no_speech_prob=0.0625),
)


def _served() -> common_pb2.ServedBy:
    return served_by("node-7", "tiny.en", Timing(queue_s=0.25, compute_s=1.5))


def _roundtrip(message: object) -> object:
    parsed = type(message)()  # type: ignore[operator]
    parsed.ParseFromString(message.SerializeToString())  # type: ignore[attr-defined]
    return parsed


def _segments_back(pbs: object) -> tuple[Segment, ...]:
    return tuple(Segment(p.id, p.start_s, p.end_s, p.text,
                         tuple(Word(w.start_s, w.end_s, w.text, w.probability) for w in p.words),
                         p.avg_logprob, p.no_speech_prob) for p in pbs)  # type: ignore[attr-defined]


def test_served_by_is_in_milliseconds() -> None:
    assert _served() == common_pb2.ServedBy(node_id="node-7", model="tiny.en", queue_ms=250.0, compute_ms=1500.0)


def test_transcribe_response_round_trips() -> None:
    transcript = Transcript(SEGMENTS, "en", 0.875, 3.5)
    response = _roundtrip(convert.transcribe_response(transcript, _served()))
    assert isinstance(response, speech_pb2.TranscribeResponse)
    assert response.text == "Hello world."
    assert _segments_back(response.segments) == SEGMENTS
    assert (response.language, response.language_probability, response.audio_duration_s) == ("en", 0.875, 3.5)
    assert response.served_by == _served()


def test_transcribe_response_without_segments() -> None:
    response = convert.transcribe_response(Transcript((), "", 0.0, 0.0), _served())
    assert response.text == "" and len(response.segments) == 0
    assert response.HasField("served_by")


@pytest.mark.parametrize(("is_final", "end_of_utterance"), [(True, True), (True, False), (False, False)])
def test_stream_response_round_trips(is_final: bool, end_of_utterance: bool) -> None:
    result = StreamResult(utterance_id=3, is_final=is_final, end_of_utterance=end_of_utterance, text="Hello world.",
                          segments=SEGMENTS if is_final else (), start_s=12.5, end_s=15.75, language="en",
                          language_probability=0.875, timing=SimpleNamespace(queue_s=0.0, compute_s=0.0))
    response = _roundtrip(convert.stream_response(result, _served()))
    assert isinstance(response, speech_pb2.StreamTranscribeResponse)
    back = StreamResult(response.utterance_id, response.is_final, response.end_of_utterance, response.text,
                        _segments_back(response.segments), response.start_s, response.end_s, response.language,
                        response.language_probability, result.timing)
    assert back == result
    assert response.served_by == _served()
