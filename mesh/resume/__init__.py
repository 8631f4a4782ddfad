"""Moving a live stream to another node when its node is lost mid-call.

The router relays every call as raw bytes and retries elsewhere only while nothing has been
relayed. A few streaming calls can go on after that: a live transcription (replay the audio
since the last final result to a new node, shift its answers onto the original stream's clock),
a token stream (continue the answer from the text already sent) and a video analysis (the config,
then the frames from now on). Each such call has a
Resume here; every other call keeps the plain rules."""

from __future__ import annotations

from typing import Any, Protocol

import grpc

from lanai.mesh.catalog import Rpc
from lanai.mesh.replay import ReplayableStream

MOVES = {grpc.StatusCode.UNAVAILABLE}
"""A node's answer that moves a stream that already relayed responses: the node died, was cut
off (keepalive), or is shutting down. Every other status is the call's own outcome."""


class Resume(Protocol):
    """One call's state, kept by the router so that the call can go on on another node."""

    def request(self) -> Any:
        """What the next attempt sends: raw bytes (unary request) or an async iterator of them."""

    def relay(self, raw: bytes) -> bytes | None:
        """A node's response as the client must see it (None: drop it); updates the state."""

    def moved(self) -> None:
        """The attempt's node was lost after relaying: the next request() resumes the call."""

    def close(self) -> None:
        """The call is over: stop reading the client."""


def resume_for(rpc: Rpc, first: Any, feed: ReplayableStream | None) -> Resume | None:
    """The Resume for this call, or None when it cannot be moved (a first message that does not
    parse or set up the call is the node's to refuse, with the plain rules)."""
    if rpc.path == "/lanai.speech.v1.Speech/StreamTranscribe" and feed is not None:
        from lanai.mesh.resume.speech import TranscriptionResume
        return TranscriptionResume.start(first, feed)
    if rpc.path == "/lanai.vision.v1.Vision/StreamAnalyze" and feed is not None:
        from lanai.mesh.resume.vision import AnalysisResume
        return AnalysisResume.start(first, feed)
    if rpc.path == "/lanai.language.v1.Language/GenerateStream":
        from lanai.mesh.resume.language import GenerationResume
        return GenerationResume.start(first)
    return None
