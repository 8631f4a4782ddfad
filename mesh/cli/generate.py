"""`lanai generate "prompt"` and `lanai chat`: call a node's (or router's) Language service."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from typing import Any

import grpc
from google.protobuf import json_format

from lanai.mesh.cli import connect
from lanai.api.language.v1 import language_pb2, language_pb2_grpc

CLI_TEMPERATURE = 0.3
"""Qwen2.5-Coder-0.5B answered 26 of bench/language_quality.py's 30 questions greedy, 24 at 0.3
and 19 at 0.7 (the API's default): the CLI asks for 0.3, cool but not repetitive."""


def add_parsers(commands: Any) -> None:
    gen = commands.add_parser("generate", help="generate text from a prompt on a node",
                              description="Send a prompt to a node's Language service and print the answer.")
    gen.add_argument("prompt", help="the prompt (use - to read it from standard input)")
    gen.add_argument("--raw", action="store_true",
                     help="continue the text as is instead of asking it as a chat message")
    gen.add_argument("--system", default="", help="system message (chat only)")
    gen.add_argument("--stream", action="store_true", help="print tokens as they are generated")
    gen.add_argument("--json", action="store_true", help="print the response as JSON")
    _common(gen)
    gen.set_defaults(run=run_generate)
    chat = commands.add_parser("chat", help="chat with a model on a node (interactive, streamed)",
                               description="An interactive conversation: each answer streams as it is generated. "
                                           "Ctrl-D or an empty line ends it.")
    chat.add_argument("--system", default="", help="system message")
    _common(chat)
    chat.set_defaults(run=run_chat)


def _common(p: argparse.ArgumentParser) -> None:
    connect.add_flags(p)
    p.add_argument("--model", default="", help="model name (default: the node's default)")
    p.add_argument("--max-tokens", type=int, default=0, help="most tokens to generate (default: the node's)")
    p.add_argument("--temperature", type=float, default=CLI_TEMPERATURE,
                   help=f"0 is greedy; 0 to 2 (default {CLI_TEMPERATURE}: small models answer facts better cool; "
                        "docs/language.md)")
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--repetition-penalty", type=float, default=None)
    p.add_argument("--seed", type=int, default=None, help="same seed and options give the same text")
    p.add_argument("--stop", action="append", default=[], help="stop before this string (repeatable)")
    p.add_argument("--timeout", type=float, default=300.0, help="deadline in seconds (default 300)")


def _sampling(args: argparse.Namespace) -> language_pb2.SamplingOptions:
    if args.max_tokens < 0:
        raise ValueError("--max-tokens must be positive (0 for the node's default)")
    s = language_pb2.SamplingOptions(max_tokens=args.max_tokens, top_k=max(0, args.top_k), stop=args.stop)
    for name in ("temperature", "top_p", "repetition_penalty", "seed"):
        if getattr(args, name) is not None:
            setattr(s, name, getattr(args, name))
    return s


def _chat(system: str, turns: list[tuple[str, str]]) -> language_pb2.Chat:
    messages = [language_pb2.ChatMessage(role="system", content=system)] if system else []
    messages += [language_pb2.ChatMessage(role=role, content=text) for role, text in turns]
    return language_pb2.Chat(messages=messages)


def run_generate(args: argparse.Namespace) -> int:
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    try:
        sampling = _sampling(args)
    except ValueError as exc:
        print(f"lanai generate: {exc}", file=sys.stderr)
        return 2
    request = (language_pb2.GenerateRequest(model=args.model, prompt=prompt, sampling=sampling) if args.raw else
               language_pb2.GenerateRequest(model=args.model, chat=_chat(args.system, [("user", prompt)]),
                                            sampling=sampling))
    with connect.channel(args) as channel:
        stub = language_pb2_grpc.LanguageStub(channel)
        try:
            if args.stream:
                last = _print_stream(stub.GenerateStream(request, timeout=args.timeout))
                _summary(last.usage, last.finish_reason)
            else:
                response = stub.Generate(request, timeout=args.timeout)
                if args.json:
                    print(json_format.MessageToJson(response))
                    return 0
                print(response.text)
                _summary(response.usage, response.finish_reason, response.served_by)
        except grpc.RpcError as exc:
            print(f"lanai generate: {exc.code().name}: {exc.details()}{connect.hint(exc)}", file=sys.stderr)
            return 1
    return 0


def run_chat(args: argparse.Namespace) -> int:
    try:
        sampling = _sampling(args)
    except ValueError as exc:
        print(f"lanai chat: {exc}", file=sys.stderr)
        return 2
    turns: list[tuple[str, str]] = []
    with connect.channel(args) as channel:
        stub = language_pb2_grpc.LanguageStub(channel)
        while True:
            try:
                line = input("you> ").strip()
            except EOFError:
                print()
                return 0
            if not line:
                return 0
            turns.append(("user", line))
            request = language_pb2.GenerateRequest(model=args.model, chat=_chat(args.system, turns), sampling=sampling)
            sys.stdout.write("model> ")
            try:
                last = _print_stream(stub.GenerateStream(request, timeout=args.timeout))
            except grpc.RpcError as exc:
                print(f"\nlanai chat: {exc.code().name}: {exc.details()}{connect.hint(exc)}", file=sys.stderr)
                turns.pop()
                continue
            except KeyboardInterrupt:  # stop this answer, keep the conversation
                print("\n(interrupted)")
                turns.pop()
                continue
            turns.append(("assistant", last.text))


class _Last:
    def __init__(self) -> None:
        self.text = ""
        self.usage = language_pb2.Usage()
        self.finish_reason: int = language_pb2.FINISH_REASON_UNSPECIFIED


def _print_stream(responses: Iterator[language_pb2.GenerateStreamResponse]) -> _Last:
    last = _Last()
    for r in responses:
        sys.stdout.write(r.delta)
        sys.stdout.flush()
        last.text += r.delta
        if r.HasField("usage"):
            last.usage, last.finish_reason = r.usage, r.finish_reason
    sys.stdout.write("\n")
    return last


def _summary(usage: language_pb2.Usage, finish: int, served: Any = None) -> None:
    where = f" on {served.node_id} with {served.model}" if served is not None else ""
    print(f"({usage.prompt_tokens} prompt + {usage.completion_tokens} generated tokens{where}; first token after "
          f"{usage.time_to_first_token_ms:.0f} ms, {usage.tokens_per_second:.1f} tokens/s; finished: "
          f"{language_pb2.FinishReason.Name(finish).removeprefix('FINISH_REASON_').lower()})",
          file=sys.stderr)
