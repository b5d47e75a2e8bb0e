"""Compatibility: the import path plug-ins used before bench 0.2 (``from bench.hparams import ...``).

New code imports from :mod:`bench.api`, the one module for plug-in authors; this module re-exports
:mod:`bench.spec.hparams` so that existing plug-ins keep working.
"""

from bench.spec.hparams import *  # noqa: F401,F403
