"""A spoken question in, a spoken answer out, over lanai's public gRPC API only: what
`lanai assist --input question.wav --output answer.wav` does, without barge-in or a microphone.

    python docs/examples/voice_loop.py question.wav answer.wav --to localhost:50051

Each of the three calls goes to the address given; through a router (any node of a mesh, or
`lanai up`) each is placed on its own, so the ears, the brain and the voice may be three
machines. The question must be 16-bit mono PCM WAV (any rate; `sox in.mp3 -b 16 -c 1 q.wav`).
Against a secure mesh, use grpc.secure_channel with the mesh CA and an API key instead.
"""

from __future__ import annotations

import argparse
import re
import wave

import grpc

from lanai.api.language.v1 import language_pb2, language_pb2_grpc
from lanai.api.speech.v1 import speech_pb2, speech_pb2_grpc
from lanai.api.voice.v1 import voice_pb2, voice_pb2_grpc


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("question")
    parser.add_argument("answer")
    parser.add_argument("--to", default="localhost:50051")
    args = parser.parse_args()
    with wave.open(args.question) as clip:
        rate, pcm = clip.getframerate(), clip.readframes(clip.getnframes())
    with grpc.insecure_channel(args.to) as channel:
        # 1. Ears: stream the audio; keep each final utterance's text.
        def audio():  # type: ignore[no-untyped-def]
            yield speech_pb2.StreamTranscribeRequest(config=speech_pb2.StreamConfig(
                format=speech_pb2.PcmFormat(sample_rate_hz=rate, sample_width_bytes=2, channels=1)))
            for at in range(0, len(pcm), 3200):
                yield speech_pb2.StreamTranscribeRequest(audio=pcm[at:at + 3200])
        heard = " ".join(r.text.strip() for r in speech_pb2_grpc.SpeechStub(channel).StreamTranscribe(audio())
                         if r.is_final)
        print("you:", heard)
        # 2. Brain: the answer's text, token by token; 3. Voice: each sentence as soon as it is complete.
        chat = language_pb2.Chat(messages=[
            language_pb2.ChatMessage(role="system", content="Answer in one short sentence."),
            language_pb2.ChatMessage(role="user", content=heard)])
        voice = voice_pb2_grpc.VoiceStub(channel)
        with wave.open(args.answer, "wb") as out:
            out.setnchannels(1), out.setsampwidth(2), out.setframerate(22050)
            pending = ""
            for chunk in language_pb2_grpc.LanguageStub(channel).GenerateStream(language_pb2.GenerateRequest(
                    chat=chat, sampling=language_pb2.SamplingOptions(max_tokens=64, temperature=0.3))):
                pending += chunk.delta
                *done, pending = re.split(r"(?<=[.!?])\s+", pending)
                for sentence in done + ([pending] if chunk.finish_reason and pending.strip() else []):
                    print("assistant:", sentence)
                    for piece in voice.SynthesizeStream(voice_pb2.SynthesizeRequest(text=sentence)):
                        if piece.format.sample_rate:
                            out.setframerate(piece.format.sample_rate)
                        out.writeframes(piece.audio)


if __name__ == "__main__":
    main()
