"""Fixtures for the service tests.

The helpers live in ``service_helpers.py`` beside this file; its folder is put on ``sys.path`` so the
tests can import it under any ``--import-mode`` (``importlib`` does not add test folders).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from service_helpers import LinearEncoder


@pytest.fixture
def encoder() -> LinearEncoder:
    return LinearEncoder()
