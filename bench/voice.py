"""Voice service benchmark: what the gRPC node costs, how soon a stream starts to speak, how
fast synthesis is, and how long a spoken turn of `lanai assist` takes on one node.

1. Overhead: the same sentences synthesised by a `lanai node --services voice` subprocess on
   127.0.0.1 (one client, sequential `Synthesize` calls, PCM) and by a `VoiceEngine` built in
   this process with the same voice and threads (`synthesize`, what the call's slot runs),
   alternating in blocks so machine noise hits both alike. Ratio of medians; target <= 1.05.
2. First audio: a 20-word, two-sentence answer. Time to the first `SynthesizeStream` chunk vs
   the time of one `Synthesize` call for the whole answer, on the same node, alternated. Target
   <= 0.3x.
3. Real-time factor: synthesis time / audio duration, per voice, from the in-process runs.
4. The voice loop: a node with speech, language and voice on their default models (Whisper
   base, Qwen2.5-Coder-0.5B, espeak-ng en-us; --speech-model/--language-model change them), and `lanai assist --input` a WAV of five spoken questions with
   pauses between them; the end of user speech -> first answer audio of each turn, from the
   timing lines `lanai assist` prints. Target <= 1.5 s median with the default models.

Prints one markdown table per section and writes the raw numbers with the environment to JSON.
Needs the models prepared in $LANAI_HOME (`lanai models prepare`; the Piper voice needs
`lanai models install joe` first) and espeak-ng. About 3 minutes on 2 cores (--quick: 1).

Run:  LANAI_HOME=/path/to/home python bench/voice.py [--voice joe] [--quick] [--out bench/results/voice.json]
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
import time
from pathlib import Path
from typing import Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

from lanai.api.voice.v1 import voice_pb2, voice_pb2_grpc  # noqa: E402
from lanai.services import models  # noqa: E402
from lanai.services.voice.engine import VoiceEngine  # noqa: E402
from lanai.services.voice.sources import resolve  # noqa: E402

SENTENCES = ("The meeting room on the second floor is free after lunch.",
             "Your package arrived this morning and is waiting at the front desk.",
             "It will rain in the afternoon, so take an umbrella with you.",
             "The printer is out of paper again.")
ANSWER = ("Paris is the capital of France and its largest city. "
          "About two million people live there, along the river Seine.")  # 20 words
QUESTIONS = ("What is the capital of France?", "How many days are in a week?", "What color is the sky?",
             "What is two plus two?", "Name a fruit that is yellow.")
TIMING = re.compile(r"turn (\d+): end of speech -> final transcript ([\d.]+) s -> first token ([\d.]+) s -> "
                    r"first audio ([\d.]+) s")
DISTRIBUTIONS = ("onnxruntime", "grpcio", "faster-whisper", "xllamacpp")


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))] if ordered else float("nan")


async def overhead(stub: voice_pb2_grpc.VoiceStub, engine: VoiceEngine, voice: str, blocks: int) -> dict[str, Any]:
    service: list[float] = []
    local: list[float] = []
    rtf: list[float] = []

    async def remote(text: str) -> None:
        started = time.perf_counter()
        await stub.Synthesize(voice_pb2.SynthesizeRequest(text=text, model=voice,
                                                          encoding=voice_pb2.AUDIO_ENCODING_PCM_S16LE), timeout=60)
        service.append(time.perf_counter() - started)

    def inproc(text: str) -> None:
        started = time.perf_counter()
        audio = engine.synthesize(text, voice, 1.0)  # what a Synthesize call's slot runs
        took = time.perf_counter() - started
        local.append(took)
        rtf.append(took / audio.duration_s)

    for text in SENTENCES:  # warm both
        await remote(text)
        inproc(text)
    service.clear(), local.clear(), rtf.clear()
    for block in range(blocks):
        order = ("service", "local") if block % 2 == 0 else ("local", "service")
        for side in order:
            await asyncio.sleep(0.1)
            for text in SENTENCES:
                if side == "service":
                    await remote(text)
                else:
                    await asyncio.to_thread(inproc, text)
    return {"service_s": service, "in_process_s": local, "rtf": rtf,
            "ratio": median(service) / median(local)}


async def first_audio(stub: voice_pb2_grpc.VoiceStub, voice: str, runs: int) -> dict[str, Any]:
    first: list[float] = []
    whole: list[float] = []
    request = voice_pb2.SynthesizeRequest(text=ANSWER, model=voice, encoding=voice_pb2.AUDIO_ENCODING_PCM_S16LE)
    for run in range(runs + 1):
        for side in (("stream", "whole") if run % 2 == 0 else ("whole", "stream")):
            started = time.perf_counter()
            if side == "stream":
                call = stub.SynthesizeStream(request, timeout=60)
                async for _ in call:
                    if run:
                        first.append(time.perf_counter() - started)
                    break
                call.cancel()
            else:
                await stub.Synthesize(request, timeout=60)
                if run:
                    whole.append(time.perf_counter() - started)
            await asyncio.sleep(0.2)  # let the cancelled stream's sentence finish before the next timing
    return {"first_chunk_s": first, "whole_s": whole, "ratio": median(first) / median(whole)}


def questions_wav(folder: Path) -> Path:
    """The five questions spoken by espeak-ng with 2.5 s of silence after each (an answer's time)."""
    parts = []
    for i, question in enumerate(QUESTIONS):
        path = folder / f"q{i}.wav"
        subprocess.run(["espeak-ng", "-w", str(path), question], check=True)
        parts.append(str(path))
        silence = folder / f"s{i}.wav"
        subprocess.run(["sox", "-n", "-r", "22050", "-c", "1", "-b", "16", str(silence), "trim", "0", "6"], check=True)
        parts.append(str(silence))
    out = folder / "questions.wav"
    subprocess.run(["sox", *parts, str(out)], check=True)
    return out


async def voice_loop(home: Path, folder: Path, speech_model: str, language_model: str,
                     voice: str) -> dict[str, Any]:
    args = ["--services", "speech,language,voice", "--host", "127.0.0.1", "--port", "0", "--metrics-port", "-1",
            "--home", str(home), "--voice-models", voice,
            "--language-embedding-models", "", "--discovery", "none", "--no-router", "--grace", "1"]
    if language_model:
        args += ["--language-models", language_model]
    if speech_model:
        args += ["--speech-models", speech_model]
    wav = questions_wav(folder)
    async with benchlib.node_process(args, folder / "loop-node.log") as (port, _):
        proc = await asyncio.create_subprocess_exec(
            *benchlib.LANAI, "assist", "--to", f"127.0.0.1:{port}", "--plaintext", "--input", str(wav),
            "--output", str(folder / "answers.wav"), "--max-tokens", "48",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
    text = out.decode() + err.decode()
    turns = [{"turn": int(m.group(1)), "final_s": float(m.group(2)), "first_token_s": float(m.group(3)),
              "first_audio_s": float(m.group(4))} for m in TIMING.finditer(text)]
    return {"turns": turns, "output": text[-4000:], "first_audio_median_s": median([t["first_audio_s"] for t in turns])}


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--voice", default="", help="voice to measure (default: joe when installed, else en-us)")
    parser.add_argument("--speech-model", default="", help="the loop's speech model (default: the node's)")
    parser.add_argument("--language-model", default="", help="the loop's language model (default: the node's)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("bench/results/voice.json"))
    args = parser.parse_args()
    home = models.default_home()
    joe = models.embedded("joe")
    voices = [v for v in (args.voice,) if v] or (["en-us", "joe"] if joe and models.installed(joe) else ["en-us"])
    blocks, runs = (2, 3) if args.quick else (6, 8)
    results: dict[str, Any] = {"environment": benchlib.environment(DISTRIBUTIONS), "voices": {}}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for voice in voices:
            engine = VoiceEngine([resolve(home, voice)], threads=1)
            node = ["--services", "voice", "--host", "127.0.0.1", "--port", "0", "--metrics-port", "-1",
                    "--home", str(home), "--voice-models", voice, "--voice-slots", "1", "--voice-threads", "1",
                    "--discovery", "none", "--no-router", "--grace", "1"]
            async with benchlib.node_process(node, folder / f"{voice}-node.log") as (port, _):
                async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                    stub = voice_pb2_grpc.VoiceStub(channel)
                    benchlib.emit(f"voice {voice}: overhead...")
                    cost = await overhead(stub, engine, voice, blocks)
                    benchlib.emit(f"voice {voice}: first audio...")
                    start = await first_audio(stub, voice, runs)
            engine.close()
            results["voices"][voice] = {"overhead": cost, "first_audio": start}
        benchlib.emit("voice loop (5 turns)...")
        loop_voice = "en-us"
        results["loop"] = await voice_loop(home, folder, args.speech_model, args.language_model, loop_voice)
        results["loop"]["voice"] = loop_voice
    rows = []
    for voice, r in results["voices"].items():
        cost, start = r["overhead"], r["first_audio"]
        rows.append((f"{voice}: service / in-process per sentence", f"{median(cost['service_s']) * 1000:.1f} ms / "
                     f"{median(cost['in_process_s']) * 1000:.1f} ms", f"{cost['ratio']:.3f}", "<= 1.05",
                     "PASS" if cost["ratio"] <= 1.05 else "FAIL"))
        rows.append((f"{voice}: first chunk / whole 20-word answer", f"{median(start['first_chunk_s']) * 1000:.0f} ms / "
                     f"{median(start['whole_s']) * 1000:.0f} ms", f"{start['ratio']:.2f}", "<= 0.3",
                     "PASS" if start["ratio"] <= 0.3 else "FAIL"))
        rows.append((f"{voice}: real-time factor (p50 / p90)", f"{median(cost['rtf']):.3f} / {p90(cost['rtf']):.3f}",
                     "", "report", ""))
    loop = results["loop"]
    firsts = [t["first_audio_s"] for t in loop["turns"]]
    rows.append((f"loop ({loop['voice']}): end of speech -> first audio, {len(firsts)} turns",
                 ", ".join(f"{x:.2f}" for x in firsts), f"median {median(firsts):.2f} s", "<= 1.5 s",
                 "PASS" if len(firsts) == 5 and median(firsts) <= 1.5 else "MISSED"))
    for t in loop["turns"]:
        rows.append((f"  turn {t['turn']}: final transcript / first token / first audio",
                     f"{t['final_s']:.2f} / {t['first_token_s']:.2f} / {t['first_audio_s']:.2f} s", "", "", ""))
    benchlib.emit(benchlib.table(("measure", "values", "result", "target", "verdict"), rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    benchlib.emit(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
