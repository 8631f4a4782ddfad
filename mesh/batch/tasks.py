"""The kinds of batch: what one input becomes as a request, and what its output line holds.

Every line has the response as JSON (field names as in the .proto) under "response", the node
that served it under "node", and for text-like results a short "text" to read without jq."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from lanai.api.language.v1 import language_pb2, language_pb2_grpc
from lanai.api.speech.v1 import speech_pb2, speech_pb2_grpc
from lanai.api.vision.v1 import vision_pb2, vision_pb2_grpc
from lanai.mesh.batch.inputs import Item
from lanai.mesh.batch.runner import BadInput, Call

AUDIO = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".webm", ".mp4", ".mkv")
IMAGES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


@dataclass(frozen=True)
class Kind:
    name: str
    service: str
    help: str
    inputs: str
    """"files" (folders and globs) or "jsonl" (a file of lines)."""
    extensions: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()
    """For jsonl inputs: the keys a line may carry its input under (the first is the default)."""


KINDS = {k.name: k for k in (
    Kind("transcribe", "speech", "transcribe audio files", "files", AUDIO),
    Kind("classify", "vision", "ImageNet labels for image files", "files", IMAGES),
    Kind("faces", "vision", "faces in image files", "files", IMAGES),
    Kind("ocr", "vision", "lines of text in image files", "files", IMAGES),
    Kind("generate", "language", "an answer to every prompt of a JSONL file", "jsonl", fields=("prompt", "messages")),
    Kind("embed", "language", "an embedding of every text of a JSONL file", "jsonl", fields=("text",)),
)}


def as_json(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


async def _read(item: Item) -> bytes:
    assert item.path is not None
    try:
        return await asyncio.to_thread(item.path.read_bytes)
    except OSError as exc:
        raise BadInput(f"cannot read {item.path}: {exc.strerror}") from None


def make_call(kind: Kind, channel: grpc.aio.Channel, args: argparse.Namespace) -> Call:
    """The coroutine that runs one input of this kind over `channel`, with the command's options."""
    timeout = args.timeout
    factory: dict[str, Callable[[grpc.aio.Channel, argparse.Namespace, float], Call]] = {
        "transcribe": _transcribe, "classify": _vision, "faces": _vision, "ocr": _vision,
        "generate": _generate, "embed": _embed}
    return factory[kind.name](channel, args, timeout)


def _transcribe(channel: grpc.aio.Channel, args: argparse.Namespace, timeout: float) -> Call:
    stub = speech_pb2_grpc.SpeechStub(channel)
    options = speech_pb2.TranscriptionOptions(model=args.model, language=args.language, vad_filter=args.vad_filter,
                                              word_timestamps=args.word_timestamps, initial_prompt=args.prompt)

    async def call(item: Item) -> dict[str, Any]:
        audio = speech_pb2.Audio(encoded=await _read(item))
        r = await stub.Transcribe(speech_pb2.TranscribeRequest(audio=audio, options=options), timeout=timeout)
        return {"text": " ".join(s.text.strip() for s in r.segments).strip(), "node": r.served_by.node_id,
                "response": as_json(r)}
    return call


def _vision(channel: grpc.aio.Channel, args: argparse.Namespace, timeout: float) -> Call:
    stub = vision_pb2_grpc.VisionStub(channel)
    options = vision_pb2.ImageOptions(model=args.model, min_confidence=args.min_confidence, max_side=args.max_side)
    task = args.kind

    async def call(item: Item) -> dict[str, Any]:
        image = vision_pb2.Image(encoded=await _read(item))
        r: Any
        if task == "classify":
            r = await stub.Classify(vision_pb2.ClassifyRequest(image=image, options=options, top_k=args.top),
                                    timeout=timeout)
            text = r.labels[0].name if r.labels else ""
        elif task == "faces":
            r = await stub.DetectFaces(vision_pb2.DetectFacesRequest(image=image, options=options), timeout=timeout)
            text = f"{len(r.faces)} face(s)"
        else:
            r = await stub.ReadText(vision_pb2.ReadTextRequest(image=image, options=options), timeout=timeout)
            text = "\n".join(line.text for line in r.lines)
        return {"text": text, "node": r.served_by.node_id, "response": as_json(r)}
    return call


def _generate(channel: grpc.aio.Channel, args: argparse.Namespace, timeout: float) -> Call:
    stub = language_pb2_grpc.LanguageStub(channel)

    async def call(item: Item) -> dict[str, Any]:
        try:
            request = generate_request(item.fields, args)
        except (ValueError, TypeError) as exc:
            raise BadInput(f"a field of this line has the wrong type: {exc}") from None
        r = await stub.Generate(request, timeout=timeout)
        return {"text": r.text, "node": r.served_by.node_id, "response": as_json(r)}
    return call


def generate_request(fields: dict[str, Any], args: argparse.Namespace) -> language_pb2.GenerateRequest:
    """A line's prompt (a chat message from the user, or with "raw": true a text to continue) or
    its messages ([{"role", "content"}]), with the line's "max_tokens", "temperature" and "seed"
    over the command's."""
    sampling = language_pb2.SamplingOptions(max_tokens=int(fields.get("max_tokens", args.max_tokens)))
    temperature = fields.get("temperature", args.temperature)
    if temperature is not None:
        sampling.temperature = float(temperature)
    if fields.get("seed", args.seed) is not None:
        sampling.seed = int(fields.get("seed", args.seed))
    model = str(fields.get("model", args.model))
    if "messages" in fields:
        messages = fields["messages"]
        if not isinstance(messages, list) or not all(isinstance(m, dict) and "content" in m for m in messages):
            raise BadInput('"messages" must be a list of {"role": ..., "content": ...}')
        chat = language_pb2.Chat(messages=[language_pb2.ChatMessage(role=str(m.get("role", "user")),
                                                                    content=str(m["content"])) for m in messages])
        return language_pb2.GenerateRequest(model=model, chat=chat, sampling=sampling)
    prompt = str(fields["prompt"])
    if fields.get("raw", False):
        return language_pb2.GenerateRequest(model=model, prompt=prompt, sampling=sampling)
    messages = [language_pb2.ChatMessage(role="system", content=args.system)] if args.system else []
    messages.append(language_pb2.ChatMessage(role="user", content=prompt))
    return language_pb2.GenerateRequest(model=model, chat=language_pb2.Chat(messages=messages), sampling=sampling)


def _embed(channel: grpc.aio.Channel, args: argparse.Namespace, timeout: float) -> Call:
    stub = language_pb2_grpc.LanguageStub(channel)

    async def call(item: Item) -> dict[str, Any]:
        r = await stub.Embed(language_pb2.EmbedRequest(model=args.model, texts=[str(item.fields["text"])]),
                             timeout=timeout)
        return {"node": r.served_by.node_id, "embedding": list(r.embeddings[0].values),
                "dimensions": r.dimensions, "prompt_tokens": r.prompt_tokens}
    return call
