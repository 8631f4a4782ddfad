"""One minute of mixed load (unary speech, vision and language; live transcriptions and token
streams) through a router while its three nodes are killed, restarted, frozen (a pulled cable:
no reset) and thawed, a cycle every 20 s (the restart's start-up stretches it). Every call must
succeed; the counts are printed.
bench/chaos.py runs the same for five minutes and reports delays and memory."""

from __future__ import annotations

from pathlib import Path

import pytest

from .chaos import Chaos, photo
from .meeting import meeting_pcm

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_minute_of_faults_fails_no_call(lanai_home: Path, vision_home: Path, language_home: Path,
                                                speak, fox_wav: bytes) -> None:  # type: ignore[no-untyped-def]
    chaos = Chaos(lanai_home, wav=fox_wav, meeting_pcm=meeting_pcm(speak), image=photo())
    try:
        await chaos.start()
        report = await chaos.run(60, 20)
    finally:
        await chaos.close()
    print(f"\ncalls (ok, failed): {report.counts()}; faults: {report.faults}; "
          f"streams moved after (s): {[round(m, 2) for m in report.moves()]}")
    assert not report.failed(), [(o.kind, o.error) for o in report.failed()]
    counts = report.counts()
    assert all(counts.get(kind, (0, 0))[0] > 0 for kind in ("transcribe", "classify", "generate",
                                                             "live transcription", "token stream")), counts
    assert report.moves(), "no stream moved: the faults missed every live stream"
    # A restart on two busy cores takes a good part of a period, so a minute holds one full cycle.
    assert {f[1].split()[0] for f in report.faults} == {"kill", "restart", "freeze", "thaw"}, report.faults
