"""A transcript in the shapes OpenAI's transcription endpoint answers with: json, text,
verbose_json (segments, and words when asked), srt and vtt."""

from __future__ import annotations

from typing import Any

from lanai.api.speech.v1 import speech_pb2

FORMATS = ("json", "text", "verbose_json", "srt", "vtt")


def verbose(reply: speech_pb2.TranscribeResponse, task: str, words: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "task": task, "language": reply.language, "duration": round(reply.audio_duration_s, 3), "text": reply.text,
        "segments": [{"id": s.id, "seek": 0, "start": round(s.start_s, 3), "end": round(s.end_s, 3), "text": s.text,
                      "tokens": [], "temperature": 0.0, "avg_logprob": round(s.avg_logprob, 4),
                      "compression_ratio": 0.0, "no_speech_prob": round(s.no_speech_prob, 4)}
                     for s in reply.segments],
        "usage": {"type": "duration", "seconds": round(reply.audio_duration_s, 3)},
    }
    if words:
        body["words"] = [{"word": w.text.strip(), "start": round(w.start_s, 3), "end": round(w.end_s, 3)}
                         for s in reply.segments for w in s.words]
    return body


def srt(reply: speech_pb2.TranscribeResponse) -> str:
    blocks = [f"{i}\n{_stamp(s.start_s, ',')} --> {_stamp(s.end_s, ',')}\n{s.text.strip()}\n"
              for i, s in enumerate(reply.segments, start=1)]
    return "\n".join(blocks)


def vtt(reply: speech_pb2.TranscribeResponse) -> str:
    blocks = [f"{_stamp(s.start_s, '.')} --> {_stamp(s.end_s, '.')}\n{s.text.strip()}\n" for s in reply.segments]
    return "WEBVTT\n\n" + "\n".join(blocks)


def _stamp(seconds: float, decimal: str) -> str:
    """01:02:03,456 (srt) or 01:02:03.456 (vtt)."""
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}{decimal}{rest % 1000:03d}"
