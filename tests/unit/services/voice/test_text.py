"""Sentence splitting for synthesis: whole texts and text streamed piece by piece."""

from __future__ import annotations

import pytest

from lanai.services.voice.text import MAX_SENTENCE_CHARS, SentenceSplitter, sentences


@pytest.mark.parametrize(("text", "expected"), [
    ("Hello world. How are you? I am fine!", ["Hello world.", "How are you?", "I am fine!"]),
    ("Dr. Smith paid 3.14 dollars. Then he left.", ["Dr. Smith paid 3.14 dollars.", "Then he left."]),
    ("We met in the U.S. last year. It rained.", ["We met in the U.S. last year.", "It rained."]),
    ("Bring fruit, e.g. Apples or pears. Thanks.", ["Bring fruit, e.g. Apples or pears.", "Thanks."]),
    ("Pens, paper, etc. and more. Done.", ["Pens, paper, etc. and more.", "Done."]),
    ("Ask Mrs. Green and J. Smith. They know.", ["Ask Mrs. Green and J. Smith.", "They know."]),
    ("Version 2.0 is out. Get it.", ["Version 2.0 is out.", "Get it."]),
    ('He said "Stop." Then he went.', ['He said "Stop."', "Then he went."]),
    ("Really?! Yes.", ["Really?!", "Yes."]),
    ("Wait... what happened?", ["Wait... what happened?"]),
    ("It ended... Then came dawn.", ["It ended...", "Then came dawn."]),
    ("First line\nSecond line\r\nThird", ["First line", "Second line", "Third"]),
    ("  lots   of\t space  .  ", ["lots of space ."]),
    ("Hi. ...", ["Hi. ..."]),
    ("-- help; rm -rf /", ["-- help; rm -rf /"]),
])
def test_sentences(text: str, expected: list[str]) -> None:
    assert sentences(text) == expected


@pytest.mark.parametrize("text", ["", "   ", "\n\n", "...", " ?! "])
def test_nothing_to_speak_gives_no_sentences(text: str) -> None:
    assert sentences(text) == []


def test_control_characters_become_spaces() -> None:
    assert sentences("one\x00two\x07three") == ["one two three"]


def test_a_long_sentence_is_cut_at_a_clause_boundary() -> None:
    clause = "the quick brown fox jumps over the lazy dog, "  # 45 characters
    text = (clause * 20).strip() + "."
    pieces = sentences(text)
    assert len(pieces) > 1
    assert all(len(p) <= MAX_SENTENCE_CHARS for p in pieces)
    assert all(p.endswith(",") for p in pieces[:-1])
    assert len(pieces[0]) > MAX_SENTENCE_CHARS // 2
    assert " ".join(pieces) == text


def test_a_long_sentence_without_punctuation_is_cut_between_words() -> None:
    text = " ".join(f"word{i}" for i in range(200))
    pieces = sentences(text)
    assert len(pieces) > 1 and all(len(p) <= MAX_SENTENCE_CHARS for p in pieces)
    assert " ".join(pieces) == text


def test_one_enormous_word_is_cut_at_the_limit() -> None:
    pieces = sentences("x" * (2 * MAX_SENTENCE_CHARS + 5))
    assert [len(p) for p in pieces] == [MAX_SENTENCE_CHARS, MAX_SENTENCE_CHARS, 5]


def _stream(pieces: list[str]) -> list[list[str]]:
    splitter = SentenceSplitter()
    return [splitter.feed(p) for p in pieces] + [splitter.flush()]


def test_stream_emits_a_sentence_once_the_next_word_shows_it_ended() -> None:
    out = _stream(["It costs 3", ".", "14 dollars", ". The", " rest", " follows"])
    assert out == [[], [], [], ["It costs 3.14 dollars."], [], [], ["The rest follows"]]


def test_stream_keeps_abbreviations_and_lowercase_continuations_together() -> None:
    out = _stream(["Ask Dr", ". ", "Smith", " about etc. ", "and more! Now", " go"])
    assert out == [[], [], [], [], ["Ask Dr. Smith about etc. and more!"], [], ["Now go"]]


def test_stream_question_mark_and_newline_end_at_once() -> None:
    assert _stream(["Why? ", "Because\n", "So"]) == [["Why?"], ["Because"], [], ["So"]]


def test_stream_matches_the_whole_text_token_by_token() -> None:
    text = ("Dr. Smith paid 3.14 dollars in the U.S. yesterday. Was it enough? Nobody knows!\n"
            "A new paragraph starts here, e.g. With a list; and so on... Fine. ") * 3
    tokens = [text[i:i + 3] for i in range(0, len(text), 3)]
    streamed = [s for batch in _stream(tokens) for s in batch]
    assert streamed == sentences(text)


def test_stream_cuts_a_long_unpunctuated_run_before_it_ends() -> None:
    splitter = SentenceSplitter()
    words = [f"word{i} " for i in range(150)]
    early = [s for w in words for s in splitter.feed(w)]
    assert early, "a run of 150 words without punctuation was held back whole"
    assert all(len(s) <= MAX_SENTENCE_CHARS for s in early)
    rest = splitter.flush()
    assert " ".join(early + rest).split() == "".join(words).split()


def test_stream_never_splits_a_word_across_pieces() -> None:
    splitter = SentenceSplitter()
    out = splitter.feed("a" * (MAX_SENTENCE_CHARS - 5) + " supercalifragi") + splitter.feed("listic word")
    out += splitter.flush()
    assert "supercalifragilistic" in " ".join(out).split()
