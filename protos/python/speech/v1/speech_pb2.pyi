from lanai.api.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PcmEncoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PCM_ENCODING_UNSPECIFIED: _ClassVar[PcmEncoding]
    PCM_ENCODING_INTEGER: _ClassVar[PcmEncoding]
    PCM_ENCODING_FLOAT: _ClassVar[PcmEncoding]

class Task(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_UNSPECIFIED: _ClassVar[Task]
    TASK_TRANSCRIBE: _ClassVar[Task]
    TASK_TRANSLATE: _ClassVar[Task]
PCM_ENCODING_UNSPECIFIED: PcmEncoding
PCM_ENCODING_INTEGER: PcmEncoding
PCM_ENCODING_FLOAT: PcmEncoding
TASK_UNSPECIFIED: Task
TASK_TRANSCRIBE: Task
TASK_TRANSLATE: Task

class PcmFormat(_message.Message):
    __slots__ = ("sample_rate_hz", "sample_width_bytes", "channels", "encoding")
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_WIDTH_BYTES_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    sample_rate_hz: int
    sample_width_bytes: int
    channels: int
    encoding: PcmEncoding
    def __init__(self, sample_rate_hz: _Optional[int] = ..., sample_width_bytes: _Optional[int] = ..., channels: _Optional[int] = ..., encoding: _Optional[_Union[PcmEncoding, str]] = ...) -> None: ...

class RawPcm(_message.Message):
    __slots__ = ("format", "data")
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    format: PcmFormat
    data: bytes
    def __init__(self, format: _Optional[_Union[PcmFormat, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class Audio(_message.Message):
    __slots__ = ("encoded", "pcm")
    ENCODED_FIELD_NUMBER: _ClassVar[int]
    PCM_FIELD_NUMBER: _ClassVar[int]
    encoded: bytes
    pcm: RawPcm
    def __init__(self, encoded: _Optional[bytes] = ..., pcm: _Optional[_Union[RawPcm, _Mapping]] = ...) -> None: ...

class TranscriptionOptions(_message.Message):
    __slots__ = ("model", "language", "task", "beam_size", "word_timestamps", "vad_filter", "initial_prompt")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    BEAM_SIZE_FIELD_NUMBER: _ClassVar[int]
    WORD_TIMESTAMPS_FIELD_NUMBER: _ClassVar[int]
    VAD_FILTER_FIELD_NUMBER: _ClassVar[int]
    INITIAL_PROMPT_FIELD_NUMBER: _ClassVar[int]
    model: str
    language: str
    task: Task
    beam_size: int
    word_timestamps: bool
    vad_filter: bool
    initial_prompt: str
    def __init__(self, model: _Optional[str] = ..., language: _Optional[str] = ..., task: _Optional[_Union[Task, str]] = ..., beam_size: _Optional[int] = ..., word_timestamps: _Optional[bool] = ..., vad_filter: _Optional[bool] = ..., initial_prompt: _Optional[str] = ...) -> None: ...

class TranscribeRequest(_message.Message):
    __slots__ = ("audio", "options")
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    audio: Audio
    options: TranscriptionOptions
    def __init__(self, audio: _Optional[_Union[Audio, _Mapping]] = ..., options: _Optional[_Union[TranscriptionOptions, _Mapping]] = ...) -> None: ...

class Word(_message.Message):
    __slots__ = ("start_s", "end_s", "text", "probability")
    START_S_FIELD_NUMBER: _ClassVar[int]
    END_S_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    start_s: float
    end_s: float
    text: str
    probability: float
    def __init__(self, start_s: _Optional[float] = ..., end_s: _Optional[float] = ..., text: _Optional[str] = ..., probability: _Optional[float] = ...) -> None: ...

class Segment(_message.Message):
    __slots__ = ("id", "start_s", "end_s", "text", "words", "avg_logprob", "no_speech_prob")
    ID_FIELD_NUMBER: _ClassVar[int]
    START_S_FIELD_NUMBER: _ClassVar[int]
    END_S_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    WORDS_FIELD_NUMBER: _ClassVar[int]
    AVG_LOGPROB_FIELD_NUMBER: _ClassVar[int]
    NO_SPEECH_PROB_FIELD_NUMBER: _ClassVar[int]
    id: int
    start_s: float
    end_s: float
    text: str
    words: _containers.RepeatedCompositeFieldContainer[Word]
    avg_logprob: float
    no_speech_prob: float
    def __init__(self, id: _Optional[int] = ..., start_s: _Optional[float] = ..., end_s: _Optional[float] = ..., text: _Optional[str] = ..., words: _Optional[_Iterable[_Union[Word, _Mapping]]] = ..., avg_logprob: _Optional[float] = ..., no_speech_prob: _Optional[float] = ...) -> None: ...

class TranscribeResponse(_message.Message):
    __slots__ = ("text", "segments", "language", "language_probability", "audio_duration_s", "served_by")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    AUDIO_DURATION_S_FIELD_NUMBER: _ClassVar[int]
    SERVED_BY_FIELD_NUMBER: _ClassVar[int]
    text: str
    segments: _containers.RepeatedCompositeFieldContainer[Segment]
    language: str
    language_probability: float
    audio_duration_s: float
    served_by: _common_pb2.ServedBy
    def __init__(self, text: _Optional[str] = ..., segments: _Optional[_Iterable[_Union[Segment, _Mapping]]] = ..., language: _Optional[str] = ..., language_probability: _Optional[float] = ..., audio_duration_s: _Optional[float] = ..., served_by: _Optional[_Union[_common_pb2.ServedBy, _Mapping]] = ...) -> None: ...

class StreamConfig(_message.Message):
    __slots__ = ("format", "options", "disable_partials", "partial_interval_ms", "end_of_utterance_silence_ms")
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    DISABLE_PARTIALS_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    END_OF_UTTERANCE_SILENCE_MS_FIELD_NUMBER: _ClassVar[int]
    format: PcmFormat
    options: TranscriptionOptions
    disable_partials: bool
    partial_interval_ms: int
    end_of_utterance_silence_ms: int
    def __init__(self, format: _Optional[_Union[PcmFormat, _Mapping]] = ..., options: _Optional[_Union[TranscriptionOptions, _Mapping]] = ..., disable_partials: _Optional[bool] = ..., partial_interval_ms: _Optional[int] = ..., end_of_utterance_silence_ms: _Optional[int] = ...) -> None: ...

class StreamTranscribeRequest(_message.Message):
    __slots__ = ("config", "audio")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    config: StreamConfig
    audio: bytes
    def __init__(self, config: _Optional[_Union[StreamConfig, _Mapping]] = ..., audio: _Optional[bytes] = ...) -> None: ...

class StreamTranscribeResponse(_message.Message):
    __slots__ = ("utterance_id", "is_final", "end_of_utterance", "text", "segments", "start_s", "end_s", "language", "language_probability", "served_by")
    UTTERANCE_ID_FIELD_NUMBER: _ClassVar[int]
    IS_FINAL_FIELD_NUMBER: _ClassVar[int]
    END_OF_UTTERANCE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    START_S_FIELD_NUMBER: _ClassVar[int]
    END_S_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    SERVED_BY_FIELD_NUMBER: _ClassVar[int]
    utterance_id: int
    is_final: bool
    end_of_utterance: bool
    text: str
    segments: _containers.RepeatedCompositeFieldContainer[Segment]
    start_s: float
    end_s: float
    language: str
    language_probability: float
    served_by: _common_pb2.ServedBy
    def __init__(self, utterance_id: _Optional[int] = ..., is_final: _Optional[bool] = ..., end_of_utterance: _Optional[bool] = ..., text: _Optional[str] = ..., segments: _Optional[_Iterable[_Union[Segment, _Mapping]]] = ..., start_s: _Optional[float] = ..., end_s: _Optional[float] = ..., language: _Optional[str] = ..., language_probability: _Optional[float] = ..., served_by: _Optional[_Union[_common_pb2.ServedBy, _Mapping]] = ...) -> None: ...
