"""`lanai assist`: a spoken question in, a spoken answer out, through real services: on one
node, and through a router whose three calls land on three different nodes."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import grpc
import pytest

from lanai.api.speech.v1 import speech_pb2, speech_pb2_grpc

from .processes import LANAI, free_port, start, up, wait_for_nodes

QUESTION = "What is the capital of France?"
EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "voice_loop.py"
TIMING = re.compile(r"turn 1: end of speech -> final transcript ([\d.]+) s -> first token ([\d.]+) s -> "
                    r"first audio ([\d.]+) s.*\[(.*)\]")
COMMON = ("--insecure", "--metrics-port", "0", "--speech-models", "tiny.en", "--language-embedding-models", "",
          "--voice-models", "en-us")


async def assist(address: str, question: Path, answer: Path, home: Path) -> str:
    proc = await asyncio.create_subprocess_exec(
        *LANAI, "assist", "--to", address, "--plaintext", "--input", str(question), "--output", str(answer),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={"LANAI_HOME": str(home),
                                                                           "PATH": "/usr/bin:/bin"})
    out, err = await asyncio.wait_for(proc.communicate(), 180)
    text = out.decode() + err.decode()
    assert proc.returncode == 0, text
    return text


async def heard(address: str, wav: bytes) -> str:
    async with grpc.aio.insecure_channel(address) as channel:
        reply = await speech_pb2_grpc.SpeechStub(channel).Transcribe(
            speech_pb2.TranscribeRequest(audio=speech_pb2.Audio(encoded=wav)), timeout=60)
    return reply.text.lower()


@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.timeout(420)
async def test_a_spoken_question_gets_a_spoken_answer(language_home: Path, speak, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    question = tmp_path / "question.wav"
    question.write_bytes(speak(QUESTION, "capital"))
    node = await start("node", *COMMON, "--services", "speech,language,voice", "--host", "127.0.0.1", "--port", "0",
                       "--no-router", "--discovery", "none", "--node-id", "assistant", home=language_home)
    try:
        output = await assist(node.address, question, tmp_path / "answer.wav", language_home)
        assert "you: " in output and "capital" in output.lower(), output
        timing = TIMING.search(output)
        assert timing, output
        assert 0 < float(timing.group(1)) <= float(timing.group(2)) <= float(timing.group(3)), timing.group(0)
        answer = (tmp_path / "answer.wav").read_bytes()
        assert "paris" in await heard(node.address, answer), output
        metrics = await asyncio.to_thread(lambda: urllib.request.urlopen(
            f"http://127.0.0.1:{node.metrics_port}/metrics", timeout=10).read().decode())
        # the documented example does the same with the generated stubs alone
        example = await asyncio.create_subprocess_exec(
            sys.executable, str(EXAMPLE), str(question), str(tmp_path / "example.wav"), "--to", node.address,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        printed = (await asyncio.wait_for(example.communicate(), 120))[0].decode()
        assert example.returncode == 0 and "assistant:" in printed, printed
        assert "paris" in await heard(node.address, (tmp_path / "example.wav").read_bytes()), printed
        for service, method in (("speech", "StreamTranscribe"), ("language", "GenerateStream"),
                                ("voice", "SynthesizeStream")):
            row = f'lanai_requests_total{{code="OK",method="{method}",node="assistant",service="{service}"}}'
            assert any(line.startswith(row) and float(line.split()[-1]) >= 1 for line in metrics.splitlines()), row
    finally:
        await node.kill()


@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.timeout(420)
async def test_speech_over_the_answer_stops_it(language_home: Path, speak, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Barge-in: the user speaks again 1.2 s after the question ends, while the answer is still
    being made or played; that answer stops and the new utterance gets its own turn."""
    first = tmp_path / "first.wav"
    first.write_bytes(speak("Tell me a long story about the sea and the ships.", "story"))
    second = tmp_path / "second.wav"
    second.write_bytes(speak("Stop. What is the capital of France?", "stop"))
    both = tmp_path / "both.wav"
    subprocess.run(["sox", str(first), "-p", "pad", "0", "1.2"], check=True, stdout=open(tmp_path / "p.sox", "wb"))
    subprocess.run(["sox", str(tmp_path / "p.sox"), str(second), str(both)], check=True)
    node = await start("node", *COMMON, "--services", "speech,language,voice", "--host", "127.0.0.1", "--port", "0",
                       "--no-router", "--discovery", "none", "--node-id", "assistant", home=language_home)
    try:
        output = await assist(node.address, both, tmp_path / "answer.wav", language_home)
        assert output.count("you: ") == 2, output
        assert re.search(r"turn 1: .*\(interrupted\)", output), output
        assert re.search(r"turn 2: .*first audio [\d.]+ s \[", output), output  # the second answer was not cut
    finally:
        await node.kill()


@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.timeout(480)
async def test_ears_brain_and_voice_on_three_nodes(language_home: Path, speak, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    question = tmp_path / "question.wav"
    question.write_bytes(speak(QUESTION, "capital"))
    roles = {"ears": "speech", "brain": "language", "mouth": "voice"}
    ports = {name: free_port(f"127.0.0.{2 + i}") for i, name in enumerate(roles)}
    nodes = await asyncio.gather(*(
        start("node", *COMMON, "--services", service, "--host", f"127.0.0.{2 + i}", "--port", str(ports[name]),
              "--no-router", "--discovery", "none", "--node-id", name, home=language_home)
        for i, (name, service) in enumerate(roles.items())))
    peers = ",".join(f"127.0.0.{2 + i}:{ports[name]}" for i, name in enumerate(roles))
    router = await start("router", "--insecure", "--host", "127.0.0.1", "--port", "0", "--metrics-port", "-1",
                         "--peers", peers, "--node-id", "router", home=language_home)
    try:
        await wait_for_nodes(router.address, lambda found: up(found, *roles), timeout=60)
        output = await assist(router.address, question, tmp_path / "answer.wav", language_home)
        timing = TIMING.search(output)
        assert timing, output
        assert timing.group(4) == "speech on ears, language on brain, voice on mouth", output
        assert "paris" in await heard(router.address, (tmp_path / "answer.wav").read_bytes()), output
    finally:
        for process in (router, *nodes):
            await process.kill()
