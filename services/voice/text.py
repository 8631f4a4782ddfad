"""Text into sentences for synthesis: each is spoken as one piece, so the first audio of a long
text (or of an answer still being generated) comes after its first sentence, not after all of it."""

from __future__ import annotations

import re
import unicodedata

MAX_SENTENCE_CHARS = 400
"""A sentence longer than this is cut at a clause or word boundary: first audio comes early and
one slot is never held for minutes."""

ABBREVIATIONS = frozenset({
    "mr", "mrs", "ms", "dr", "prof", "st", "sr", "jr", "mt", "rev", "gen", "col", "lt", "sgt", "capt", "gov",
    "vs", "cf", "approx", "fig", "e.g", "i.e", "a.m", "p.m", "inc", "ltd", "co", "corp", "dept", "est",
})
"""Words whose final "." does not end a sentence even before a capital ("Dr. Smith")."""

_END = re.compile(r"[.!?…]+[\"'”’»)\]]*(?=\s)|\n")
_CLAUSE_MARKS = frozenset(",;:—–")
_INITIALISM = re.compile(r"(?:[A-Za-z]\.)+[A-Za-z]|[A-HJ-Z]")  # "U.S", "e.g", "J" (the initial of a name)
_CONTROL = {c: " " for c in range(32) if chr(c) not in "\n"} | {0x7F: " "}


def sentences(text: str) -> list[str]:
    """The sentences of a whole text, in order, whitespace collapsed, none over MAX_SENTENCE_CHARS."""
    text = _clean(text)
    pieces, start = [], 0
    for cut in _cuts(text, final=True):
        pieces.append(text[start:cut])
        start = cut
    pieces.append(text[start:])
    out: list[str] = []
    for piece in pieces:
        out.extend(_split_long(_collapse(piece), final=True)[0])
    return _merge_bare(out)


class SentenceSplitter:
    """Sentences of text that arrives piece by piece (a language model's tokens): `feed` returns
    those known to be complete, `flush` the rest once the text has ended. A sentence is complete
    when its end is followed by whitespace (and, for a ".", by the next word, which tells "Dr."
    and "etc. and" apart from an end), so "3." then "14" is never split."""

    def __init__(self) -> None:
        self._buffer = ""

    def feed(self, piece: str) -> list[str]:
        self._buffer += _clean(piece)
        done: list[str] = []
        start = 0
        for cut in _cuts(self._buffer, final=False):
            done.append(_collapse(self._buffer[start:cut]))
            start = cut
        rest = self._buffer[start:]
        # `rest` holds no newline (each one is a cut); only its last word may be unfinished.
        ended = rest[-1:].isspace()
        long, remainder = _split_long(_collapse(rest), final=False)
        done.extend(long)
        self._buffer = remainder + (" " if ended and remainder else "")
        return _merge_bare([d for d in done if d])

    def flush(self) -> list[str]:
        rest, self._buffer = self._buffer, ""
        return sentences(rest)


def _clean(text: str) -> str:
    # Control characters (NUL included) would reach the synthesiser's stdin; \r\n is one break.
    return text.replace("\r\n", "\n").replace("\r", "\n").translate(_CONTROL)


def _collapse(text: str) -> str:
    return " ".join(text.split())


def _cuts(text: str, *, final: bool) -> list[int]:
    """Offsets where a sentence ends. Not `final`: only ends that later text cannot undo."""
    cuts = []
    for match in _END.finditer(text):
        if match.group() == "\n":
            cuts.append(match.start())
            continue
        after = text[match.end():]
        following = after.lstrip()
        if not following and not ("!" in match.group() or "?" in match.group()):
            continue  # a "." needs the next word to tell an end from "Dr." or "etc. and"
        if not following or _ends_sentence(text[:match.start()], match.group(), following[0]):
            cuts.append(match.end())
    return cuts


def _ends_sentence(before: str, marks: str, next_char: str) -> bool:
    if "!" in marks or "?" in marks:
        return True
    if next_char.islower():
        return False  # "etc. and", "wait... what"
    if marks.rstrip("\"'”’»)]") != ".":
        return True  # an ellipsis before a capital
    word = before.rsplit(None, 1)[-1].lstrip("\"'“‘«([") if before.strip() else ""
    return word.lower() not in ABBREVIATIONS and not _INITIALISM.fullmatch(word)


def _split_long(sentence: str, *, final: bool) -> tuple[list[str], str]:
    """Pieces of at most MAX_SENTENCE_CHARS, and what is left (all of it, when `final`, is a piece)."""
    pieces = []
    while len(sentence) > MAX_SENTENCE_CHARS:
        cut = _long_cut(sentence)
        pieces.append(sentence[:cut].rstrip())
        sentence = sentence[cut:].lstrip()
    if final:
        pieces.append(sentence)
        return [p for p in pieces if p], ""
    return pieces, sentence


def _long_cut(sentence: str) -> int:
    """Where to cut a too-long sentence: after the last clause mark in the second half of the
    allowed length, else at the last space, else (one enormous word) at the limit."""
    limit = MAX_SENTENCE_CHARS
    for at in range(limit, limit // 2, -1):
        if sentence[at] == " " and sentence[at - 1] in _CLAUSE_MARKS:
            return at
    space = sentence.rfind(" ", 1, limit + 1)
    return space if space > 0 else limit


def _merge_bare(pieces: list[str]) -> list[str]:
    """Pieces with nothing to say (a lone "..." or closing quote) join the sentence before them."""
    out: list[str] = []
    for piece in pieces:
        if out and not _speakable(piece):
            out[-1] = f"{out[-1]} {piece}"
        elif _speakable(piece):
            out.append(piece)
    return out


def _speakable(piece: str) -> bool:
    return any(not unicodedata.category(c).startswith(("P", "Z")) for c in piece)
