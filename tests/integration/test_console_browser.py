"""The web console (issue 15) in a real headless Chromium (Debian's `chromium`, driven by
Playwright over the DevTools protocol): the page loads with no error and lists the node, a
streamed chat answer appears, a WAV is transcribed, the astronaut's face is found, a text is
spoken. A screenshot of the page goes to the test artefacts ($LANAI_TEST_ARTIFACTS, else
test-artifacts/ in the checkout)."""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio
from PIL import Image
from playwright.async_api import Page, async_playwright, expect
from skimage import data as photos

from lanai.mesh.node import Node, NodeConfig
from lanai.mesh.presence import MeshConfig
from lanai.services.speech.config import SpeechConfig

from .conftest import INSECURE

pytestmark = pytest.mark.asyncio(loop_scope="session")
ARTIFACTS = Path(os.environ.get("LANAI_TEST_ARTIFACTS") or Path(__file__).parents[2] / "test-artifacts")
TIMEOUT_MS = 120_000
NO_OUTSIDE = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-domain-reliability", "--no-first-run", "--no-pings",
              "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]
"""Root needs --no-sandbox; the rest keeps Chromium's own background traffic (updates, sync,
reporting) off, and no host name resolves: the page may reach only this machine's node."""


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("Chromium is missing: run scripts/setup.sh --dev (it installs Debian's chromium)")
    return found


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def console_node(lanai_home: Path, vision_home: Path, language_home: Path) -> AsyncIterator[Node]:
    config = NodeConfig(home=lanai_home, services=("speech", "vision", "language", "voice"), host="127.0.0.1",
                        port=0, mesh_port=0, metrics_port=None, http_port=0, node_id="console-node",
                        security=INSECURE, mesh=MeshConfig(router=True, discovery="none"),
                        configs={"speech": SpeechConfig(models=("tiny.en",))})
    node = await Node.start(config)
    yield node
    await node.stop(grace_s=1)


@pytest_asyncio.fixture(loop_scope="session")
async def page(console_node: Node) -> AsyncIterator[Page]:
    problems: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium(), args=NO_OUTSIDE)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 1400})
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on("response", lambda r: problems.append(f"{r.status} for {r.url}") if r.status >= 400 else None)
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            await page.goto(f"http://127.0.0.1:{console_node.http_port}/")
            yield page
        finally:
            await browser.close()
    assert not problems, problems  # no script error and no refused resource (the CSP allows only this node)


async def test_the_console_shows_the_mesh_and_tries_every_service(page: Page, fox_wav: bytes,
                                                                  tmp_path: Path) -> None:
    page.set_default_timeout(TIMEOUT_MS)
    await expect(page.locator("#nodes tr.node")).to_have_count(1)
    await expect(page.locator("#nodes")).to_contain_text("console-node")
    await expect(page.locator("#nodes")).to_contain_text("tiny.en")
    await expect(page.locator("#summary")).to_have_text("1 node, 1 up")
    await expect(page.locator("#chat-model option")).not_to_have_count(0)

    await page.fill("#chat-input", "Say hello.")
    await page.click("#chat-send")
    await expect(page.locator("#chat-meta")).to_contain_text("node console-node")
    answer = await page.locator("#chat-log .assistant").inner_text()
    assert answer.strip() and "error" not in (await page.locator("#chat-log .assistant").get_attribute("class") or "")

    wav = tmp_path / "fox.wav"
    wav.write_bytes(fox_wav)
    await page.set_input_files("#speech-file", str(wav))
    await expect(page.locator("#speech-status")).to_contain_text("node console-node")
    assert "lazy" in (await page.locator("#speech-text").inner_text()).lower()

    photo = tmp_path / "astronaut.png"
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(photos.astronaut())).save(buffer, "PNG")
    photo.write_bytes(buffer.getvalue())
    await page.select_option("#vision-task", "faces")
    await page.set_input_files("#vision-file", str(photo))
    await expect(page.locator("#vision-status")).to_contain_text("node console-node")
    await expect(page.locator("#vision-list li").first).to_contain_text("face")
    assert int(await page.locator("#vision-canvas").get_attribute("width") or 0) > 0

    await page.click("#voice-form button[type=submit]")
    await expect(page.locator("#voice-status")).to_contain_text("node console-node")
    assert (await page.locator("#voice-audio").get_attribute("src") or "").startswith("blob:")

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "console.png"
    await page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    print(f"\nconsole screenshot: {shot}")
