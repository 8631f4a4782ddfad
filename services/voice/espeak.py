"""espeak-ng as a separate program: its voices, speech from them, and the IPA phonemes Piper
voices are driven with. espeak-ng is GPL-3.0: lanai only ever runs the installed program (an
argument list, the text on stdin), never loads its library or a Python binding of it."""

from __future__ import annotations

import functools
import logging
import re
import shutil
import struct
import subprocess
from dataclasses import dataclass

from lanai.services.core.errors import ModelNotFound, Unavailable, quote
from lanai.services.voice import text as texts
from lanai.services.voice.types import SAMPLE_WIDTH, Audio, VoiceInfo

log = logging.getLogger(__name__)
PROGRAM = "espeak-ng"
INSTALL_HINT = (
    "apt install espeak-ng (Debian/Ubuntu), brew install espeak-ng (macOS); or run the node without voice "
    "(--services speech,vision,language)")
TIMEOUT_S = 60.0
WPM, MIN_WPM, MAX_WPM = 175, 80, 450
"""espeak-ng's default speed and the range its -s takes, words per minute."""
CLAUSE_END = re.compile(r"(?<=[,;:—–…])\s+")
"""Where a sentence's clauses end. The phonemes of each get its punctuation back."""
_SWITCH = re.compile(r"\([a-z]{2,3}(?:-[a-z0-9]+)*\)")  # "(en)kˈuːl(de)": espeak-ng changed language
_PUNCTUATION = {"…": ".", "—": ",", "–": ","}
_TERMINALS = ".,;:!?"


def find_program() -> str:
    """The espeak-ng program on PATH."""
    program = shutil.which(PROGRAM)
    if program is None:
        raise Unavailable(f"the voice service needs the espeak-ng program: {INSTALL_HINT}")
    return program


def _program(program: str | None) -> str:
    if program is None:
        return find_program()
    found = shutil.which(program)
    if found is None:
        raise Unavailable(f"the espeak-ng program {program} is not there or not executable; the voice service needs "
                          f"it: {INSTALL_HINT}")
    return found


