"""Shared test fixtures."""

import pytest
import torch


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small forwards gain nothing from intra-op threads, and OpenMP threads that compete
    with another busy process on a 2-core machine make them up to 100x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def synthetic_study(tmp_path_factory):
    """A finished study on the separable set (tests.helpers.run_synthetic_study), swept once for
    every test that reads its report: (study file, study folder)."""
    from tests.helpers import run_synthetic_study

    return run_synthetic_study(tmp_path_factory.mktemp("study"))


@pytest.fixture(autouse=True)
def policy_cache_folder(tmp_path_factory, monkeypatch):
    """The policy trial's cache (bench.train.policy_cache) in a fresh folder per test: a test
    never reads a decision the user's machine or another test made."""
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path_factory.mktemp("policy-cache")))
