"""The machine's speakers and microphone for `lanai say` and `lanai assist`, through sound
programs that are already installed (sox's `play`/`rec`, ALSA's `aplay`/`arecord`), so lanai
needs no audio library. Raw 16-bit mono PCM goes through their stdin/stdout."""

from __future__ import annotations

import shutil
import subprocess

from lanai.services.core.errors import Unavailable

HINT = "install sox (apt install sox, brew install sox) or alsa-utils, or use --input FILE / --output FILE"


def _raw(sample_rate: int) -> list[str]:
    return ["-t", "raw", "-r", str(sample_rate), "-e", "signed", "-b", "16", "-c", "1"]


def player(sample_rate: int) -> subprocess.Popen[bytes]:
    """A process that plays the PCM written to its stdin."""
    if play := shutil.which("play"):
        command = [play, "-q", *_raw(sample_rate), "-"]
    elif aplay := shutil.which("aplay"):
        command = [aplay, "-q", "-f", "S16_LE", "-r", str(sample_rate), "-c", "1", "-t", "raw"]
    else:
        raise Unavailable(f"no program to play audio on this machine: {HINT}")
    return subprocess.Popen(command, stdin=subprocess.PIPE)


def microphone(sample_rate: int) -> subprocess.Popen[bytes]:
    """A process whose stdout is the default microphone's PCM."""
    if rec := shutil.which("rec"):
        command = [rec, "-q", *_raw(sample_rate), "-"]
    elif arecord := shutil.which("arecord"):
        command = [arecord, "-q", "-f", "S16_LE", "-r", str(sample_rate), "-c", "1", "-t", "raw"]
    else:
        raise Unavailable(f"no program to record audio on this machine: {HINT}")
    return subprocess.Popen(command, stdout=subprocess.PIPE)