def _run(program: str, args: list[str], stdin: str = "") -> bytes:
    """Run espeak-ng; its output. The text only ever travels on stdin, so no text is an option."""
    try:
        done = subprocess.run([program, *args], input=stdin.encode("utf-8"), capture_output=True,
                              timeout=TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise Unavailable(f"espeak-ng took over {TIMEOUT_S:.0f} s and was stopped; try a shorter text") from None
    except OSError as exc:
        raise Unavailable(f"espeak-ng ({program}) could not be run ({exc}); reinstall it: {INSTALL_HINT}") from None
    if done.returncode != 0:
        raise Unavailable(f"espeak-ng failed (exit status {done.returncode}: "
                          f"{done.stderr.decode(errors='replace').strip()[:200]}); check that `{program} --version` "
                          "runs on this machine")
    return done.stdout


@dataclass(frozen=True)
class _Listed:
    language: str
    name: str
    """espeak-ng's VoiceName, "English_(America)"."""


@functools.cache
def _voices(program: str) -> dict[str, tuple[int, _Listed]]:
    """Every name `-v` takes -> (priority, voice), from `espeak-ng --voices`: the language
    ("en-us"), the voice's name and file ("english (america)", "gmw/en-US", "en-US"), all lower
    case, its other languages ("en"; the lowest priority number wins), and the variants as
    "+f3" (case as listed: espeak-ng ignores "+F3" without a word)."""
    names: dict[str, tuple[int, _Listed]] = {}

    def add(name: str, priority: int, voice: _Listed) -> None:
        if name and (name not in names or priority < names[name][0]):
            names[name] = (priority, voice)

    for line in _run(program, ["--voices"]).decode(errors="replace").splitlines()[1:]:
        fields = line.split(maxsplit=5)
        if len(fields) < 5:
            continue
        voice = _Listed(fields[1], fields[3])
        for name in (fields[1], fields[3].replace("_", " "), fields[4], fields[4].rsplit("/", 1)[-1]):
            add(name.lower(), 0, voice)
        for other, priority in re.findall(r"\(([^ ()]+) (\d+)\)", fields[5] if len(fields) > 5 else ""):
            add(other.lower(), int(priority), voice)
    for line in _run(program, ["--voices=variant"]).decode(errors="replace").splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 5:
            add("+" + fields[4].rsplit("/", 1)[-1], 0, _Listed("variant", fields[3]))
    return names


def _listed(program: str, voice: str) -> _Listed:
    known = _voices(program)
    base, plus, variant = voice.strip().partition("+")
    base = base.lower()
    if base not in known or (plus and "+" + variant not in known):
        raise ModelNotFound(f"espeak-ng has no voice {quote(voice)}; `espeak-ng --voices` lists them (en-us, en-gb, "
                            "de, fr, ...; also by name, such as \"English (America)\"), with a variant after + "
                            "(en-us+f3)")
    return known[base][1]


def bcp47(code: str) -> str:
    """"en-us" / "en_US" -> "en-US" (a two-letter region in capitals)."""
    parts = code.replace("_", "-").split("-")
    return "-".join([parts[0].lower()] + [p.upper() if len(p) == 2 else p for p in parts[1:]])


class EspeakVoice:
    """One espeak-ng voice (formant synthesis: robotic but clear, ~100 languages, tiny)."""

    def __init__(self, voice: str = "en-us", program: str | None = None) -> None:
        self.program = _program(program)
        self.voice = voice.strip()
        listed = _listed(self.program, self.voice)
        probe = self._speak("a", WPM)  # the voice's real sample rate (mbrola voices differ), and a working program
        description = listed.name.replace("_", " ")
        self.info = VoiceInfo(voice, "espeak-ng", bcp47(listed.language), probe.sample_rate, "program:espeak-ng",
                              f"espeak-ng {description} (formant synthesis)")

    def synthesize(self, text: str, rate: float = 1.0) -> Audio:
        """Speech for `text` at `rate` times the normal speed (espeak-ng takes 80 to 450 words/min)."""
        return self._speak(text, min(MAX_WPM, max(MIN_WPM, round(WPM * rate))))

    def _speak(self, text: str, wpm: int) -> Audio:
        # -z: no pause after the last sentence (the engine adds its own); -b 1: the text is UTF-8.
        wav = _run(self.program, ["--stdout", "--stdin", "-z", "-b", "1", "-v", self.voice, "-s", str(wpm)], text)
        return parse_wav(wav)


def parse_wav(data: bytes) -> Audio:
    """The PCM of espeak-ng's --stdout WAV. Written to a pipe, its RIFF and data lengths are
    placeholders (0x7ffff000), so the data runs to the end of the output whatever they say."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise Unavailable(f"espeak-ng wrote no WAV audio ({len(data)} bytes); check `espeak-ng --stdout` on this "
                          "machine")
    at, rate = 12, 0
    while at + 8 <= len(data):
        chunk, size = data[at:at + 4], struct.unpack_from("<I", data, at + 4)[0]
        if chunk == b"fmt ":
            fmt, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", data, at + 8)
            if (fmt, channels, bits) != (1, 1, 8 * SAMPLE_WIDTH):
                raise Unavailable(f"espeak-ng wrote WAV format {fmt}, {channels} channel(s), {bits} bits; "
                                  "expected 16-bit mono PCM")
        elif chunk == b"data":
            pcm = data[at + 8:at + 8 + size]
            if rate == 0:
                break
            return Audio(pcm[:len(pcm) // SAMPLE_WIDTH * SAMPLE_WIDTH], rate)
        at += 8 + size + (size & 1)
    raise Unavailable("espeak-ng wrote a WAV without audio data; check `espeak-ng --stdout` on this machine")


def phonemize(text: str, voice: str, program: str) -> list[str]:
    """IPA phonemes of each sentence of `text`, as Piper voices were trained on: stress marks
    kept, no tie characters, each clause followed by its punctuation ("həlˈoʊ, wˈɜːld!")."""
    _listed(program, voice)  # an unknown voice would give no phonemes and no error
    clauses = [_clauses(s) for s in texts.sentences(text)]
    flat = [c for sentence in clauses for c in sentence]
    if not flat:
        return []
    spoken = _phonemes(program, voice, flat)
    out, at = [], 0
    for sentence in clauses:
        parts = [_with_punctuation(p, c) for p, c in zip(spoken[at:at + len(sentence)], sentence) if p]
        at += len(sentence)
        if parts:
            out.append(" ".join(parts))
    return out


def _clauses(sentence: str) -> list[str]:
    out: list[str] = []
    for clause in CLAUSE_END.split(sentence):
        if out and not any(c.isalnum() for c in clause):
            out[-1] += clause  # ", ..." speaks nothing of its own
        elif clause:
            out.append(clause)
    return out


def _phonemes(program: str, voice: str, clauses: list[str]) -> list[str]:
    """Phonemes of each clause, from one espeak-ng run: without --stdin it reads line by line,
    and a line holding only "." comes out as an empty line, which marks where each clause's
    phonemes end (espeak-ng itself breaks one clause over several lines at "Mr." and the like)."""
    args = ["-q", "--ipa", "-b", "1", "-v", voice]
    out = _run(program, args, "\n.\n".join(clauses) + "\n").decode("utf-8", errors="replace")
    groups: list[list[str]] = [[]]
    for line in out.splitlines():
        if line.strip():
            groups[-1].append(line.strip())
        else:
            groups.append([])
    if groups and not groups[-1]:
        groups.pop()
    if len(groups) == len(clauses) and all(groups):
        return [_tidy(" ".join(g)) for g in groups]
    # A clause that espeak-ng made an empty line of too ("..."): one run per clause instead.
    log.debug("espeak-ng gave %d phoneme groups for %d clauses; phonemizing one by one", len(groups), len(clauses))
    return [_tidy(" ".join(_run(program, ["--stdin", *args], c).decode("utf-8", errors="replace").split()))
            for c in clauses]


def _tidy(phonemes: str) -> str:
    return " ".join(_SWITCH.sub("", phonemes).split())


def _with_punctuation(phonemes: str, clause: str) -> str:
    """espeak-ng's --ipa drops punctuation; the model pauses and intones by it, so put back the
    clause's last mark (a question mark wins over a "!" beside it)."""
    tail = ""
    for char in reversed(clause.rstrip("\"'”’»)] ")):
        char = _PUNCTUATION.get(char, char)
        if char not in _TERMINALS:
            break
        tail = char + tail
    mark = "?" if "?" in tail else tail[-1:] or "."
    return phonemes + mark

