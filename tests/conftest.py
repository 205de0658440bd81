"""Shared test settings."""
import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Thousands of tiny tensor ops: a second thread only adds waiting, badly so when the other core is busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
