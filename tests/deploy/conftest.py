"""Deployment tests reuse the integration fixtures: the prepared model cache and espeak-ng speech."""

from tests.integration.conftest import fox_wav, lanai_home, language_home, speak, vision_home  # noqa: F401 - fixtures
