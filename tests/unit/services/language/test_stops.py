"""lanai.services.language.stops: stop sequences over streamed text."""

from __future__ import annotations

import pytest

from lanai.services.language.stops import StopScanner


def run(stops: tuple[str, ...], pieces: list[str]) -> tuple[str, bool]:
    scanner, out = StopScanner(stops), []
    for i, piece in enumerate(pieces):
        text, stopped = scanner.feed(piece, final=i == len(pieces) - 1)
        out.append(text)
        if stopped:
            return "".join(out), True
    return "".join(out), False


def test_no_stops_passes_text_through_at_once() -> None:
    scanner = StopScanner(())
    assert scanner.feed("Hel") == ("Hel", False) and scanner.feed("lo") == ("lo", False)


def test_a_stop_inside_one_piece_cuts_before_it() -> None:
    assert run(("END",), ["one two END three"]) == ("one two ", True)


def test_a_stop_spanning_pieces_is_held_back_then_dropped() -> None:
    scanner = StopScanner(("END",))
    assert scanner.feed("Hello E") == ("Hello ", False)  # "E" might start END: held
    assert scanner.feed("N") == ("", False)
    assert scanner.feed("D and more") == ("", True)


def test_held_text_that_turns_out_not_to_be_a_stop_is_released() -> None:
    scanner = StopScanner(("END",))
    assert scanner.feed("an E") == ("an ", False)
    assert scanner.feed("ND?") == ("", True)
    scanner = StopScanner(("END",))
    assert scanner.feed("an E") == ("an ", False)
    assert scanner.feed("lephant") == ("Elephant", False)


def test_the_end_of_generation_flushes_held_text() -> None:
    assert run(("END",), ["so it E"]) == ("so it E", False)


def test_the_earliest_of_several_stops_wins() -> None:
    assert run(("\n\n", "B"), ["aaa B ccc\n\n"]) == ("aaa ", True)


@pytest.mark.parametrize("pieces", [["x", "y", "z"], ["xy", "z"], ["xyz"]])
def test_splitting_never_changes_the_result(pieces: list[str]) -> None:
    assert run(("yz",), pieces) == ("x", True)
