"""`lanai vision`, `lanai generate` and `lanai chat` against a real node process serving vision and
language, and its clean exit on SIGTERM (mlx's threads must not abort the process)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from PIL import Image
from skimage import data as photos

from .processes import LanaiProcess, start
from .test_cli import LANAI, lanai

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def node(vision_home: Path, language_home: Path) -> AsyncIterator[LanaiProcess]:
    process = await start("node", "--insecure", "--services", "vision,language", "--host", "127.0.0.1", "--port", "0",
                          "--metrics-port", "-1", "--discovery", "none", "--no-router", "--node-id", "cli-node",
                          home=vision_home)
    yield process
    await process.kill()


async def test_vision_commands_print_readable_results(node: LanaiProcess, vision_home: Path, tmp_path: Path) -> None:
    coffee, astronaut = tmp_path / "coffee.jpg", tmp_path / "astronaut.png"
    Image.fromarray(photos.coffee()).save(coffee)
    Image.fromarray(photos.astronaut()).save(astronaut)
    rc, out, err = await lanai("vision", "classify", str(coffee), "--to", node.address, "--top", "3", home=vision_home)
    assert rc == 0, err
    assert out.splitlines()[0].split()[1] == "espresso" and len(out.splitlines()) == 3, out
    assert "on cli-node with efficientnet-lite0" in err
    rc, out, err = await lanai("vision", "faces", str(astronaut), "--to", node.address, home=vision_home)
    assert rc == 0 and out.startswith("face 1: ") and len(out.splitlines()) == 1, (out, err)
    rc, out, err = await lanai("vision", "faces", str(coffee), "--to", node.address, "--json", home=vision_home)
    assert rc == 0 and json.loads(out)["servedBy"]["model"] == "mtcnn" and "faces" not in json.loads(out), out
    rc, out, err = await lanai("vision", "ocr", str(tmp_path / "missing.png"), "--to", node.address, home=vision_home)
    assert rc == 2 and "cannot read" in err
    (tmp_path / "notes.txt").write_text("not an image")
    rc, out, err = await lanai("vision", "ocr", str(tmp_path / "notes.txt"), "--to", node.address, home=vision_home)
    assert rc == 1 and "INVALID_ARGUMENT" in err and "not a PNG" in err


async def test_generate_unary_and_streamed(node: LanaiProcess, language_home: Path) -> None:
    question = ("What is the capital of Japan?", "--to", node.address, "--temperature", "0", "--max-tokens", "30")
    rc, unary, err = await lanai("generate", *question, home=language_home)
    assert rc == 0 and "Tokyo" in unary, (unary, err)
    assert "generated tokens on cli-node with smollm2-135m" in err and "finished: stop" in err
    rc, streamed, err = await lanai("generate", *question, "--stream", home=language_home)
    assert rc == 0 and streamed == unary, (streamed, unary)
    rc, _, err = await lanai("generate", "Hi", "--to", node.address, "--temperature", "7", home=language_home)
    assert rc == 1 and "INVALID_ARGUMENT: temperature 7 is out of range; use 0 to 2" in err


async def test_chat_keeps_the_conversation(node: LanaiProcess, language_home: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        *LANAI, "chat", "--to", node.address, "--temperature", "0", "--max-tokens", "30",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(b"What is the capital of Japan?\nAnd of Germany?\n"), 120)
    assert proc.returncode == 0, err
    answers = [line for line in out.decode().split("you> ") if line.startswith("model> ")]
    assert len(answers) == 2 and "Tokyo" in answers[0] and "Berlin" in answers[1], out


def results(path: Path) -> dict[str, dict]:  # type: ignore[type-arg]
    return {r["input"]: r for r in map(json.loads, path.read_text().splitlines())}


async def test_batch_of_images_prompts_and_texts(node: LanaiProcess, language_home: Path, tmp_path: Path) -> None:
    """`lanai batch` for the kinds test_batch.py does not run: a node without a router (ListNodes is
    not there, so the batch runs 4 at a time), a corrupt image and a line that is not JSON listed."""
    photos_dir = tmp_path / "photos"
    photos_dir.mkdir()
    Image.fromarray(photos.coffee()).save(photos_dir / "coffee.jpg")
    Image.fromarray(photos.astronaut()).save(photos_dir / "astronaut.png")
    (photos_dir / "broken.jpg").write_bytes(b"not an image at all")
    to = ("--to", node.address)
    rc, _, err = await lanai("batch", "classify", str(photos_dir), "--out", str(tmp_path / "labels.jsonl"), *to,
                             "--top", "1", home=language_home)
    assert rc == 1 and "4 at a time" in err and f"failed: {photos_dir / 'broken.jpg'}: INVALID_ARGUMENT" in err, err
    labels = results(tmp_path / "labels.jsonl")
    assert labels[str(photos_dir / "coffee.jpg")]["text"] == "espresso"
    assert labels[str(photos_dir / "coffee.jpg")]["response"]["served_by"]["node_id"] == "cli-node"
    rc, _, err = await lanai("batch", "faces", str(photos_dir / "astronaut.png"), "--out", str(tmp_path / "f.jsonl"),
                             *to, home=language_home)
    assert rc == 0 and results(tmp_path / "f.jsonl")[str(photos_dir / "astronaut.png")]["text"] == "1 face(s)", err

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"id": "japan", "prompt": "What is the capital of Japan?", "max_tokens": 30}) +
                       "\nnot json\n")
    rc, _, err = await lanai("batch", "generate", "--prompts", str(prompts), "--out", str(tmp_path / "a.jsonl"), *to,
                             "--temperature", "0", home=language_home)
    answers = results(tmp_path / "a.jsonl")
    assert rc == 1 and "Tokyo" in answers["japan"]["text"], (answers, err)
    assert answers["line-2"]["error"]["code"] == "INVALID_ARGUMENT" and "not JSON" in answers["line-2"]["error"]["message"]

    texts = tmp_path / "texts.jsonl"
    texts.write_text('{"id": "cat", "text": "a cat sat on the mat"}\n"a kitten rested on the rug"\n')
    rc, _, err = await lanai("batch", "embed", "--texts", str(texts), "--out", str(tmp_path / "v.jsonl"), *to,
                             home=language_home)
    vectors = results(tmp_path / "v.jsonl")
    assert rc == 0 and set(vectors) == {"cat", "line-2"}, err
    assert vectors["cat"]["dimensions"] == 384 and len(vectors["line-2"]["embedding"]) == 384


async def test_sigterm_exits_cleanly(language_home: Path) -> None:
    process = await start("node", "--insecure", "--services", "language", "--host", "127.0.0.1", "--port", "0",
                          "--metrics-port", "-1", "--discovery", "none", "--no-router", home=language_home)
    rc, out, _ = await lanai("generate", "Say hi.", "--to", process.address, "--max-tokens", "4", home=language_home)
    assert rc == 0 and out.strip()
    assert await process.terminate() == 0  # not 134: mlx's streams are cleaned up before the thread ends
