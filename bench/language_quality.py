"""Which chat model should be the default? 30 short factual and arithmetic questions with known
answers, asked of each (model, engine) pair on a real `lanai node` subprocess (one at a time,
alone on the machine with this client), as one user message each, greedy unless --temperature
says otherwise, at most 48 tokens. An answer is right when it contains an accepted answer
(case-insensitive, whole words: "4" does not match "14"). Reports per pair: answers right of
30, the median decode rate the node reported (`usage.tokens_per_second`) and the median time
to first token it reported; then every question with every pair's answer.

Run:  LANAI_HOME=/path/to/home python bench/language_quality.py
          [--pairs smollm2-135m:llama.cpp,qwen2.5-coder-0.5b:llama.cpp,smollm2-135m:mlx]
          [--temperature 0.7 --seed 1] [--quick] [--out bench/results/language_quality.json]
A pair's model is an embedded name or a .gguf file (llama.cpp); split at the last ':'.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import grpc

import benchlib  # noqa: E402 - bench/ sibling module
from benchlib import emit, node_process, short, table  # noqa: E402
from lanai.api.language.v1 import language_pb2, language_pb2_grpc
from lanai.services import models as model_cache

MAX_TOKENS = 48
DEFAULT_PAIRS = "smollm2-135m:llama.cpp,qwen2.5-coder-0.5b:llama.cpp,smollm2-135m:mlx"
QUESTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("What is the capital of France?", ("Paris",)),
    ("What is the capital of Japan?", ("Tokyo",)),
    ("What is the capital of Italy?", ("Rome",)),
    ("What is the capital of Spain?", ("Madrid",)),
    ("What is the capital of Germany?", ("Berlin",)),
    ("What is the capital of Canada?", ("Ottawa",)),
    ("What is the capital of Australia?", ("Canberra",)),
    ("What is the capital of Egypt?", ("Cairo",)),
    ("What is 2 + 2?", ("4", "four")),
    ("What is 7 times 8?", ("56", "fifty-six", "fifty six")),
    ("What is 15 minus 6?", ("9", "nine")),
    ("What is 100 divided by 4?", ("25", "twenty-five", "twenty five")),
    ("What is 12 plus 30?", ("42", "forty-two", "forty two")),
    ("What is the square root of 81?", ("9", "nine")),
    ("How many days are in a week?", ("7", "seven")),
    ("How many hours are in a day?", ("24", "twenty-four", "twenty four")),
    ("How many legs does a spider have?", ("8", "eight")),
    ("How many continents are there on Earth?", ("7", "seven")),
    ("What planet is known as the Red Planet?", ("Mars",)),
    ("What is the largest planet in our solar system?", ("Jupiter",)),
    ("What is the chemical symbol of gold?", ("Au",)),
    ("What is the chemical formula of water?", ("H2O", "H₂O")),
    ("At what temperature in degrees Celsius does water freeze?", ("0", "zero")),
    ("Who wrote Romeo and Juliet?", ("Shakespeare",)),
    ("Who painted the Mona Lisa?", ("Leonardo", "da Vinci")),
    ("What is the largest ocean on Earth?", ("Pacific",)),
    ("What is the longest river in South America?", ("Amazon",)),
    ("What gas do plants absorb from the air to make food?", ("carbon dioxide", "CO2", "CO₂")),
    ("What language is mainly spoken in Brazil?", ("Portuguese",)),
    ("What is the opposite of hot?", ("cold",)),
)


def right(answer: str, accepted: Sequence[str]) -> bool:
    return any(re.search(rf"(?<![\w.]){re.escape(a)}(?![\w])", answer, re.IGNORECASE) for a in accepted)


@dataclass
class Answer:
    question: str
    text: str
    right: bool
    completion_tokens: int
    tokens_per_second: float
    time_to_first_token_ms: float


@dataclass
class PairResult:
    model: str
    engine: str
    answers: list[Answer] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.model} ({self.engine})"

    @property
    def score(self) -> int:
        return sum(a.right for a in self.answers)


def pairs_from(text: str) -> list[tuple[str, str]]:
    pairs = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        model, sep, engine = item.rpartition(":")
        if not sep or engine not in ("llama.cpp", "mlx"):
            raise ValueError(f"--pairs item {item!r} is not MODEL:ENGINE with ENGINE llama.cpp or mlx")
        pairs.append((model, engine))
    return pairs


async def ask_all(home: Path, model: str, engine: str, questions: Sequence[tuple[str, tuple[str, ...]]],
                  sampling: language_pb2.SamplingOptions, log: Path) -> PairResult:
    args = ["--services", "language", "--host", "127.0.0.1", "--port", "0", "--metrics-port", "-1",
            "--home", str(home), "--node-id", "quality", "--language-models", model, "--language-engine", engine,
            "--language-embedding-models", "", "--grace", "1", "--discovery", "none", "--no-router"]
    label = Path(model).stem if model.endswith(".gguf") else model
    result = PairResult(label, engine)
    async with node_process(args, log, start_timeout_s=600) as (port, _), \
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = language_pb2_grpc.LanguageStub(channel)
        for question, accepted in questions:
            chat = language_pb2.Chat(messages=[language_pb2.ChatMessage(role="user", content=question)])
            reply = await stub.Generate(language_pb2.GenerateRequest(chat=chat, sampling=sampling), timeout=600)
            result.answers.append(Answer(question, reply.text.strip(), right(reply.text, accepted),
                                         reply.usage.completion_tokens, reply.usage.tokens_per_second,
                                         reply.usage.time_to_first_token_ms))
    return result


async def run(args: argparse.Namespace) -> list[PairResult]:
    home = model_cache.default_home()
    questions = QUESTIONS[:5] if args.quick else QUESTIONS
    sampling = language_pb2.SamplingOptions(temperature=args.temperature, max_tokens=MAX_TOKENS)
    if args.seed is not None:
        sampling.seed = args.seed
    results = []
    with tempfile.TemporaryDirectory(prefix="lanai-bench-quality-") as tmp:
        for i, (model, engine) in enumerate(pairs_from(args.pairs)):
            emit(f"asking {len(questions)} questions of {model} on {engine} ...")
            results.append(await ask_all(home, model, engine, questions, sampling, Path(tmp) / f"node{i}.log"))
    return results


def report(results: Sequence[PairResult], args: argparse.Namespace, count: int) -> None:
    emit(f"\n## Answers right of {count} (temperature {args.temperature:g}"
         f"{'' if args.seed is None else f', seed {args.seed}'}, at most {MAX_TOKENS} tokens)\n")
    emit(table(["model (engine)", "right", "decode tok/s (node, median)", "TTFT ms (node, median)",
                "tokens per answer (median)"],
               [[r.label, f"{r.score} / {len(r.answers)}",
                 f"{statistics.median(a.tokens_per_second for a in r.answers):.1f}",
                 f"{statistics.median(a.time_to_first_token_ms for a in r.answers):.0f}",
                 f"{statistics.median(a.completion_tokens for a in r.answers):.0f}"] for r in results]))
    emit("\n## Every answer\n")
    rows = []
    for i, (question, accepted) in enumerate(QUESTIONS[:count]):
        rows.append([short(question, 48), "/".join(accepted[:2]),
                     *(("✓ " if r.answers[i].right else "✗ ") + short(r.answers[i].text.replace("\n", " "), 60)
                       for r in results)])
    emit(table(["question", "accepted", *(r.label for r in results)], rows))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--pairs", default=DEFAULT_PAIRS, help=f"MODEL:ENGINE, comma-separated (default {DEFAULT_PAIRS})")
    p.add_argument("--temperature", type=float, default=0.0, help="sampling temperature (default 0: greedy)")
    p.add_argument("--seed", type=int, default=None, help="seed for a temperature above 0")
    p.add_argument("--quick", action="store_true", help="the first 5 questions only")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "language_quality.json")
    args = p.parse_args(argv)
    try:
        results = asyncio.run(run(args))
    except (RuntimeError, OSError, ValueError, subprocess.SubprocessError, grpc.aio.AioRpcError) as exc:
        print(f"bench/language_quality.py: {exc}", file=sys.stderr)
        return 1
    count = 5 if args.quick else len(QUESTIONS)
    report(results, args, count)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "environment": benchlib.environment(("lanai", "xllamacpp", "mlx", "mlx-lm")),
        "temperature": args.temperature, "seed": args.seed, "max_tokens": MAX_TOKENS,
        "questions": [{"question": q, "accepted": a} for q, a in QUESTIONS[:count]],
        "results": [{"model": r.model, "engine": r.engine, "right": r.score, "answers": [asdict(a) for a in r.answers]}
                    for r in results]}, indent=2, ensure_ascii=False) + "\n")
    emit(f"\nraw numbers: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
