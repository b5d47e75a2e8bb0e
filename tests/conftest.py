"""Suite-wide settings: one intra-op thread, and a private digest cache.

The tests use tiny models, for which thread start-up and contention cost far more than the
arithmetic (a tiny forward pass ran ~200x slower with 2 threads on a loaded 2-core machine).

Data identities are cached under ``$BENCH_CACHE`` (:mod:`bench.datafiles.identity`); the suite points
it at a temporary directory so that it never writes to the user's ``~/.cache``.
"""

import os

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def _private_digest_cache(tmp_path_factory):
    previous = os.environ.get("BENCH_CACHE")
    os.environ["BENCH_CACHE"] = str(tmp_path_factory.mktemp("bench-cache"))
    yield
    if previous is None:
        os.environ.pop("BENCH_CACHE", None)
    else:
        os.environ["BENCH_CACHE"] = previous


@pytest.fixture(autouse=True)
def _registry_messages_stay_with_their_test():
    """The registries' warnings (a refused registration, a broken plug-in) live for the process, as they
    should in one CLI command; in the suite's one process they would leak into later tests' stderr."""
    from bench.spec import registry

    tables = (registry.METHODS, registry.DATASETS)
    saved = [(list(t.warnings), dict(t.failed_plugins)) for t in tables]
    errors = list(registry._PLUGIN_ERRORS)
    yield
    for table, (warned, failed) in zip(tables, saved):
        table.warnings[:] = warned
        table.failed_plugins.clear()
        table.failed_plugins.update(failed)
    registry._PLUGIN_ERRORS[:] = errors
