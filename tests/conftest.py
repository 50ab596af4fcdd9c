"""Shared fixtures and the ``--runslow`` switch.

Tests are fast by default; ``@pytest.mark.slow`` ones run only with ``--runslow``. Every test makes
its own data (synthetic images, tiny files in the real on-disk formats) and never touches the network.
"""

from __future__ import annotations

import pytest
import torch


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False, help="also run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _torch_threads() -> None:
    torch.set_num_threads(2)
    torch.manual_seed(0)


@pytest.fixture
def synthetic_train():
    from encoder_audit.data import create_dataset

    return create_dataset("synthetic", "train", n=256)


@pytest.fixture
def synthetic_test():
    from encoder_audit.data import create_dataset

    return create_dataset("synthetic", "test", n=128)


@pytest.fixture
def tiny_encoder():
    from encoder_audit.models import create_encoder

    return create_encoder("cnn-small", in_channels=1, image_size=28)
