"""Settings for the whole suite."""

from __future__ import annotations

import os

# Every `lanai node` the tests start serves the small SmolLM2-135M (on llama.cpp ~3x the tokens/s of
# the default Qwen2.5-Coder-0.5B): the tests check the service, not the model's knowledge. A node's
# --language-models default comes from this variable; subprocesses inherit it.
os.environ.setdefault("LANAI_LANGUAGE_MODELS", "smollm2-135m")
# Many nodes run on loopback at once: none opens the HTTP door (default 8080) unless a test asks for it.
os.environ.setdefault("LANAI_HTTP_PORT", "-1")

# Tests load engines in this process too: the same privacy settings every lanai process makes first.
from lanai.services.core.privacy import keep_on_premises  # noqa: E402

keep_on_premises()
