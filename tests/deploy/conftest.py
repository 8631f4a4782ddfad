"""Deployment tests reuse the integration fixtures: the prepared model cache and espeak-ng speech."""

from tests.integration.conftest import fox_wav, lanai_home, speak  # noqa: F401 - fixtures
