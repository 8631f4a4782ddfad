"""lanai.services.speech.vad: the utterance state machine over probabilities, and Silero VAD run window by window."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pytest

from lanai.services.speech.audio import SAMPLE_RATE
from lanai.services.speech.vad import (WINDOW, Event, SegmenterConfig, StreamingVad, UtteranceEnded, UtteranceSegmenter,
                                       UtteranceStarted)

W = WINDOW  # 512 samples = 32 ms at 16 kHz
MS_PER_WINDOW = W * 1000 // SAMPLE_RATE

# Lengths chosen as whole windows so the expected sample positions below are plain arithmetic.
CFG = SegmenterConfig(threshold=0.5, neg_threshold=0.35, silence_ms=5 * MS_PER_WINDOW, pad_ms=2 * MS_PER_WINDOW,
                      min_speech_ms=3 * MS_PER_WINDOW, max_utterance_s=60.0)
PAD = 2 * W

SPEECH, SILENCE, UNSURE = 0.9, 0.05, 0.4  # UNSURE: between neg_threshold and threshold


def run(probabilities: Sequence[float], config: SegmenterConfig = CFG) -> list[tuple[int, Event]]:
    """(index of the window whose push returned it, event) for every event."""
    segmenter = UtteranceSegmenter(config)
    events = [(i, event) for i, p in enumerate(probabilities) for event in segmenter.push(p)]
    assert segmenter.position == len(probabilities) * W
    return events


def test_window_is_32_ms() -> None:
    assert W == 512 and MS_PER_WINDOW == 32


def test_silence_only_gives_no_events() -> None:
    assert run([SILENCE] * 100 + [UNSURE] * 20) == []


def test_one_utterance_with_padding_on_both_sides() -> None:
    events = run([SILENCE] * 10 + [SPEECH] * 6 + [SILENCE] * 10)
    assert events == [
        (10, UtteranceStarted(10 * W - PAD)),  # first speech window, minus the padding
        # ended on the 5th silent window (windows 16..20 = 160 ms), at the last speech window's end plus the padding
        (20, UtteranceEnded(16 * W + PAD)),
    ]


def test_speaking_property_follows_the_utterance() -> None:
    segmenter = UtteranceSegmenter(CFG)
    states = []
    for p in [SILENCE] * 2 + [SPEECH] * 4 + [SILENCE] * 6:
        segmenter.push(p)
        states.append(segmenter.speaking)
    assert states == [False] * 2 + [True] * 4 + [True] * 4 + [False] * 2


def test_start_padding_is_clamped_at_the_stream_start() -> None:
    events = run([SILENCE] + [SPEECH] * 6 + [SILENCE] * 5)
    assert events[0] == (1, UtteranceStarted(0))


def test_end_padding_never_reaches_past_the_audio_seen() -> None:
    # silence (2 windows) shorter than the padding (5 windows): the end is where the stream is now
    cfg = SegmenterConfig(silence_ms=2 * MS_PER_WINDOW, pad_ms=5 * MS_PER_WINDOW, min_speech_ms=0)
    events = run([SILENCE] * 10 + [SPEECH] * 6 + [SILENCE] * 2, cfg)
    assert events == [(10, UtteranceStarted(5 * W)), (17, UtteranceEnded(18 * W))]


def test_a_pause_shorter_than_silence_ms_does_not_end_the_utterance() -> None:
    events = run([SPEECH] * 5 + [SILENCE] * 4 + [SPEECH] * 5 + [SILENCE] * 5)
    assert events == [(0, UtteranceStarted(0)), (18, UtteranceEnded(14 * W + PAD))]


def test_two_utterances() -> None:
    events = run([SILENCE] * 4 + [SPEECH] * 4 + [SILENCE] * 8 + [SPEECH] * 4 + [SILENCE] * 5)
    assert events == [
        (4, UtteranceStarted(4 * W - PAD)), (12, UtteranceEnded(8 * W + PAD)),
        (16, UtteranceStarted(16 * W - PAD)), (24, UtteranceEnded(20 * W + PAD)),
    ]


@pytest.mark.parametrize(("speech_windows", "discard"), [(1, True), (2, True), (3, False), (4, False)])
def test_bursts_shorter_than_min_speech_are_discarded(speech_windows: int, discard: bool) -> None:
    # min_speech_ms is 3 windows: shorter bursts are marked discard, equal or longer are kept
    events = run([SILENCE] * 8 + [SPEECH] * speech_windows + [SILENCE] * 5)
    assert [type(e) for _, e in events] == [UtteranceStarted, UtteranceEnded]
    ended = events[1][1]
    assert isinstance(ended, UtteranceEnded)
    assert ended.discard is discard
    assert ended.end == (8 + speech_windows) * W + PAD
    assert not ended.forced


def test_threshold_is_inclusive_and_values_below_it_do_not_start() -> None:
    assert run([0.499] * 10) == []
    assert run([0.5]) == [(0, UtteranceStarted(0))]


def test_unsure_windows_neither_end_nor_count_as_silence() -> None:
    # hysteresis: between neg_threshold and threshold keeps the current state
    events = run([SPEECH] * 4 + [UNSURE] * 40 + [0.35] * 10)  # neg_threshold itself is not silence
    assert events == [(0, UtteranceStarted(0))]


def test_silence_after_unsure_windows_ends_the_utterance() -> None:
    events = run([SPEECH] * 4 + [UNSURE] * 10 + [0.349] * 5)
    assert events[-1] == (18, UtteranceEnded(4 * W + PAD))


def test_speech_resets_the_silence_count() -> None:
    events = run([SPEECH] * 4 + ([SILENCE] * 4 + [SPEECH]) * 5 + [SILENCE] * 5)
    assert [i for i, _ in events] == [0, 4 + 25 + 4]


FORCE_CFG = SegmenterConfig(silence_ms=5 * MS_PER_WINDOW, pad_ms=2 * MS_PER_WINDOW, min_speech_ms=3 * MS_PER_WINDOW,
                            max_utterance_s=16 * W / SAMPLE_RATE)  # 16 windows
LIMIT = 16 * W


def test_long_speech_is_cut_at_max_utterance() -> None:
    events = run([SILENCE] * 4 + [SPEECH] * 20 + [SILENCE] * 5, FORCE_CFG)
    start = 4 * W - PAD
    assert events[:3] == [
        (4, UtteranceStarted(start)),
        # the first piece, padding included, is exactly the limit long; the next starts where it ends
        (17, UtteranceEnded(start + LIMIT, forced=True)),
        (17, UtteranceStarted(start + LIMIT)),
    ]
    # speech ran to window 24: the rest ends normally, padded
    assert events[3:] == [(28, UtteranceEnded(24 * W + PAD))]


def test_forced_pieces_are_contiguous_and_within_the_limit() -> None:
    events = run([SPEECH] * 200 + [SILENCE] * 5, FORCE_CFG)
    starts = [e.start for _, e in events if isinstance(e, UtteranceStarted)]
    ends = [e.end for _, e in events if isinstance(e, UtteranceEnded)]
    assert len(starts) == len(ends) > 5
    assert starts[0] == 0
    assert starts[1:] == ends[:-1]  # no audio lost or repeated at the cuts
    assert all(0 < end - start <= LIMIT for start, end in zip(starts, ends))
    assert [e.forced for _, e in events if isinstance(e, UtteranceEnded)] == [True] * (len(ends) - 1) + [False]


def test_continuation_pieces_are_as_long_as_the_limit() -> None:
    events = run([SPEECH] * 200 + [SILENCE] * 5, FORCE_CFG)
    starts = [e.start for _, e in events if isinstance(e, UtteranceStarted)]
    ends = [e.end for _, e in events if isinstance(e, UtteranceEnded)]
    assert [end - start for start, end in zip(starts, ends)][:-1] == [LIMIT] * (len(ends) - 1)


@pytest.mark.parametrize("probabilities", [
    # the limit is reached 3 windows into the silence that ends 13 windows of speech (which fit, padded)
    [SPEECH] * 13 + [SILENCE] * 10,
    # speech goes on for 1 window (< min_speech_ms) after the cut at the end of window 15
    [SPEECH] * 17 + [SILENCE] * 10,
], ids=["cut-in-trailing-silence", "short-tail-after-cut"])
def test_a_cut_utterance_ends_with_a_kept_piece(probabilities: list[float]) -> None:
    events = [e for _, e in run(probabilities, FORCE_CFG)]
    starts = [e.start for e in events if isinstance(e, UtteranceStarted)]
    ends = [e for e in events if isinstance(e, UtteranceEnded)]
    assert all(end.end >= start for start, end in zip(starts, ends))
    assert not ends[-1].forced and not ends[-1].discard


# --- StreamingVad -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def padded_speech(speech_16k: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """One second of digital silence, the speech, one second of silence."""
    silence = np.zeros(SAMPLE_RATE, np.float32)
    return np.concatenate([silence, speech_16k, silence])


@pytest.fixture(scope="module")
def whole_probabilities(padded_speech: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    return StreamingVad().feed(padded_speech)


def test_one_probability_per_complete_window(padded_speech: npt.NDArray[np.float32],
                                             whole_probabilities: npt.NDArray[np.float32]) -> None:
    assert whole_probabilities.dtype == np.float32
    assert whole_probabilities.shape == (padded_speech.size // W,)
    assert np.all((whole_probabilities >= 0) & (whole_probabilities <= 1))


def test_matches_faster_whisper_on_the_whole_recording(padded_speech: npt.NDArray[np.float32],
                                                      whole_probabilities: npt.NDArray[np.float32]) -> None:
    from faster_whisper.vad import get_vad_model

    audio = padded_speech[:padded_speech.size // W * W].copy()
    reference = np.asarray(get_vad_model()(audio), np.float32).reshape(-1)
    np.testing.assert_allclose(whole_probabilities, reference, atol=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_chunked_feeding_gives_the_same_probabilities(padded_speech: npt.NDArray[np.float32],
                                                      whole_probabilities: npt.NDArray[np.float32],
                                                      seed: int) -> None:
    rng = np.random.default_rng(seed)
    vad, parts, at = StreamingVad(), [], 0
    while at < padded_speech.size:
        size = int(rng.choice([0, 1, W - 1, W, W + 1, int(rng.integers(2, 4000))]))
        parts.append(vad.feed(padded_speech[at:at + size]))
        at += size
    np.testing.assert_allclose(np.concatenate(parts), whole_probabilities, atol=1e-6)


def test_chunked_feeding_on_synthetic_audio() -> None:
    # needs no espeak-ng: bursts of a gliding tone in noise, fed in chunks that split windows
    rng = np.random.default_rng(3)
    t = np.arange(5 * SAMPLE_RATE) / SAMPLE_RATE
    bursts = (np.sin(2 * np.pi * 0.7 * t) > 0.3).astype(np.float32)
    audio = (0.3 * bursts * np.sin(2 * np.pi * (200 + 300 * t) * t) + 0.01 * rng.standard_normal(t.size))
    audio = audio.astype(np.float32)
    whole = StreamingVad().feed(audio)
    vad, parts, at = StreamingVad(), [], 0
    while at < audio.size:
        size = int(rng.integers(0, 1500))
        parts.append(vad.feed(audio[at:at + size]))
        at += size
    assert whole.size == audio.size // W
    np.testing.assert_allclose(np.concatenate(parts), whole, atol=1e-6)
    assert np.ptp(whole) > 0.01  # the state carried across chunks actually mattered to the numbers


def test_sessions_keep_separate_state(padded_speech: npt.NDArray[np.float32],
                                     whole_probabilities: npt.NDArray[np.float32]) -> None:
    a, b = StreamingVad(), StreamingVad()
    out_a, out_b = [], []
    for at in range(0, padded_speech.size, 3000):
        out_a.append(a.feed(padded_speech[at:at + 3000]))
        out_b.append(b.feed(np.zeros(1000, np.float32)))
    np.testing.assert_allclose(np.concatenate(out_a), whole_probabilities, atol=1e-6)
    assert np.concatenate(out_b).max() < 0.2


def test_speech_scores_high_and_digital_silence_low(padded_speech: npt.NDArray[np.float32],
                                                   whole_probabilities: npt.NDArray[np.float32]) -> None:
    loud = np.flatnonzero(np.abs(padded_speech) > 1e-3)
    onset, offset = loud[0] // W, loud[-1] // W
    lead, speech, tail = (whole_probabilities[:onset - 1], whole_probabilities[onset + 2:offset - 2],
                          whole_probabilities[offset + 8:])
    assert lead.size > 20 and tail.size > 20
    assert lead.max() < 0.2 and tail.max() < 0.2
    assert speech.max() > 0.9
    assert np.mean(speech >= 0.5) > 0.7


def test_segmenter_over_vad_finds_the_sentence(padded_speech: npt.NDArray[np.float32],
                                               whole_probabilities: npt.NDArray[np.float32]) -> None:
    loud = np.flatnonzero(np.abs(padded_speech) > 1e-3)
    segmenter = UtteranceSegmenter()
    events = [e for p in whole_probabilities for e in segmenter.push(float(p))]
    assert [type(e) for e in events] == [UtteranceStarted, UtteranceEnded]
    started, ended = events
    assert isinstance(started, UtteranceStarted) and isinstance(ended, UtteranceEnded)
    assert loud[0] - (SegmenterConfig.pad_ms * 16 + 4 * W) <= started.start <= loud[0]
    assert ended.end >= loud[-1] - 0.1 * SAMPLE_RATE
    assert not ended.discard and not ended.forced


def test_trailing_off_only_while_speech_is_followed_by_silence() -> None:
    segmenter = UtteranceSegmenter(SegmenterConfig(silence_ms=500))
    segmenter.push(SILENCE)
    assert not segmenter.trailing_off  # idle
    segmenter.push(SPEECH)
    assert segmenter.speaking and not segmenter.trailing_off
    segmenter.push(SILENCE)
    assert segmenter.trailing_off  # the stream skips partials now: silence cannot change the text
    segmenter.push(SPEECH)
    assert not segmenter.trailing_off  # a pause, not the end
    for _ in range(20):
        segmenter.push(SILENCE)
    assert not segmenter.speaking and not segmenter.trailing_off
