"""Fixtures for the service tests."""

from __future__ import annotations

import pytest
from service_helpers import LinearEncoder


@pytest.fixture
def encoder() -> LinearEncoder:
    return LinearEncoder()
