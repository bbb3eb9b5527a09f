import os

import numpy as np
import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _seed_and_one_thread():
    """Repeatable tests; one intra-op thread, since the test networks are tiny and a second thread only
    adds synchronisation (badly so on a busy machine). Restored after each test."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    np.random.seed(0)
    yield
    torch.set_num_threads(n)
