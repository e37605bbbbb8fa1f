"""Shared pytest fixtures."""
import pytest
import torch


@pytest.fixture(scope="module")
def one_torch_thread():
    """Unit-test modules with many tiny forwards run faster on one intra-op thread on a 2-core machine (no
    thread hand-off per op); modules that train use the default instead."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
