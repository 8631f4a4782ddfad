"""lanai batch's pure parts: inputs from folders, globs and JSONL, the journal a rerun resumes
from, and the runner's retries and bookkeeping (over a stand-in call: the batch against real
nodes is tests/integration/test_batch.py)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import grpc
import pytest

from lanai.mesh.batch import inputs, runner
from lanai.mesh.batch.inputs import Item
from lanai.mesh.batch.journal import Journal


def rpc_error(code: grpc.StatusCode, details: str = "") -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


def test_files_from_folders_globs_and_paths(tmp_path: Path) -> None:
    (tmp_path / "a" / "deep").mkdir(parents=True)
    for name in ("a/1.wav", "a/deep/2.WAV", "a/notes.txt", "b.flac"):
        (tmp_path / name).write_bytes(b"x")
    items = inputs.files([str(tmp_path / "a"), str(tmp_path / "*.flac"), str(tmp_path / "a/1.wav")], (".wav", ".flac"))
    assert [Path(i.key).relative_to(tmp_path).as_posix() for i in items] == ["a/1.wav", "a/deep/2.WAV", "b.flac"]
    with pytest.raises(inputs.InputError, match="no such file"):
        inputs.files([str(tmp_path / "missing")], (".wav",))
    with pytest.raises(inputs.InputError, match="no input files"):
        inputs.files([str(tmp_path / "a")], (".mp3",))


def test_jsonl_lines_ids_and_problems(tmp_path: Path) -> None:
    path = tmp_path / "prompts.jsonl"
    path.write_text('"just a string"\n\n{"id": "q2", "prompt": "hi"}\nnot json\n[1, 2]\n{"id": "q2", "prompt": "again"}\n'
                    '{"other": 1}\n')
    items = inputs.jsonl(path, ("prompt", "messages"))
    assert [(i.key, bool(i.problem)) for i in items] == [
        ("line-1", False), ("q2", False), ("line-4", True), ("line-5", True), ("q2@line-6", True), ("line-7", True)]
    assert items[0].fields == {"prompt": "just a string"}
    assert "not JSON" in items[2].problem and "used twice" in items[4].problem and "'prompt'" in items[5].problem


def test_journal_resume_compacts_and_survives_a_cut_off_line(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    j = Journal(out)
    j.load()
    j.write({"input": "a", "ok": True})
    j.write({"input": "b", "ok": False, "retryable": True})
    j.write({"input": "c", "ok": False, "retryable": False})
    j.close()
    with out.open("a") as f:
        f.write('{"input": "d", "ok": tr')  # a crash mid-write
    again = Journal(out)
    again.load()
    assert again.finished("a") and not again.finished("b") and again.finished("c") and not again.finished("d")
    again.write({"input": "b", "ok": True})
    again.close()
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["input"], r["ok"]) for r in lines] == [("a", True), ("b", True), ("c", False)]
    out.write_text("something else\nentirely\n")
    with pytest.raises(ValueError, match="not a lanai batch result"):
        Journal(out).load()


@pytest.mark.asyncio
async def test_runner_retries_passing_errors_only_and_skips_finished(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "out.jsonl")
    journal.write({"input": "done-before", "ok": True})
    attempts: dict[str, int] = {}

    async def call(item: Item) -> dict[str, object]:
        attempts[item.key] = attempts.get(item.key, 0) + 1
        if item.key == "flaky" and attempts[item.key] < 3:
            raise rpc_error(grpc.StatusCode.UNAVAILABLE, "node gone")
        if item.key == "down":
            raise rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "full")
        if item.key == "corrupt":
            raise rpc_error(grpc.StatusCode.INVALID_ARGUMENT, "not audio")
        if item.key == "unreadable":
            raise runner.BadInput("cannot read it")
        return {"text": item.key}

    items = [Item(k) for k in ("done-before", "ok", "flaky", "down", "corrupt", "unreadable")]
    items.append(Item("bad-line", problem="line 7 is not JSON"))
    summary = await runner.run(items, call, journal, concurrency=3, retries=2, backoff_s=0.001)
    assert (summary.total, summary.skipped, summary.ok) == (7, 1, 2)
    assert "done-before" not in attempts and "bad-line" not in attempts
    assert attempts == {"ok": 1, "flaky": 3, "down": 3, "corrupt": 1, "unreadable": 1}
    assert summary.retried == 4
    failed = {line["input"]: (line["error"]["code"], line["retryable"]) for line in summary.failed}
    assert failed == {"down": ("RESOURCE_EXHAUSTED", True), "corrupt": ("INVALID_ARGUMENT", False),
                      "unreadable": ("INVALID_ARGUMENT", False), "bad-line": ("INVALID_ARGUMENT", False)}
    assert journal.records["flaky"]["attempts"] == 3 and journal.records["flaky"]["text"] == "flaky"
    assert not journal.finished("down") and journal.finished("corrupt")


@pytest.mark.asyncio
async def test_runner_keeps_concurrency_and_stops_cleanly_when_cancelled(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "out.jsonl")
    running, most = 0, 0
    release = asyncio.Event()

    async def call(item: Item) -> dict[str, object]:
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            if item.key >= "05":
                await release.wait()  # these hang until the batch is cancelled
            return {}
        finally:
            running -= 1

    task = asyncio.create_task(runner.run([Item(f"{i:02d}") for i in range(20)], call, journal,
                                          concurrency=4, retries=0))
    while len(journal.records) < 5 or running < 4:
        await asyncio.sleep(0.01)
    task.cancel()
    summary = await task
    assert summary.interrupted and summary.ok == 5 and most == 4 and running == 0
    assert sorted(journal.records) == [f"{i:02d}" for i in range(5)]
