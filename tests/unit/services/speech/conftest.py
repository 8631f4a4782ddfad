from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from lanai.services.speech.audio import decode_encoded

SENTENCE = "The quick brown fox jumps over the lazy dog. Then it rests for a while."


@pytest.fixture(scope="session")
def speech_16k(tmp_path_factory: pytest.TempPathFactory) -> npt.NDArray[np.float32]:
    """A few seconds of synthetic speech (espeak-ng), decoded to 16 kHz mono float32."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng): no speech-like audio to test VAD on")
    path = Path(tmp_path_factory.mktemp("espeak")) / "speech.wav"
    subprocess.run([espeak, "-w", str(path), SENTENCE], check=True, capture_output=True, timeout=30)
    return decode_encoded(path.read_bytes(), max_seconds=60)
