"""``python -m bench`` for the suite's runs that need a process of their own, efficiency switched off.

The suite measures efficiency only where a test checks it (``conftest.py``); a run in a subprocess
(SIGKILL, concurrent writers, torchrun, an installed plug-in) is out of the fixtures' reach, so such a
test runs ``python tests/bench_unmeasured.py ARGS`` (:data:`run_helpers.BENCH_UNMEASURED`) instead of
``python -m bench ARGS``: the same CLI, recording empty efficiency figures.
"""

import sys

from bench.run import finish
from bench.store.record import Efficiency

finish.measure_efficiency = lambda *args, **kwargs: Efficiency()

from bench.cli.app import main  # noqa: E402  (after the switch, as a test's own process would be)

sys.argv[0] = "bench"
main()
