"""Compatibility: the import path plug-ins used before bench 0.2 (``from bench.registry import ...``).

New code imports from :mod:`bench.api`, the one module for plug-in authors; this module re-exports
:mod:`bench.spec.registry` so that existing plug-ins keep working.
"""

from bench.spec.registry import *  # noqa: F401,F403
from bench.spec.registry import __all__  # noqa: F401
