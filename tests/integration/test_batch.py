"""`lanai batch` as people run it: the command (a real process) pushes a folder of 50 WAVs made
by espeak-ng, five of them corrupt, through a real router to two real tiny.en nodes. Every good
file is transcribed once with its words, the corrupt ones are listed and never stop the batch,
both nodes take work, and a run interrupted with Ctrl-C goes on where it stopped when rerun."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from .processes import LANAI, LanaiProcess, free_port, start, up, wait_for_nodes

pytestmark = pytest.mark.asyncio(loop_scope="session")
NODE = ["--insecure", "--services", "speech", "--speech-models", "tiny.en", "--speech-slots", "1",
        "--speech-threads", "1", "--metrics-port", "-1", "--no-router", "--discovery", "none"]
SENTENCES = (("The quick brown fox jumps over the lazy dog.", "lazy"),
             ("Our meeting notes stay on the machines in this building.", "meeting"),
             ("Tomorrow the weather will be sunny and warm.", "weather"),
             ("Every morning the office printer jams at nine.", "morning"),
             ("Lanai keeps your data on your premises.", "premises"))
CORRUPT = {"empty.wav": b"", "noise.wav": os.urandom(4000), "text.wav": b"this is not audio at all\n" * 40,
           "cut.wav": b"RIFF\x24\x08\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00", "fake.mp3": b"ID3\x03\x00" + bytes(600)}


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """45 spoken clips in folders (name -> keyword) and 5 corrupt files beside them."""
    folder = tmp_path_factory.mktemp("recordings")
    expected: dict[str, str] = {}
    for i in range(45):
        text, keyword = SENTENCES[i % len(SENTENCES)]
        path = folder / f"day{i % 3}" / f"clip{i:02d}.wav"
        path.parent.mkdir(exist_ok=True)
        subprocess.run(["espeak-ng", "-w", str(path), text], check=True)
        expected[str(path)] = keyword
    for name, data in CORRUPT.items():
        (folder / name).write_bytes(data)
    return folder, expected


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def mesh(lanai_home: Path) -> AsyncIterator[LanaiProcess]:
    """Two one-slot nodes on 127.0.0.2 and .3 and a router that knows them: the batch's four at a time."""
    ports = [free_port(h) for h in ("127.0.0.2", "127.0.0.3")]
    nodes = await asyncio.gather(*(start("node", *NODE, "--host", h, "--port", str(p), "--node-id", f"batch-{i}",
                                         home=lanai_home)
                                   for i, (h, p) in enumerate(zip(("127.0.0.2", "127.0.0.3"), ports))))
    router = await start("router", "--insecure", "--host", "127.0.0.1", "--port", "0", "--metrics-port", "0",
                         "--node-id", "batch-router", "--peers", f"127.0.0.2:{ports[0]},127.0.0.3:{ports[1]}",
                         home=lanai_home)
    try:
        await wait_for_nodes(router.address, lambda nodes: up(nodes, "batch-0", "batch-1"), timeout=120)
        yield router
    finally:
        for p in (router, *nodes):
            await p.kill()


def routed_transcribes(router: LanaiProcess) -> int:
    text = urllib.request.urlopen(f"http://127.0.0.1:{router.metrics_port}/metrics", timeout=10).read().decode()
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("lanai_router_requests_total{") and 'method="Transcribe"' in line))


async def batch(router: LanaiProcess, folder: Path, out: Path, *extra: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *LANAI, "batch", "transcribe", str(folder), "--out", str(out), "--to", router.address, "--plaintext", *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


def lines(out: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]


async def test_batch_interrupted_then_resumed_transcribes_each_good_file_once(
        mesh: LanaiProcess, recordings: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    folder, expected = recordings
    out = tmp_path / "results.jsonl"
    before = routed_transcribes(mesh)

    first = await batch(mesh, folder, out)
    while not out.exists() or len(out.read_text().splitlines()) < 12:  # let a dozen finish, then Ctrl-C
        assert first.returncode is None, "the batch ended before it could be interrupted"
        await asyncio.sleep(0.05)
    first.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(first.communicate(), 60)
    assert first.returncode == 130, err.decode()
    assert "interrupted" in err.decode() and "rerun the same command" in err.decode()
    after_first = {r["input"] for r in lines(out)}
    assert 12 <= len(after_first) < 50

    second = await batch(mesh, folder, out)
    _, err = await asyncio.wait_for(second.communicate(), 300)
    report = err.decode()
    assert second.returncode == 1, report  # some inputs failed
    assert f"50 inputs, {len(after_first)} already in" in report
    for name in CORRUPT:
        if str(folder / name) not in after_first:  # listed by the run that found them
            assert f"failed: {folder / name}: INVALID_ARGUMENT" in report, report

    results = lines(out)
    assert sorted(r["input"] for r in results) == sorted([*expected, *(str(folder / n) for n in CORRUPT)])
    by_input = {r["input"]: r for r in results}
    for path, keyword in expected.items():
        assert by_input[path]["ok"], by_input[path]
        assert keyword in by_input[path]["text"].lower(), (path, by_input[path]["text"])
    for name in CORRUPT:
        r = by_input[str(folder / name)]
        assert not r["ok"] and r["error"]["code"] == "INVALID_ARGUMENT" and not r["retryable"], r
    assert {r["node"] for r in results if r["ok"]} == {"batch-0", "batch-1"}
    # Work done before Ctrl-C was not redone: only the inputs cut off in flight (at most four) ran twice.
    assert 50 <= routed_transcribes(mesh) - before <= 54

    third = await batch(mesh, folder, out)
    _, err = await asyncio.wait_for(third.communicate(), 60)
    assert third.returncode == 0 and "0 to do" in err.decode() and "5 input(s) failed in an earlier run" in err.decode()
    assert lines(out) == results


async def test_batch_bad_arguments_exit_2_with_a_message(mesh: LanaiProcess, tmp_path: Path) -> None:
    proc = await batch(mesh, tmp_path / "nowhere", tmp_path / "out.jsonl")
    _, err = await proc.communicate()
    assert proc.returncode == 2 and "no such file or folder" in err.decode()
    (tmp_path / "notes.jsonl").write_text("my own notes\n")
    (tmp_path / "a.wav").write_bytes(b"")
    proc = await batch(mesh, tmp_path / "a.wav", tmp_path / "notes.jsonl")
    _, err = await proc.communicate()
    assert proc.returncode == 2 and "not a lanai batch result" in err.decode()
    assert (tmp_path / "notes.jsonl").read_text() == "my own notes\n"  # never overwritten
