"""One intra-op thread for these small-tensor tests.

Tiny tensors gain nothing from a second thread, and on a shared, busy machine the thread
synchronisation of every small op multiplies their runtime many times over.
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _torch_threads() -> None:  # overrides the root fixture of the same name
    torch.set_num_threads(1)
    torch.manual_seed(0)
