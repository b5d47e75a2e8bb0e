"""Compatibility: the import path plug-ins used before bench 0.2 (``from bench.data import ...``).

New code imports from :mod:`bench.api`, the one module for plug-in authors; this module re-exports
:mod:`bench.spec.splits` so that existing plug-ins keep working.
"""

from bench.spec.splits import *  # noqa: F401,F403
