"""Protobuf <-> speech domain values. The only speech module besides the servicer that sees protobuf."""

from __future__ import annotations


from lanai.api.common.v1 import common_pb2
from lanai.api.speech.v1 import speech_pb2
from lanai.services.core.errors import InvalidInput
from lanai.services.speech.audio import PcmFormat
from lanai.services.speech.streaming import StreamResult
from lanai.services.speech.types import Segment, TranscribeOptions, Transcript
from lanai.services.speech.vad import SegmenterConfig

_TASKS = {speech_pb2.TASK_UNSPECIFIED: False, speech_pb2.TASK_TRANSCRIBE: False, speech_pb2.TASK_TRANSLATE: True}
_ENCODINGS = {speech_pb2.PCM_ENCODING_UNSPECIFIED: False, speech_pb2.PCM_ENCODING_INTEGER: False,
              speech_pb2.PCM_ENCODING_FLOAT: True}


def options(pb: speech_pb2.TranscriptionOptions) -> TranscribeOptions:
    if pb.task not in _TASKS:
        raise InvalidInput(f"task {pb.task} is unknown; use TASK_TRANSCRIBE or TASK_TRANSLATE")
    return TranscribeOptions(model=pb.model, language=pb.language, translate=_TASKS[pb.task],
                             beam_size=pb.beam_size, word_timestamps=pb.word_timestamps,
                             vad_filter=pb.vad_filter, initial_prompt=pb.initial_prompt)


def pcm_format(pb: speech_pb2.PcmFormat) -> PcmFormat:
    if not pb.sample_rate_hz:
        raise InvalidInput("PCM format has no sample_rate_hz: declare the rate of the samples (e.g. 16000)")
    if pb.encoding not in _ENCODINGS:
        raise InvalidInput(f"PCM encoding {pb.encoding} is unknown; use PCM_ENCODING_INTEGER or PCM_ENCODING_FLOAT")
    fmt = PcmFormat(pb.sample_rate_hz, pb.sample_width_bytes or 2, pb.channels or 1, _ENCODINGS[pb.encoding])
    fmt.validate()
    return fmt


def segmenter(pb: speech_pb2.StreamConfig) -> SegmenterConfig:
    silence = pb.end_of_utterance_silence_ms or SegmenterConfig.silence_ms
    if not 100 <= silence <= 5000:
        raise InvalidInput(f"end_of_utterance_silence_ms {silence} is out of range; use 100 to 5000 (0 for 500)")
    return SegmenterConfig(silence_ms=silence)


def partial_interval_s(pb: speech_pb2.StreamConfig) -> float:
    interval = pb.partial_interval_ms or 500
    if not 100 <= interval <= 10000:
        raise InvalidInput(f"partial_interval_ms {interval} is out of range; use 100 to 10000 (0 for 500)")
    return interval / 1000


def segment(seg: Segment) -> speech_pb2.Segment:
    return speech_pb2.Segment(
        id=seg.id, start_s=seg.start_s, end_s=seg.end_s, text=seg.text, avg_logprob=seg.avg_logprob,
        no_speech_prob=seg.no_speech_prob,
        words=[speech_pb2.Word(start_s=w.start_s, end_s=w.end_s, text=w.text, probability=w.probability)
               for w in seg.words])


def transcribe_response(t: Transcript, served: common_pb2.ServedBy) -> speech_pb2.TranscribeResponse:
    return speech_pb2.TranscribeResponse(
        text=t.text, segments=[segment(s) for s in t.segments], language=t.language,
        language_probability=t.language_probability, audio_duration_s=t.duration_s, served_by=served)


def stream_response(r: StreamResult, served: common_pb2.ServedBy) -> speech_pb2.StreamTranscribeResponse:
    return speech_pb2.StreamTranscribeResponse(
        utterance_id=r.utterance_id, is_final=r.is_final, end_of_utterance=r.end_of_utterance, text=r.text,
        segments=[segment(s) for s in r.segments], start_s=r.start_s, end_s=r.end_s, language=r.language,
        language_probability=r.language_probability, served_by=served)
