"""What Home Assistant does to find and use a Wyoming service, run inside a test namespace: browse
`_wyoming._tcp` over mDNS (bound to this namespace's address only), then connect to what it
found, describe it and transcribe a WAV in 1024-sample chunks at 16 kHz. Prints one JSON line."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import socket
import time
import wave

import numpy as np
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.info import Describe, Info
from zeroconf import IPVersion, ServiceStateChange
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

WYOMING = "_wyoming._tcp.local."


async def browse(bind: str, timeout: float) -> list[tuple[str, str, int]]:
    zc = AsyncZeroconf(interfaces=[bind], ip_version=IPVersion.V4Only)
    names: list[str] = []

    def changed(zeroconf: object, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        if state_change is ServiceStateChange.Added:
            names.append(name)

    browser = AsyncServiceBrowser(zc.zeroconf, WYOMING, handlers=[changed])
    deadline = time.monotonic() + timeout
    while not names and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    found = []
    for name in names:
        info = AsyncServiceInfo(WYOMING, name)
        if await info.async_request(zc.zeroconf, 3000):
            found += [(name, socket.inet_ntoa(a), int(info.port or 0)) for a in info.addresses]
    await browser.async_cancel()
    await zc.async_close()
    return found


def pcm_16k(path: str) -> bytes:
    with wave.open(io.BytesIO(open(path, "rb").read())) as w:
        rate, pcm = w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32)
    at = np.arange(int(len(pcm) * 16000 / rate)) * (rate / 16000)
    return np.interp(at, np.arange(len(pcm)), pcm).astype("<i2").tobytes()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bind", required=True)
    parser.add_argument("--wav", required=True)
    parser.add_argument("--timeout", type=float, default=20)
    args = parser.parse_args()
    found = await browse(args.bind, args.timeout)
    result: dict[str, object] = {"found": found}
    if found:
        _, host, port = found[0]
        async with AsyncTcpClient(host, port) as client:
            await client.write_event(Describe().event())
            while (event := await client.read_event()) is not None and not Info.is_type(event.type):
                pass
            result["asr_models"] = [m.name for p in Info.from_event(event).asr for m in p.models] if event else None
        async with AsyncTcpClient(host, port) as client:
            await client.write_event(Transcribe(language="en").event())
            await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
            audio = pcm_16k(args.wav)
            for at in range(0, len(audio), 2048):
                await client.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=audio[at:at + 2048]).event())
            await client.write_event(AudioStop().event())
            while True:
                event = await client.read_event()
                if event is None or event.type == "error":
                    result["error"] = event.data if event else "closed"
                    break
                if Transcript.is_type(event.type):
                    result["transcript"] = Transcript.from_event(event).text
                    break
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
