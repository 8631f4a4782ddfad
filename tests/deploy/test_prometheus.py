"""A real Prometheus server (Debian's) finds a mesh through a router's /sd endpoint, and every
query of the shipped Grafana dashboard returns data from it."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from PIL import Image
from skimage import data as photos

from lanai.api.language.v1 import language_pb2, language_pb2_grpc
from lanai.api.speech.v1 import speech_pb2, speech_pb2_grpc
from lanai.api.vision.v1 import vision_pb2, vision_pb2_grpc
from lanai.api.voice.v1 import voice_pb2, voice_pb2_grpc
from tests.integration.processes import LanaiProcess, free_port, start, up, wait_for_nodes

pytestmark = pytest.mark.asyncio(loop_scope="session")
DASHBOARD = Path(__file__).resolve().parents[2] / "helm/lanai/dashboards/lanai.json"
SERVICES = {"127.0.0.2": "speech", "127.0.0.3": "speech,vision,language,voice"}


def dashboard_queries() -> list[tuple[str, str]]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [(p["title"], t["expr"]) for p in panels for t in p.get("targets", [])]  # rows have none


def api(base: str, path: str, **params: str) -> dict:  # type: ignore[type-arg]
    url = f"{base}{path}?{urllib.parse.urlencode(params)}" if params else f"{base}{path}"
    with urllib.request.urlopen(url, timeout=10) as reply:
        return json.loads(reply.read())  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        pytest.fail("prometheus is missing: run scripts/setup.sh --dev (Debian package prometheus)")
    return found


class Stack:
    def __init__(self, router: LanaiProcess, nodes: list[LanaiProcess], router_metrics: int, prometheus: str):
        self.router, self.nodes, self.router_metrics, self.prometheus = router, nodes, router_metrics, prometheus


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(lanai_home: Path, vision_home: Path, language_home: Path, prometheus_binary: str,
                tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """(vision_home and language_home: the same cache as lanai_home, with those models prepared.)"""
    ports = {h: (free_port(h), free_port(h)) for h in ("127.0.0.2", "127.0.0.3")}
    # prom-2 serves speech; prom-3 every service, so each dashboard panel has data
    nodes = await asyncio.gather(*(start(
        "node", "--insecure", "--host", h, "--port", str(g), "--metrics-host", h, "--metrics-port", str(m), "--node-id",
        f"prom-{h[-1]}", "--services", SERVICES[h], "--speech-models", "tiny.en", "--no-router", "--discovery",
        "none", home=lanai_home) for h, (g, m) in ports.items()))
    router_metrics = free_port()
    router = await start("router", "--insecure", "--host", "127.0.0.1", "--port", "0", "--metrics-host", "127.0.0.1",
                         "--metrics-port", str(router_metrics), "--node-id", "prom-router",
                         "--peers", ",".join(f"{h}:{g}" for h, (g, _) in ports.items()), home=lanai_home)
    folder = tmp_path_factory.mktemp("prometheus")
    config = folder / "prometheus.yml"
    config.write_text(json.dumps({  # JSON is YAML
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "lanai", "http_sd_configs": [
            {"url": f"http://127.0.0.1:{router_metrics}/sd", "refresh_interval": "1s"}]}]}))
    web = free_port()
    server = subprocess.Popen([prometheus_binary, f"--config.file={config}", f"--storage.tsdb.path={folder / 'data'}",
                               f"--web.listen-address=127.0.0.1:{web}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await wait_for_nodes(router.address, lambda ns: up(ns, "prom-2", "prom-3"))
        await eventually(lambda: _ready(f"http://127.0.0.1:{web}"))
        yield Stack(router, list(nodes), router_metrics, f"http://127.0.0.1:{web}")
    finally:
        server.terminate()
        server.wait(30)
        for p in (router, *nodes):
            await p.kill()


async def targets(stack: Stack) -> dict[str, str]:
    """Active scrape targets: lanai_node -> health."""
    reply = await asyncio.to_thread(api, stack.prometheus, "/api/v1/targets")
    return {t["labels"].get("lanai_node", "?"): t["health"] for t in reply["data"]["activeTargets"]}


async def eventually(check, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout:.0f} s")
        await asyncio.sleep(0.5)


async def test_sd_endpoint_lists_nodes_and_the_router(stack: Stack) -> None:
    reply = await asyncio.to_thread(lambda: json.loads(urllib.request.urlopen(
        f"http://127.0.0.1:{stack.router_metrics}/sd", timeout=5).read()))
    roles = {g["labels"]["lanai_node"]: (g["labels"]["lanai_role"], g["labels"]["lanai_services"]) for g in reply}
    assert roles == {"prom-2": ("node", "speech"), "prom-3": ("node", "language,speech,vision,voice"),  # sorted
                     "prom-router": ("router", "")}
    assert all(len(g["targets"]) == 1 and g["targets"][0].startswith("127.0.0.") for g in reply)


async def test_dashboard_queries_return_data(stack: Stack, fox_wav: bytes) -> None:
    await eventually(lambda: _all_up(stack, {"prom-2", "prom-3", "prom-router"}))
    async with grpc.aio.insecure_channel(stack.router.address) as channel:
        stub = speech_pb2_grpc.SpeechStub(channel)
        good = speech_pb2.TranscribeRequest(audio=speech_pb2.Audio(encoded=fox_wav))
        for _ in range(3):
            await asyncio.gather(*(stub.Transcribe(good) for _ in range(4)))
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.Transcribe(speech_pb2.TranscribeRequest(audio=speech_pb2.Audio(encoded=b"")))
        coffee = io.BytesIO()
        Image.fromarray(photos.coffee()).save(coffee, "JPEG")
        vision = vision_pb2_grpc.VisionStub(channel)
        await vision.Classify(vision_pb2.ClassifyRequest(image=vision_pb2.Image(encoded=coffee.getvalue())))
        video = [vision_pb2.StreamAnalyzeRequest(config=vision_pb2.AnalyzeConfig(analyses=["faces"]))] + [
            vision_pb2.StreamAnalyzeRequest(frame=vision_pb2.VideoFrame(
                capture_time_us=i * 66_667, encoded=coffee.getvalue())) for i in range(10)]
        async for _ in vision.StreamAnalyze(iter(video)):
            pass
        await language_pb2_grpc.LanguageStub(channel).Generate(language_pb2.GenerateRequest(
            prompt="The capital of France is", sampling=language_pb2.SamplingOptions(max_tokens=8)))
        async for _ in voice_pb2_grpc.VoiceStub(channel).SynthesizeStream(
                voice_pb2.SynthesizeRequest(text="The dashboard speaks. It has two sentences.")):
            pass
    missing: dict[str, str] = {}

    async def all_have_data() -> bool:
        missing.clear()
        for title, expr in dashboard_queries():
            reply = await asyncio.to_thread(api, stack.prometheus, "/api/v1/query", query=expr)
            assert reply["status"] == "success", (title, expr, reply)
            if not reply["data"]["result"]:
                missing[title] = expr
        return not missing

    try:
        await eventually(all_have_data, timeout=40)
    except AssertionError:
        raise AssertionError(f"dashboard panels without data: {missing}") from None
    assert len(dashboard_queries()) >= 27


async def test_targets_follow_a_node_leaving(stack: Stack) -> None:
    await eventually(lambda: _all_up(stack, {"prom-2", "prom-3"}))
    await stack.nodes[1].kill()
    await eventually(lambda: _gone(stack, "prom-3"), timeout=20)
    assert "prom-2" in await targets(stack)


async def _ready(base: str) -> bool:
    def probe() -> bool:
        try:
            with urllib.request.urlopen(f"{base}/-/ready", timeout=2) as reply:
                return reply.status == 200
        except OSError:
            return False
    return await asyncio.to_thread(probe)


async def _all_up(stack: Stack, names: set[str]) -> bool:
    seen = await targets(stack)
    return all(seen.get(n) == "up" for n in names)


async def _gone(stack: Stack, name: str) -> bool:
    return name not in await targets(stack)


