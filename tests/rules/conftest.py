"""Commands configure structlog with the stderr of the moment (pytest's capture stream);
reset it after each test so later tests never log into a closed stream."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture(autouse=True)
def _fresh_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()
